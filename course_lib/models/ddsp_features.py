"""DDSP's conditioning features (Lesson 07): f0 and A-weighted loudness, one value per frame.

Frames are centred: frame ``t`` describes the audio around sample ``t * hop``, so a clip of ``samples``
samples has ``samples // hop + 1`` frames (as :func:`course_lib.spectral.stft` counts them).

**f0: pYIN** (``librosa.pyin``, Mauch & Dixon 2014), not torchaudio's ``detect_pitch_frequency``.
pYIN tracks the pitch with an HMM over 10-cent bins (so it seldom jumps an octave) and says which
frames are *voiced*; torchaudio's detector picks an integer lag of the normalised autocorrelation,
whose steps are coarse for high notes (at 16 kHz a 1 kHz tone lies between lags 16 and 17, 100 cents
apart) and it has no voicing decision. pYIN's answer is quantised to its 10-cent bins; where plain YIN
(``librosa.yin``, parabolic interpolation between lags) agrees within 50 cents its finer value is
kept. pYIN is the slow part (about 0.5 s per second of audio, one thread), so it runs at ``hop`` 256 and
the track is interpolated to the model's frame rate; unvoiced frames get the pitch of the nearest
voiced ones (the harmonic synthesiser always needs an f0; the loudness silences it there).

**Loudness**: the A-weighted power of each STFT frame in dB, scaled so that a full-scale 1 kHz sine
reads -3 dB (its mean square, 0.5), with a -100 dB floor: :func:`loudness_db`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from course_lib import DEFAULT_SR
from course_lib.spectral import stft

F0_FMIN_HZ: float = 50.0
F0_FMAX_HZ: float = 1600.0
PYIN_HOP: int = 256
PYIN_FRAME: int = 1024
LOUDNESS_FLOOR_DB: float = -100.0


def frame_count(samples: int, hop: int) -> int:
    """Centred frames of a clip of ``samples`` samples: ``samples // hop + 1``."""
    return samples // hop + 1


def a_weighting_db(freqs_hz: torch.Tensor | np.ndarray) -> torch.Tensor:
    """IEC 61672 A-weighting in dB at ``freqs_hz`` (0 dB at 1 kHz; -inf at 0 Hz is clamped to -200 dB)."""
    f2 = torch.as_tensor(freqs_hz, dtype=torch.float64) ** 2
    num = (12194.0**2) * f2**2
    den = (f2 + 20.6**2) * torch.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2)
    ra = num / den
    return (20.0 * torch.log10(ra.clamp_min(1e-10)) + 2.0).clamp_min(-200.0).to(torch.float32)


def loudness_db(audio: torch.Tensor, sr: int = DEFAULT_SR, hop: int = 64, n_fft: int = 1024) -> torch.Tensor:
    """A-weighted frame power in dB ``(batch, frames)`` of audio ``(batch, samples)``.

    ``10 log10(2 sum_k A(f_k) |X_k|^2 / (n_fft sum w^2))``: the mean square of the windowed frame
    with every bin weighted by the A-curve (power), floored at :data:`LOUDNESS_FLOOR_DB`.
    """
    spec = stft(audio, n_fft, hop)  # (batch, bins, frames)
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float32, device=spec.device)
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sr)
    weight = (10.0 ** (a_weighting_db(freqs) / 10.0)).to(spec.device).reshape(1, -1, 1)
    power = 2.0 * (spec.abs() ** 2 * weight).sum(dim=1) / (n_fft * float(window.pow(2).sum()))
    return (10.0 * torch.log10(power + 10.0 ** (LOUDNESS_FLOOR_DB / 10.0))).to(torch.float32)


