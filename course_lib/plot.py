"""Figures and players for the lessons: waveform, spectrogram (linear / log / mel), IF image, clip and mel grids,
images of log-mels, a training-loss curve, ``show`` / ``listen`` / ``compare`` / ``listen_sets`` (figures with
their audio players) and ``md_table`` (a table of results shown as Markdown).

Every plotting helper takes ``ax=None`` (a new figure is made when it is ``None``) and returns
``(fig, ax)``, in the style of libfmp, so that a lesson can place plots side by side.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker
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


def f0_contour(times_s, measured_hz, target_hz, ax=None, title: str | None = "pitch: asked for and played"):
    """A pitch contour asked for (line) against the one measured (dots; nan = unvoiced), in Hz on a log axis, with
    the target's MIDI notes as ticks on the right -> ``(fig, ax)``. Takes the arrays of
    ``course_lib.models.wavenet_eval.contour_cents_error``."""
    t, got, want = (np.asarray(v, dtype=float) for v in (times_s, measured_hz, target_hz))
    fig, ax = _axes(ax, figsize=(7, 2.6))
    ax.plot(t, want, color="k", lw=1.2, label="asked for")
    ax.plot(t, got, ".", color="C3", ms=4, label="played (pYIN)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))  # 200, not 2 x 10^2
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set(xlabel="time (s)", ylabel="f0 (Hz)", title=title)
    lo, hi = np.nanmin(want), np.nanmax(want)
    midis = np.arange(np.ceil(69 + 12 * np.log2(lo / 440)), np.floor(69 + 12 * np.log2(hi / 440)) + 1)
    right = ax.twinx()
    right.set_yscale("log")
    right.set_ylim(ax.get_ylim())
    right.set_yticks(440 * 2 ** ((midis - 69) / 12), [f"{int(m)}" for m in midis])
    right.minorticks_off()
    right.set_ylabel("MIDI")
    ax.legend(loc="upper left")
    return fig, ax


def show(x, sr: int, title: str, kind: str = "log", zoom_ms: float | None = 20.0, player: bool = True):
    """A clip ``(samples,)`` (or the first of ``(batch, samples)``): its first ``zoom_ms`` ms (``None``: all of it) as
    a waveform beside its spectrogram, drawn now, then an audio player -> ``(fig, (waveform_ax, spectrogram_ax))``."""
    from IPython.display import display

    x = torch.as_tensor(x).detach().cpu()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 2.6), gridspec_kw={"width_ratios": [1, 2]})
    zoom = x.shape[-1] if zoom_ms is None else int(zoom_ms / 1000 * sr)
    waveform(x[..., :zoom] if x.shape[-1] > zoom else x, sr, ax=a,
             title=title if zoom_ms is None else f"{title} (first {zoom_ms:g} ms)")
    spectrogram(x, sr, ax=b, kind=kind, title=title)
    plt.show()
    if player:
        display(play(x, sr))
    return fig, (a, b)


def listen(clips, sr: int, titles: Sequence[str] | None = None) -> None:
    """An audio player for each clip of ``clips`` ``(batch, samples)`` (or any iterable of clips), each after its
    title (``titles``: any iterable of strings)."""
    from IPython.display import display

    clips = list(clips)
    titles = list(titles) if titles is not None else None  # any iterable (dict keys, a generator)
    if titles is not None and len(titles) != len(clips):
        raise ValueError(f"listen: {len(clips)} clips but {len(titles)} titles")
    for i, clip in enumerate(clips):
        if titles is not None:
            print(titles[i])
        display(play(torch.as_tensor(clip).detach().cpu(), sr))


def listen_sets(audio_by_name, sr: int, n: int = 1, ncols: int = 4):
    """Sets of clips side by side: the spectrogram of the first clip of each set (one colour scale), then ``n``
    players per set under its name -> ``(fig, axes)``. ``audio_by_name``: ``{name: (batch, samples)}``."""
    from IPython.display import Markdown, display

    names = list(audio_by_name)
    if not names:
        raise ValueError("listen_sets: no sets given")
    firsts = [audio_by_name[k][0] for k in names]
    fig, axes = compare(firsts, sr, names, ncols=min(ncols, len(names)), players=False)
    plt.show()
    for name in names:
        display(Markdown(f"**{name}**"), *[play(torch.as_tensor(a).detach().cpu(), sr)
                                          for a in audio_by_name[name][:n]])
    return fig, axes


def md_table(header: Sequence[str], rows: Sequence[Sequence], show: bool = True) -> str | None:
    """Rows of cells (any values, written with ``str``) under ``header`` as a Markdown table: displayed when ``show``
    (in a notebook; returns None, so a cell ending with it shows the table once), else its text is returned. A row
    with a different number of cells than the header is refused."""
    header = [str(h) for h in header]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"md_table: row {i} has {len(row)} cells, the header {len(header)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    text = "\n".join(lines)
    if show:
        from IPython.display import Markdown, display

        display(Markdown(text))
        return None
    return text


def _equal_length(clips, seconds: float | None, sr: int) -> torch.Tensor:
    """Clips (a batch or a list of 1-D clips of any lengths) -> ``(n, samples)``, each cut or zero-padded to
    ``seconds`` (``None``: the longest clip)."""
    if isinstance(clips, torch.Tensor) and clips.ndim == 2 and seconds is None:
        return clips.detach().cpu()
    flat = [torch.as_tensor(c).detach().cpu().reshape(-1) for c in clips]
    n = int(round(seconds * sr)) if seconds is not None else max(c.shape[-1] for c in flat)
    return torch.stack([torch.nn.functional.pad(c[:n], (0, max(0, n - c.shape[-1]))) for c in flat])


def compare(clips, sr: int, titles: Sequence[str] | None = None, ncols: int | None = None, kind: str = "mel",
            seconds: float | None = None, players: bool = True, cell_size: tuple[float, float] = (3.0, 2.2)):
    """Clips side by side: their spectrograms on one colour scale (:func:`clip_grid`), then a player under each
    title -> ``(fig, axes)``.

    ``clips``: ``(batch, samples)`` or a list of clips of any lengths (cut or zero-padded to ``seconds``, default the
    longest). ``ncols`` defaults to one row. With ``players=False`` nothing is drawn yet: the caller may annotate
    the axes first (``plt.show()`` then draws them).
    """
    from IPython.display import Markdown, display

    batch = _equal_length(list(clips) if not isinstance(clips, torch.Tensor) else clips, seconds, sr)
    titles = list(titles) if titles is not None else None
    if titles is not None and len(titles) != batch.shape[0]:
        raise ValueError(f"compare: {batch.shape[0]} clips but {len(titles)} titles")
    fig, axes = clip_grid(batch, sr, ncols=ncols or batch.shape[0], kind=kind, titles=titles, cell_size=cell_size)
    if players:
        plt.show()
        for i, clip in enumerate(batch):
            display(Markdown(f"**{titles[i] if titles else i}**"), play(clip, sr))
    return fig, axes


def mel_images(mels, sr: int, hop: int, titles: Sequence[str] | None = None, ncols: int = 4,
               vmin: float | None = None, vmax: float | None = None, cell_size: tuple[float, float] = (3.0, 2.2)):
    """Log-mel images ``(batch, n_mels, frames)`` (a generator's output, not audio) in a grid on one colour scale,
    time in seconds (``hop`` samples per frame at ``sr``) -> ``(fig, axes)``."""
    mels = torch.as_tensor(mels).detach().cpu()
    n = mels.shape[0]
    lo = float(mels.min()) if vmin is None else vmin
    hi = float(mels.max()) if vmax is None else vmax
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_size[0] * ncols, cell_size[1] * nrows), squeeze=False)
    extent = (0, mels.shape[-1] * hop / sr, 0, mels.shape[-2])
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(mels[i].numpy(), origin="lower", aspect="auto", vmin=lo, vmax=hi, extent=extent)
        ax.set_title(titles[i] if titles else "", fontsize=9)
        ax.set(xlabel="time (s)", ylabel="mel band")
    fig.tight_layout()
    return fig, axes
