"""Embedding networks for the distribution metrics: the batching helper and VGGish.

Any object with ``sr`` (Hz), ``embedding_dim`` and ``embed(audio (batch, samples)) -> (batch, dim)``
is an *embedder* (the course's loop classifier in :mod:`course_lib.models.classifiers` is one;
its penultimate layer plays the role of Inception's pool layer in FID). :func:`embed_audio`
runs one over a large set in batches on the chosen device.

VGGish (Hershey et al., 2017) is the standard FAD embedding: a VGG-like CNN on 0.96 s patches
of a 64-band log-mel spectrogram (25 ms windows, 10 ms hop, 125-7500 Hz), four conv blocks
(64, 128, 256+256, 512+512 channels, each followed by 2x2 max pooling) and three fully
connected layers 4096-4096-128. Its published weights are not bundled (about 275 MB); the
module layout here matches the widely used PyTorch port, so its state dict
``vggish-10086976.pth`` loads directly from a local file or the torch hub cache.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Protocol, Union, runtime_checkable

import numpy as np
import torch
import torch.nn as nn
import torchaudio.functional as AF

from course_lib import DEFAULT_SR

PathLike = Union[str, Path]

VGGISH_SR = 16_000
VGGISH_WEIGHTS_FILE = "vggish-10086976.pth"
VGGISH_WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
VGGISH_ENV = "COURSE_VGGISH_WEIGHTS"


@runtime_checkable
class Embedder(Protocol):
    """What :func:`embed_audio` needs: a sample rate, a dimension and a batched ``embed``."""

    sr: int
    embedding_dim: int

    def embed(self, audio: torch.Tensor) -> torch.Tensor:  # (batch, samples) -> (batch, dim)
        ...


def _check_audio(audio: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(audio)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2:
        raise ValueError(f"audio must be (batch, samples) or (samples,), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("audio holds NaN or infinite samples")
    return x.to(torch.float32)


@torch.no_grad()
def embed_audio(audio: torch.Tensor | np.ndarray, embedder: Embedder, sr: int = DEFAULT_SR, batch_size: int = 64,
                device: torch.device | str | None = None, progress: bool = False) -> np.ndarray:
    """Embed clips ``(n, samples)`` at ``sr`` Hz with ``embedder``, in batches on ``device``.

    Audio is resampled to ``embedder.sr`` when the rates differ. The embedder (if an
    ``nn.Module``) is moved to ``device`` and put in eval mode. Returns float64 ``(n, dim)``.
    """
    if not isinstance(embedder, Embedder):
        raise ValueError(f"embedder {type(embedder).__name__} lacks sr / embedding_dim / embed(audio)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = _check_audio(audio)
    dev = torch.device(device) if device is not None else (
        next(embedder.parameters()).device if isinstance(embedder, nn.Module) and any(True for _ in embedder.parameters())
        else torch.device("cpu"))
    if isinstance(embedder, nn.Module):
        embedder.to(dev).eval()
    starts = range(0, x.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="embedding", unit="batch")
    out = []
    for i in starts:
        chunk = x[i:i + batch_size].to(dev)
        if sr != embedder.sr:
            chunk = AF.resample(chunk, sr, embedder.sr)
        out.append(embedder.embed(chunk).to("cpu", torch.float64))
    return torch.cat(out, dim=0).numpy()


# --------------------------------------------------------------------------- VGGish front end

def vggish_mel_matrix(n_fft: int = 512, sr: int = VGGISH_SR, n_mels: int = 64, fmin: float = 125.0,
                      fmax: float = 7500.0, device: torch.device | str | None = None) -> torch.Tensor:
    """VGGish's mel weights ``(n_fft // 2 + 1, n_mels)``: HTK mel scale, triangles in the mel domain, DC bin zeroed."""
    if not 0.0 <= fmin < fmax <= sr / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin} Hz, fmax={fmax} Hz, sr={sr} Hz")
    to_mel = lambda f: 1127.0 * torch.log1p(f / 700.0)  # noqa: E731
    bin_mel = to_mel(torch.linspace(0.0, sr / 2, n_fft // 2 + 1, dtype=torch.float64))
    edges = torch.linspace(float(to_mel(torch.tensor(fmin))), float(to_mel(torch.tensor(fmax))), n_mels + 2,
                           dtype=torch.float64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel[:, None] - lower) / (center - lower)
    falling = (upper - bin_mel[:, None]) / (upper - center)
    weights = torch.minimum(rising, falling).clamp_min(0.0)
    weights[0] = 0.0
    return weights.to(torch.float32).to(device or "cpu")


def vggish_log_mel(audio: torch.Tensor, sr: int = VGGISH_SR) -> torch.Tensor:
    """VGGish log-mel ``log(mel + 0.01)``: ``(batch, samples)`` -> ``(batch, frames, 64)``.

    25 ms periodic-Hann windows (400 samples at 16 kHz), 10 ms hop (160), 512-point FFT magnitude,
    no padding, so ``frames = 1 + (samples - 400) // 160``. Audio at another rate is resampled.
    """
    x = _check_audio(audio)
    if sr != VGGISH_SR:
        x = AF.resample(x, sr, VGGISH_SR)
    win, hop, n_fft = 400, 160, 512
    if x.shape[-1] < win:
        raise ValueError(f"audio of {x.shape[-1]} samples is shorter than one 25 ms VGGish window ({win} samples)")
    # torch centres the 400-sample window inside the 512-sample frame; padding 56 zeros on each side
    # makes frame t window exactly samples [t * hop, t * hop + 400) as the original front end does.
    pad = (n_fft - win) // 2
    x = torch.nn.functional.pad(x, (pad, pad))
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=win,
                      window=torch.hann_window(win, periodic=True, device=x.device), center=False,
                      return_complex=True).abs()  # (batch, 257, frames)
    mel = torch.matmul(spec.transpose(1, 2), vggish_mel_matrix(n_fft, device=x.device))
    return torch.log(mel + 0.01)


def vggish_patches(audio: torch.Tensor, sr: int = VGGISH_SR) -> torch.Tensor:
    """Non-overlapping 0.96 s log-mel patches: ``(batch, samples)`` -> ``(batch, n_patches, 96, 64)``.

    A clip must span at least one patch (15,600 samples at 16 kHz); a partial last patch is dropped.
    """
    lm = vggish_log_mel(audio, sr)
    n_patches = lm.shape[1] // 96
    if n_patches == 0:
        raise ValueError(f"clip too short for VGGish: {lm.shape[1]} log-mel frames, need >= 96 (0.96 s + 15 ms)")
    return lm[:, : n_patches * 96].reshape(lm.shape[0], n_patches, 96, 64)


# --------------------------------------------------------------------------- VGGish network

class VGGish(nn.Module):
    """VGGish: ``(N, 1, 96, 64)`` log-mel patches -> ``(N, 128)`` embeddings.

    Layer indices follow the common PyTorch port so that its published state dict loads as is.
    ``final_relu`` keeps the ReLU after the 128-d layer, as in those released weights.
    """

    sr: int = VGGISH_SR
    embedding_dim: int = 128

    def __init__(self, final_relu: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for spec in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(spec), 3, padding=1), nn.ReLU(inplace=True)]
                c_in = int(spec)
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
                                 nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 128)]
        if final_relu:
            head.append(nn.ReLU(inplace=True))
        self.embeddings = nn.Sequential(*head)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 96, 64)`` or ``(N, 96, 64)`` patches -> ``(N, 128)``."""
        if patches.ndim == 3:
            patches = patches.unsqueeze(1)
        if patches.shape[1:] != (1, 96, 64):
            raise ValueError(f"VGGish expects (N, 1, 96, 64) log-mel patches, got {tuple(patches.shape)}")
        h = self.features(patches)  # (N, 512, 6, 4)
        # flatten in (time, freq, channel) order, as the original TensorFlow model does
        h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)
        return self.embeddings(h)

    def embed_patches(self, audio: torch.Tensor) -> torch.Tensor:
        """Per-patch embeddings ``(batch, n_patches, 128)`` of 16 kHz audio ``(batch, samples)``."""
        p = vggish_patches(audio.to(self.features[0].weight.device), VGGISH_SR)
        b, n = p.shape[:2]
        return self(p.reshape(b * n, 1, 96, 64)).reshape(b, n, -1)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """Clip embeddings ``(batch, 128)``: the mean of the per-patch embeddings (16 kHz audio)."""
        return self.embed_patches(audio).mean(dim=1)


def vggish_weight_candidates() -> list[Path]:
    """Where :func:`load_vggish` looks for weights: ``$COURSE_VGGISH_WEIGHTS``, then the torch hub cache."""
    paths = []
    if os.environ.get(VGGISH_ENV):
        paths.append(Path(os.environ[VGGISH_ENV]))
    paths.append(Path(torch.hub.get_dir()) / "checkpoints" / VGGISH_WEIGHTS_FILE)
    return paths


def load_vggish(weights: PathLike | None = None, device: torch.device | str | None = None,
                final_relu: bool = True) -> VGGish:
    """VGGish with its published weights, in eval mode on ``device``; no download is attempted.

    Args:
        weights: a ``.pth`` state dict; ``None`` searches :func:`vggish_weight_candidates`.
    Raises:
        FileNotFoundError: no weights file found (the message says how to get one).
        ValueError: the file is not a VGGish state dict.
    """
    candidates = [Path(weights)] if weights is not None else vggish_weight_candidates()
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        looked = ", ".join(str(p) for p in candidates)
        raise FileNotFoundError(
            f"VGGish weights not found (looked in: {looked}). They are not shipped with the course "
            f"(about 275 MB). On a machine with internet, download {VGGISH_WEIGHTS_URL} and either put it "
            f"at {Path(torch.hub.get_dir()) / 'checkpoints' / VGGISH_WEIGHTS_FILE}, set {VGGISH_ENV}=/path/to/file, "
            f"or pass weights=/path/to/file. Without them, use the course's loop classifier embedding "
            f"(course_lib.models.classifiers.load_loop_classifier)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / not a torch file
        raise ValueError(f"{path}: not a readable PyTorch state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    model = VGGish(final_relu=final_relu)
    wanted = model.state_dict()
    picked = {k: v for k, v in state.items() if k in wanted}
    missing = sorted(set(wanted) - set(picked))
    if missing:
        raise ValueError(f"{path}: not a VGGish state dict, missing {missing[:4]}{'...' if len(missing) > 4 else ''}")
    bad = [k for k in wanted if tuple(picked[k].shape) != tuple(wanted[k].shape)]
    if bad:
        raise ValueError(f"{path}: tensor shapes do not match VGGish for {bad[:4]}")
    model.load_state_dict(picked)
    return model.to(device or "cpu").eval()


def random_vggish(seed: int = 0, device: torch.device | str | None = None, final_relu: bool = True) -> VGGish:
    """VGGish with seeded random weights (for tests and shape checks; its embeddings mean nothing)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VGGish(final_relu=final_relu)
    return model.to(device or "cpu").eval()


def n_vggish_patches(samples: int, sr: int = VGGISH_SR) -> int:
    """How many 0.96 s patches VGGish takes from a clip of ``samples`` samples at ``sr`` Hz."""
    n = int(math.ceil(samples * VGGISH_SR / sr)) if sr != VGGISH_SR else samples
    return 0 if n < 400 else (1 + (n - 400) // 160) // 96