def _fill_unvoiced(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Unvoiced frames take the pitch of the nearest voiced frames (interpolated in log frequency)."""
    out = np.full_like(f0, np.nan)
    idx = np.flatnonzero(voiced & np.isfinite(f0))
    if idx.size == 0:
        return out
    grid = np.arange(f0.shape[0])
    return np.exp2(np.interp(grid, idx, np.log2(f0[idx])))


def pitch_pyin(audio: torch.Tensor, sr: int = DEFAULT_SR, hop: int = 64, fmin: float = F0_FMIN_HZ,
               fmax: float = F0_FMAX_HZ) -> tuple[torch.Tensor, torch.Tensor]:
    """f0 in Hz and voicing per frame, each ``(batch, frames)`` (``frames = samples // hop + 1``).

    pYIN at hop :data:`PYIN_HOP`, refined by YIN where the two agree within 50 cents, interpolated
    to ``hop``. ``voiced`` is pYIN's voicing decision (bool). A clip with no voiced frame gets NaN f0.
    """
    import librosa

    x = torch.as_tensor(audio).detach().to("cpu", torch.float32)
    if x.ndim != 2:
        raise ValueError(f"audio must be (batch, samples), got shape {tuple(x.shape)}")
    samples = x.shape[-1]
    kw = dict(fmin=fmin, fmax=fmax, sr=sr, frame_length=PYIN_FRAME, hop_length=PYIN_HOP)
    coarse, voiced, _ = librosa.pyin(x.numpy(), **kw)
    fine = librosa.yin(x.numpy(), **kw)
    agree = np.isfinite(coarse) & (np.abs(1200.0 * np.log2(fine / np.where(np.isfinite(coarse), coarse, 1.0))) < 50.0)
    refined = np.where(agree, fine, coarse)
    t_coarse = np.arange(refined.shape[-1]) * PYIN_HOP
    t_model = np.arange(frame_count(samples, hop)) * hop
    f0_rows, voiced_rows = [], []
    for f, v in zip(refined, voiced):
        filled = _fill_unvoiced(f, v)
        if np.isfinite(filled).all():
            f0_rows.append(np.exp2(np.interp(t_model, t_coarse, np.log2(filled))))
        else:
            f0_rows.append(np.full(t_model.shape, np.nan))
        voiced_rows.append(np.interp(t_model, t_coarse, v.astype(np.float64)) >= 0.5)
    return (torch.from_numpy(np.stack(f0_rows)).to(torch.float32),
            torch.from_numpy(np.stack(voiced_rows)))


@dataclass
class Features:
    """DDSP's inputs for clips ``(batch, samples)``: f0 (Hz), pYIN voicing and A-weighted loudness (dB), each ``(batch, frames)``."""

    f0_hz: torch.Tensor
    voiced: torch.Tensor
    loudness_db: torch.Tensor
    hop: int
    sr: int

    def __post_init__(self) -> None:
        shapes = {tuple(self.f0_hz.shape), tuple(self.voiced.shape), tuple(self.loudness_db.shape)}
        if len(shapes) != 1 or self.f0_hz.ndim != 2:
            raise ValueError(f"f0, voicing and loudness must share one (batch, frames) shape, got {sorted(shapes)}")

    def __getitem__(self, index) -> "Features":
        return Features(self.f0_hz[index], self.voiced[index], self.loudness_db[index], self.hop, self.sr)

    def to(self, device: torch.device | str) -> "Features":
        return Features(self.f0_hz.to(device), self.voiced.to(device), self.loudness_db.to(device), self.hop, self.sr)


def extract_features(audio: torch.Tensor, sr: int = DEFAULT_SR, hop: int = 64, fmin: float = F0_FMIN_HZ,
                     fmax: float = F0_FMAX_HZ) -> Features:
    """f0 (pYIN), voicing and loudness of audio ``(batch, samples)`` at ``sr`` (no resampling here)."""
    x = torch.as_tensor(audio).detach().to("cpu", torch.float32)
    if x.ndim != 2 or x.shape[-1] <= PYIN_FRAME // 2:
        raise ValueError(f"audio must be (batch, samples > {PYIN_FRAME // 2}), got shape {tuple(x.shape)}")
    f0, voiced = pitch_pyin(x, sr, hop, fmin, fmax)
    return Features(f0, voiced, loudness_db(x, sr, hop), hop, sr)


__all__ = ["F0_FMIN_HZ", "F0_FMAX_HZ", "Features", "a_weighting_db", "extract_features", "frame_count",
           "loudness_db", "pitch_pyin"]
