"""Audio I/O and sample-level utilities (Lessons 01-05).

Load anything ``soundfile`` reads, save WAV, resample (``torchaudio.functional``), normalise,
mu-law companding (Lesson 03, WaveNet) and notebook playback. Audio is float32 in [-1, 1]:
``(samples,)`` for one mono clip, ``(channels, samples)`` for one multichannel clip,
``(batch, samples)`` for a batch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from course_lib import DEFAULT_SR

PathLike = Union[str, Path]
ArrayLike = Union[np.ndarray, torch.Tensor]


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    return torch.from_numpy(np.ascontiguousarray(x))


def load(path: PathLike, sr: int | None = DEFAULT_SR, mono: bool = True) -> tuple[torch.Tensor, int]:
    """Read an audio file and return ``(audio, sample_rate)``.

    Args:
        path: any file ``soundfile`` reads (WAV, FLAC, OGG, ...).
        sr: resample to this rate in Hz (``None`` keeps the file's rate).
        mono: mix channels down to one (``(samples,)``); else keep ``(channels, samples)``.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is empty, truncated, not audio, or holds NaN/inf samples.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such audio file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty (0 bytes)")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise ValueError(f"{path}: audio file holds no samples (empty or truncated)")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: audio holds NaN or infinite samples")
    audio = torch.from_numpy(data.T.copy())  # (channels, samples)
    if mono:
        audio = audio.mean(dim=0)
    if sr is not None and sr != file_sr:
        audio = resample(audio, file_sr, sr)
        file_sr = sr
    return audio, int(file_sr)


def save(path: PathLike, audio: ArrayLike, sr: int, subtype: str = "PCM_16") -> Path:
    """Write ``audio`` (``(samples,)`` or ``(channels, samples)``, float in [-1, 1]) as WAV.

    Samples outside [-1, 1] are clipped by the 16-bit encoder; NaN/inf raise ``ValueError``.
    Parent folders are created. Returns the path written.
    """
    path = Path(path)
    x = _as_tensor(audio).detach().to("cpu", torch.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"{path}: audio must be (samples,) or (channels, samples), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{path}: refusing to save audio with NaN or infinite samples")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = x.numpy() if x.ndim == 1 else x.T.numpy()
    sf.write(str(path), data, int(sr), subtype=subtype)
    return path


def resample(x: ArrayLike, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis, any leading shape; rates in Hz."""
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    t = _as_tensor(x).to(torch.float32)
    if orig_sr == new_sr:
        return t
    g = math.gcd(int(orig_sr), int(new_sr))
    return AF.resample(t, int(orig_sr) // g, int(new_sr) // g)


def peak_normalize(x: ArrayLike, peak: float = 0.99, eps: float = 1e-9) -> torch.Tensor:
    """Scale each clip (last axis) so its largest absolute sample equals ``peak``; silence stays silent."""
    t = _as_tensor(x).to(torch.float32)
    m = t.abs().amax(dim=-1, keepdim=True)
    return torch.where(m > eps, t * (peak / m.clamp_min(eps)), t)


def rms_db(x: ArrayLike, eps: float = 1e-12) -> torch.Tensor:
    """RMS level of each clip (last axis) in dBFS (a full-scale sine is about -3 dB)."""
    t = _as_tensor(x).to(torch.float32)
    return 10.0 * torch.log10(t.pow(2).mean(dim=-1) + eps)


def rms_normalize(x: ArrayLike, target_db: float = -20.0, eps: float = 1e-9) -> torch.Tensor:
    """Scale each clip (last axis) to an RMS level of ``target_db`` dBFS; silence stays silent."""
    t = _as_tensor(x).to(torch.float32)
    rms = t.pow(2).mean(dim=-1, keepdim=True).sqrt()
    gain = (10.0 ** (target_db / 20.0)) / rms.clamp_min(eps)
    return torch.where(rms > eps, t * gain, t)


def mu_law_encode(x: ArrayLike, mu: int = 255, quantize: bool = True) -> torch.Tensor:
    """mu-law companding (Lesson 03): ``sign(x) ln(1 + mu|x|) / ln(1 + mu)``.

    With ``quantize`` the result is mapped to integer classes ``0..mu`` (long tensor, 256
    classes for mu=255); otherwise the continuous companded value in [-1, 1] is returned.
    """
    t = _as_tensor(x).to(torch.float32).clamp(-1.0, 1.0)
    y = torch.sign(t) * torch.log1p(mu * t.abs()) / math.log1p(mu)
    if not quantize:
        return y
    return torch.round((y + 1.0) / 2.0 * mu).to(torch.long).clamp(0, mu)


def mu_law_decode(y: ArrayLike, mu: int = 255, quantized: bool = True) -> torch.Tensor:
    """Inverse of :func:`mu_law_encode`: classes ``0..mu`` (or companded [-1, 1]) to audio in [-1, 1]."""
    t = _as_tensor(y)
    if quantized:
        t = t.to(torch.float32) / mu * 2.0 - 1.0
    else:
        t = t.to(torch.float32)
    return torch.sign(t) * (torch.pow(1.0 + mu, t.abs()) - 1.0) / mu


def snr_db(reference: ArrayLike, estimate: ArrayLike, eps: float = 1e-12) -> torch.Tensor:
    """Signal-to-noise ratio in dB of ``estimate`` against ``reference`` (last axis; same shape)."""
    r = _as_tensor(reference).to(torch.float64)
    e = _as_tensor(estimate).to(torch.float64)
    if r.shape != e.shape:
        raise ValueError(f"shapes differ: reference {tuple(r.shape)} vs estimate {tuple(e.shape)}")
    noise = (r - e).pow(2).sum(dim=-1)
    return (10.0 * torch.log10(r.pow(2).sum(dim=-1) / (noise + eps) + eps)).to(torch.float32)


def play(x: ArrayLike, sr: int, normalize: bool = True):
    """An ``IPython.display.Audio`` player for a clip ``(samples,)`` (or the first of a batch).

    ``normalize=False`` keeps the true loudness (values are clipped to [-1, 1]), which is
    what you want when comparing levels by ear.
    """
    from IPython.display import Audio

    t = _as_tensor(x).detach().to("cpu", torch.float32)
    if t.ndim == 2:
        t = t[0]
    if t.ndim != 1:
        raise ValueError(f"play() takes (samples,) or (batch, samples), got shape {tuple(t.shape)}")
    data = t.numpy()
    if not normalize:
        data = np.clip(data, -1.0, 1.0)
        # IPython rescales unless told otherwise; keep the level as it is
        return Audio(data, rate=int(sr), normalize=False)
    return Audio(data, rate=int(sr))
