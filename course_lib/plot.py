"""Figures and players for the lessons: waveform, spectrogram (linear / log / mel), IF image, clip and mel grids,
a training-loss curve, and ``show`` / ``listen`` (a figure with its audio players).

Every plotting helper takes ``ax=None`` (a new figure is made when it is ``None``) and returns
``(fig, ax)``, in the style of libfmp, so that a lesson can place plots side by side.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import spectral
from course_lib.audio import play


def _np1d(x) -> np.ndarray:
    t = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if t.ndim == 2:
        t = t[0]
    if t.ndim != 1:
        raise ValueError(f"expected a clip (samples,) or (batch, samples), got shape {tuple(t.shape)}")
    return t.numpy()


def _axes(ax, figsize=(8, 3)):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def waveform(x, sr: int, ax=None, title: str | None = None, **plot_kw):
    """Plot a clip ``(samples,)`` against time in seconds."""
    y = _np1d(x)
    fig, ax = _axes(ax)
    ax.plot(np.arange(len(y)) / sr, y, lw=0.8, **plot_kw)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_xlim(0, max(len(y) - 1, 1) / sr)
    if title:
        ax.set_title(title)
    return fig, ax


def spectrogram_image(x, sr: int, kind: str = "log", n_fft: int = 1024, hop: int = 256,
                      n_mels: int = 80) -> np.ndarray:
    """The image :func:`spectrogram` draws: dB magnitude ``(freq or mel bins, frames)``.

    Linear/log spectrograms are scaled so that a full-scale sine reads 0 dB (dBFS).
    """
    t = torch.as_tensor(_np1d(x)).unsqueeze(0)
    if kind == "mel":
        cfg = spectral.MelConfig(sr=sr, n_fft=n_fft, hop=hop, n_mels=n_mels, fmax=sr / 2)
        mag = spectral.mel_spectrogram(t, cfg)[0]
    elif kind in ("log", "linear"):
        mag = spectral.stft(t, n_fft, hop)[0].abs() / (n_fft / 4)  # Hann window sum / 2: sine peak -> 1
    else:
        raise ValueError(f"unknown spectrogram kind {kind!r}: use 'log', 'linear' or 'mel'")
    return (20.0 * torch.log10(mag.clamp_min(1e-6))).numpy()


def spectrogram(x, sr: int, ax=None, kind: str = "log", n_fft: int = 1024, hop: int = 256,
                title: str | None = None, vmin: float | None = None, vmax: float | None = None,
                colorbar: bool = True, n_mels: int = 80):
    """Spectrogram in dB of a clip. ``kind``: 'linear' (linear Hz axis), 'log' (log Hz axis) or 'mel'."""
    img = spectrogram_image(x, sr, kind, n_fft, hop, n_mels)
    fig, ax = _axes(ax)
    duration = len(_np1d(x)) / sr
    if vmax is None:
        vmax = float(img.max())
    if vmin is None:
        vmin = vmax - 80.0
    if kind == "mel":
        extent = (0, duration, 0, img.shape[0])
        ylabel = "mel bin"
    else:
        extent = (0, duration, 0, sr / 2)
        ylabel = "frequency (Hz)"
    mesh = ax.imshow(img, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax, cmap="magma")
    if kind == "log":
        ax.set_yscale("symlog", linthresh=100)
        ax.set_ylim(20, sr / 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        fig.colorbar(mesh, ax=ax, format="%+.0f dB")
    return fig, ax


def if_image(inst_freq, ax=None, title: str | None = "instantaneous frequency", hop: int | None = None,
             sr: int | None = None):
    """Show an IF image ``(freq, frames)`` (values in [-1, 1], as in GANSynth)."""
    img = torch.as_tensor(inst_freq).detach().to("cpu", torch.float32)
    if img.ndim == 3:
        img = img[0]
    fig, ax = _axes(ax)
    extent = None
    if hop and sr:
        extent = (0, img.shape[1] * hop / sr, 0, sr / 2)
    mesh = ax.imshow(img.numpy(), origin="lower", aspect="auto", cmap="twilight", vmin=-1, vmax=1, extent=extent)
    ax.set_xlabel("time (s)" if extent else "frame")
    ax.set_ylabel("frequency (Hz)" if extent else "bin")
    if title:
        ax.set_title(title)
    fig.colorbar(mesh, ax=ax)
    return fig, ax


def clip_grid(clips, sr: int, ncols: int = 4, kind: str = "mel", titles: Sequence[str] | None = None,
              n_fft: int = 1024, hop: int = 256, cell_size: tuple[float, float] = (3.0, 2.2)):
    """A grid of spectrograms of ``clips`` ``(batch, samples)`` with one shared colour scale."""
    batch = torch.as_tensor(clips)
    if batch.ndim == 1:
        batch = batch.unsqueeze(0)
    images = [spectrogram_image(c, sr, kind, n_fft, hop) for c in batch]
    vmax = max(float(im.max()) for im in images)
    vmin = vmax - 80.0
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_size[0] * ncols, cell_size[1] * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        spectrogram(batch[i], sr, ax=ax, kind=kind, n_fft=n_fft, hop=hop, vmin=vmin, vmax=vmax,
                    colorbar=False, title=titles[i] if titles else None)
        if i % ncols:
            ax.set_ylabel("")
    fig.tight_layout()
    return fig, axes


def mel_grid(clips, sr: int, ncols: int = 4, titles: Sequence[str] | None = None, **grid_kw):
    """Mel spectrograms of ``clips`` ``(batch, samples)`` in a grid with one colour scale -> ``(fig, axes)``."""
    return clip_grid(clips, sr, ncols=ncols, kind="mel", titles=titles, **grid_kw)


def training_history(loss: Sequence[float], ax=None, title: str = "training loss", ylabel: str = "loss",
                     reference: tuple[float, str] | None = None, smooth: int = 0):
    """The loss of every step (faint), optionally its ``smooth``-step running mean and a horizontal ``reference``
    line ``(value, label)`` (e.g. the loss of a uniform guess) -> ``(fig, ax)``."""
    y = np.asarray(list(loss), dtype=float)
    fig, ax = _axes(ax, figsize=(7, 2.6))
    ax.plot(y, alpha=0.5, label="per step")
    if smooth and len(y) >= smooth:
        ax.plot(np.arange(smooth - 1, len(y)), np.convolve(y, np.ones(smooth) / smooth, mode="valid"),
                label=f"mean of {smooth} steps")
    if reference is not None:
        ax.axhline(reference[0], color="k", ls=":", label=reference[1])
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.legend()
    return fig, ax


def show(x, sr: int, title: str, kind: str = "log", zoom_ms: float = 20.0, player: bool = True):
    """A clip ``(samples,)`` (or the first of ``(batch, samples)``): its first ``zoom_ms`` ms as a waveform beside its
    spectrogram, drawn now, then an audio player -> ``(fig, (waveform_ax, spectrogram_ax))``."""
    from IPython.display import display

    x = torch.as_tensor(x).detach().cpu()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 2.6), gridspec_kw={"width_ratios": [1, 2]})
    zoom = int(zoom_ms / 1000 * sr)
    waveform(x[..., :zoom] if x.shape[-1] > zoom else x, sr, ax=a, title=f"{title} (first {zoom_ms:g} ms)")
    spectrogram(x, sr, ax=b, kind=kind, title=title)
    plt.show()
    if player:
        display(play(x, sr))
    return fig, (a, b)


def listen(clips, sr: int, titles: Sequence[str] | None = None) -> None:
    """An audio player for each clip of ``clips`` ``(batch, samples)`` (or a list of clips), each after its title."""
    from IPython.display import display

    clips = list(clips)
    if titles is not None and len(titles) != len(clips):
        raise ValueError(f"listen: {len(clips)} clips but {len(titles)} titles")
    for i, clip in enumerate(clips):
        if titles is not None:
            print(titles[i])
        display(play(torch.as_tensor(clip).detach().cpu(), sr))
