"""GANSynth's spectral "images" (Lesson 04): log-magnitude plus phase, IF or mel-IF.

GANSynth (Engel et al., ICLR 2019) does not generate samples; it generates a two-channel
image ``(2, n_freq, n_frames)`` per note and inverts it to audio exactly. This module turns
audio into such images and back, on top of :mod:`course_lib.spectral` (STFT, log-magnitude,
instantaneous frequency and its inverse). Settings follow the published GANSynth code:

* ``n_fft = 2 * n_freq`` with 75 % overlap (``hop = n_fft // 4``), periodic Hann window;
* the Nyquist bin is dropped so the height ``n_freq = n_fft // 2`` is a power of two
  (bin ``k`` is ``k * sr / n_fft`` Hz; DC is kept); inversion puts a zero Nyquist bin back;
* channel 0 is ``log(|X| + 1e-6)`` (``"phase"``, ``"if"``) or the log *power* on an HTK mel
  scale with as many mel bands as linear bins (``"mel_if"``);
* channel 1 is the wrapped phase divided by pi (``"phase"``), the instantaneous frequency
  (phase unwrapped along time, first difference, divided by pi: ``"if"``), or the same for
  the phase mapped onto the mel bands (``"mel_if"``);
* the width ``n_frames`` is a power of two: audio is zero-padded to ``(n_frames - 1) * hop``
  samples (a centred STFT then has exactly ``n_frames`` frames) and cropped back on inversion.

The paper's sizes for 4 s notes at 16 kHz are ``n_fft = 1024``: images ``512 x 256``
(freq x time) and, with "+H" (higher frequency resolution), ``n_fft = 2048``: ``1024 x 128``.
:meth:`SpecImageConfig.plus_h` switches a configuration to its +H variant.

``"phase"`` and ``"if"`` round-trip exactly (up to the dropped Nyquist bin and float32);
``"mel_if"`` is lossy: the mel map is inverted with a pseudo-inverse, which is exact at low
frequencies (mel bands narrower than the linear bins) and smooths the spectrum inside each
high-frequency mel band. :func:`round_trip_quality` measures both.

Images fed to the GAN are scaled to [-1, 1] per channel by an :class:`ImageNormalizer`
fitted on the training images (an exact affine map, stored with the model).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import torch

from course_lib import DEFAULT_SR
from course_lib.audio import snr_db
from course_lib.spectral import (MelConfig, instantaneous_frequency, istft, log_magnitude, mel_filterbank,
                                 phase_from_if, precise_dtype, stft, wrap_phase)

KINDS: tuple[str, ...] = ("phase", "if", "mel_if")
MAG_FLOOR: float = 1e-6


def _is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


@dataclass(frozen=True)
class SpecImageConfig:
    """How a note becomes a GANSynth image.

    Attributes:
        kind: ``"phase"``, ``"if"`` or ``"mel_if"`` (the paper's ablation).
        sr: sample rate in Hz.
        n_fft: FFT size in samples (a power of two); the image height is ``n_fft // 2`` bins.
        n_frames: image width in STFT frames (a power of two); ``hop = n_fft // 4``.
        floor: magnitude floor inside the log (GANSynth: 1e-6).
    """

    kind: str = "if"
    sr: int = DEFAULT_SR
    n_fft: int = 1024
    n_frames: int = 256
    floor: float = MAG_FLOOR

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not _is_pow2(self.n_fft) or self.n_fft < 8:
            raise ValueError(f"n_fft must be a power of two >= 8, got {self.n_fft}")
        if not _is_pow2(self.n_frames) or self.n_frames < 2:
            raise ValueError(f"n_frames must be a power of two >= 2, got {self.n_frames}")
        if self.sr <= 0:
            raise ValueError(f"sr must be > 0 Hz, got {self.sr}")
        if not self.floor > 0:
            raise ValueError(f"floor must be > 0, got {self.floor}")

    @property
    def hop(self) -> int:
        """Hop size in samples (75 % overlap)."""
        return self.n_fft // 4

    @property
    def n_freq(self) -> int:
        """Image height in bins (Nyquist bin dropped)."""
        return self.n_fft // 2

    @property
    def samples(self) -> int:
        """Longest clip, in samples, that fits in ``n_frames`` centred frames."""
        return (self.n_frames - 1) * self.hop

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, n_freq, n_frames)`` = ``(2, n_fft // 2, n_frames)``."""
        return (2, self.n_freq, self.n_frames)

    def plus_h(self) -> "SpecImageConfig":
        """The "+H" variant: twice the FFT size (and hop), half the frames, same duration."""
        if self.n_frames < 4:
            raise ValueError(f"n_frames={self.n_frames} is too small to halve for +H")
        return replace(self, n_fft=self.n_fft * 2, n_frames=self.n_frames // 2)

    def with_kind(self, kind: str) -> "SpecImageConfig":
        """The same geometry with another representation."""
        return replace(self, kind=kind)

    def to_dict(self) -> dict:
        return asdict(self)


def config_for_duration(duration: float, kind: str = "if", sr: int = DEFAULT_SR, n_fft: int = 1024,
                        high_res: bool = False) -> SpecImageConfig:
    """The smallest power-of-two frame count that holds ``duration`` seconds at ``sr`` Hz.

    ``high_res=True`` gives the +H variant (``2 * n_fft``). Example: 4 s at 16 kHz with
    ``n_fft=1024`` -> ``512 x 256`` images; with +H ``1024 x 128``.
    """
    if not duration > 0:
        raise ValueError(f"duration must be > 0 s, got {duration}")
    n_fft = n_fft * 2 if high_res else n_fft
    hop = n_fft // 4
    samples = int(round(duration * sr))
    frames = 2 ** math.ceil(math.log2(max(2, math.ceil(samples / hop) + 1)))
    return SpecImageConfig(kind=kind, sr=sr, n_fft=n_fft, n_frames=frames)


def paper_config(kind: str = "if", high_res: bool = True) -> SpecImageConfig:
    """The published GANSynth geometry for 4 s notes at 16 kHz (``high_res``: the "+H" models)."""
    return config_for_duration(4.0, kind=kind, sr=16_000, n_fft=1024, high_res=high_res)


# --------------------------------------------------------------------------- mel map

@lru_cache(maxsize=16)
def _mel_maps(sr: int, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    n_freq = n_fft // 2
    cfg = MelConfig(sr=sr, n_fft=n_fft, hop=n_fft // 4, n_mels=n_freq, fmin=0.0, fmax=sr / 2, htk=True)
    with warnings.catch_warnings():  # narrow low-frequency bands hold no bin centre: expected here
        warnings.simplefilter("ignore", UserWarning)
        fb = mel_filterbank(cfg).to(torch.float64)[:, :n_freq]
    rows = fb.sum(dim=1, keepdim=True)
    fwd = torch.where(rows > 0, fb / rows.clamp_min(1e-300), torch.zeros_like(fb))
    inv = torch.linalg.pinv(fwd, rtol=1e-6)
    return fwd.to(torch.float32), inv.to(torch.float32)


def mel_matrices(cfg: SpecImageConfig, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(to_mel (n_freq, n_freq), from_mel (n_freq, n_freq))`` for mel-IF.

    ``to_mel`` holds HTK-scale triangular bands from 0 Hz to ``sr / 2``, one per linear bin,
    each row normalised to sum to 1 (a band is a weighted *average* of its bins, so a band's
    IF is a frequency in the same units); rows of bands that cover no bin centre are zero.
    ``from_mel`` is its Moore-Penrose pseudo-inverse.
    """
    fwd, inv = _mel_maps(cfg.sr, cfg.n_fft)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return fwd.to(dev), inv.to(dev)


# --------------------------------------------------------------------------- the pitch clock

def harmonic_clock_advance(cfg: SpecImageConfig, f0: torch.Tensor) -> torch.Tensor:
    """Phase advance per hop (radians) of the harmonic of ``f0`` nearest each row: ``(batch, n_freq)`` float64.

    Row ``k`` (centre ``k sr / n_fft`` Hz) gets harmonic ``h = max(1, round(f_k / f0))`` and advances by
    ``2 pi h f0 hop / sr`` per frame: the phase ramp a steady note at ``f0`` (Hz, ``(batch,)``) draws in that row.
    """
    if cfg.kind not in ("phase", "if"):
        raise ValueError(f"the pitch clock needs a linear-frequency image (kind 'phase' or 'if'), got {cfg.kind!r}")
    f0 = torch.as_tensor(f0, dtype=torch.float64).reshape(-1, 1)
    if f0.numel() and not bool((f0 > 0).all()):
        raise ValueError(f"fundamental frequencies must be > 0 Hz, got {f0.reshape(-1).tolist()}")
    fk = torch.arange(cfg.n_freq, dtype=torch.float64, device=f0.device) * cfg.sr / cfg.n_fft
    harmonic = torch.round(fk / f0).clamp_min(1.0)
    return 2 * math.pi * harmonic * f0 * cfg.hop / cfg.sr


def pitch_clock_shift(images: torch.Tensor, f0: torch.Tensor, cfg: SpecImageConfig, sign: float = -1.0) -> torch.Tensor:
    """Channel 1 (phase / pi or IF) of images ``(batch, 2, n_freq, n_frames)`` taken relative to the note's clock.

    ``sign=-1`` subtracts the phase ramp of :func:`harmonic_clock_advance` (frame ``t``: ``t`` advances) from the
    phase, which for IF means subtracting one advance from every frame but the first (IF's first frame is the
    phase itself); ``sign=+1`` adds it back (the exact inverse, up to float rounding). Results are wrapped to
    [-1, 1). A steady note at ``f0`` becomes nearly constant phase / IF near 0 on its harmonics, so a generator
    that paints the *relative* channel no longer has to invent the pitch's phase ramps. Channel 0 is unchanged.
    """
    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[1] != 2 or x.shape[2] != cfg.n_freq:
        raise ValueError(f"images must be (batch, 2, {cfg.n_freq}, frames), got {tuple(x.shape)}")
    advance = harmonic_clock_advance(cfg, torch.as_tensor(f0).to(x.device))
    if advance.shape[0] != x.shape[0]:
        raise ValueError(f"{advance.shape[0]} pitches for {x.shape[0]} images")
    t = torch.arange(x.shape[-1], dtype=torch.float64, device=x.device)
    steps = t if cfg.kind == "phase" else (t > 0).to(torch.float64)
    ramp = advance.unsqueeze(-1) * steps
    second = wrap_phase(x[:, 1].to(torch.float64) * math.pi + sign * ramp) / math.pi
    return torch.stack([x[:, 0], second.to(x.dtype)], dim=1)


# --------------------------------------------------------------------------- the lecture's picture

def phase_views(audio: torch.Tensor, n_fft: int = 1024, hop: int | None = None) -> dict[str, torch.Tensor]:
    """The three ways of looking at STFT phase, for plots: each ``(batch, n_fft // 2 + 1, frames)``.

    ``"phase"``: wrapped phase in radians, (-pi, pi] (jumps by 2 pi: the lecture's orange boxes);
    ``"unwrapped"``: the same phase unwrapped along time (radians, a smooth ramp for a steady partial);
    ``"if"``: its first difference divided by pi (GANSynth's IF; constant for a steady partial);
    ``"logmag"``: ``log(|X| + 1e-6)``. ``hop`` defaults to ``n_fft // 4`` (75 % overlap).
    """
    hop = hop or n_fft // 4
    spec = stft(_check_audio(audio), n_fft, hop)
    phase = torch.angle(spec)
    inst_freq = instantaneous_frequency(phase)
    precise = precise_dtype(inst_freq.device)
    unwrapped = torch.cumsum(inst_freq.to(precise) * math.pi, dim=-1).to(torch.float32)
    return {"phase": phase, "unwrapped": unwrapped, "if": inst_freq, "logmag": log_magnitude(spec, MAG_FLOOR)}


# --------------------------------------------------------------------------- audio <-> image

def _check_audio(audio: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(audio)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2:
        raise ValueError(f"audio must be (batch, samples), got shape {tuple(x.shape)}")
    return x.to(torch.float32)


def audio_to_image(audio: torch.Tensor, cfg: SpecImageConfig) -> torch.Tensor:
    """Audio ``(batch, samples)`` at ``cfg.sr`` Hz -> raw image ``(batch, 2, n_freq, n_frames)``.

    Clips shorter than ``cfg.samples`` are zero-padded; longer clips raise ``ValueError``.
    Channel 0: log-magnitude (or log mel power); channel 1: phase / pi, IF or mel-IF.
    """
    x = _check_audio(audio)
    if x.shape[-1] > cfg.samples:
        raise ValueError(f"audio of {x.shape[-1]} samples is longer than the {cfg.samples} samples "
                         f"that {cfg.n_frames} frames of hop {cfg.hop} hold; raise n_frames")
    x = torch.nn.functional.pad(x, (0, cfg.samples - x.shape[-1]))
    spec = stft(x, cfg.n_fft, cfg.hop)[:, : cfg.n_freq]  # drop the Nyquist bin
    phase = torch.angle(spec)
    if cfg.kind == "phase":
        return torch.stack([log_magnitude(spec, cfg.floor), phase / math.pi], dim=1)
    inst_freq = instantaneous_frequency(phase)
    if cfg.kind == "if":
        return torch.stack([log_magnitude(spec, cfg.floor), inst_freq], dim=1)
    to_mel, _ = mel_matrices(cfg, x.device)
    mel_power = torch.matmul(to_mel, spec.abs().pow(2))
    mel_if = torch.matmul(to_mel, inst_freq)  # = IF of the mel-mapped unwrapped phase (the map is linear)
    return torch.stack([torch.log(mel_power + cfg.floor), mel_if], dim=1)


def image_to_audio(image: torch.Tensor, cfg: SpecImageConfig, length: int | None = None) -> torch.Tensor:
    """Raw image ``(batch, 2, n_freq, n_frames)`` -> audio ``(batch, length or cfg.samples)`` float32.

    Inverse of :func:`audio_to_image` (exact for ``"phase"`` and ``"if"``; pseudo-inverse of the
    mel map for ``"mel_if"``). The Nyquist bin is restored as zero.
    """
    img = torch.as_tensor(image)
    if img.ndim == 3:
        img = img.unsqueeze(0)
    if img.ndim != 4 or tuple(img.shape[1:]) != cfg.image_shape:
        raise ValueError(f"image must be (batch, {', '.join(map(str, cfg.image_shape))}), got {tuple(img.shape)}")
    if length is not None and not 0 < length <= cfg.samples:
        raise ValueError(f"length must be in 1..{cfg.samples} samples, got {length}")
    precise = precise_dtype(img.device)
    img = img.to(precise)
    first, second = img[:, 0], img[:, 1]
    if cfg.kind == "mel_if":
        _, from_mel = mel_matrices(cfg, img.device)
        from_mel = from_mel.to(precise)
        power = torch.matmul(from_mel, (torch.exp(first) - cfg.floor).clamp_min(0.0)).clamp_min(0.0)
        magnitude = power.sqrt()
        phase = phase_from_if(torch.matmul(from_mel, second))
    else:
        magnitude = (torch.exp(first) - cfg.floor).clamp_min(0.0)
        phase = second * math.pi if cfg.kind == "phase" else phase_from_if(second)
    spec = torch.polar(magnitude, phase)
    spec = torch.nn.functional.pad(spec, (0, 0, 0, 1))  # zero Nyquist bin back
    audio = istft(spec, cfg.n_fft, cfg.hop, length=cfg.samples).to(torch.float32)
    return audio[:, :length] if length is not None else audio


# --------------------------------------------------------------------------- normalisation

@dataclass
class ImageNormalizer:
    """Per-channel affine map of raw images to [-1, 1]: ``(x - center) / half_range``.

    ``center`` and ``half_range`` hold one value per channel (2). Fit it on training images
    with :meth:`fit`; it is stored in model checkpoints via :meth:`to_dict`.
    """

    center: tuple[float, float] = (0.0, 0.0)
    half_range: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.center) != 2 or len(self.half_range) != 2:
            raise ValueError("center and half_range need one value per channel (2)")
        if min(self.half_range) <= 0:
            raise ValueError(f"half_range must be > 0, got {self.half_range}")

    @classmethod
    def fit(cls, images: torch.Tensor, cfg: SpecImageConfig) -> "ImageNormalizer":
        """Map the observed range of channel 0 to [-1, 1]; channel 1 (phase/pi, IF) is already in [-1, 1].

        Args:
            images: raw images ``(batch, 2, n_freq, n_frames)`` from :func:`audio_to_image`.
        """
        if images.ndim != 4 or images.shape[1] != 2:
            raise ValueError(f"images must be (batch, 2, freq, frames), got {tuple(images.shape)}")
        lo = max(float(images[:, 0].min()), math.log(cfg.floor))
        hi = float(images[:, 0].max())
        if hi <= lo:
            hi = lo + 1.0
        return cls(center=((hi + lo) / 2, 0.0), half_range=((hi - lo) / 2, 1.0))

    def _affine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.tensor(self.center, dtype=x.dtype, device=x.device).view(1, 2, 1, 1)
        h = torch.tensor(self.half_range, dtype=x.dtype, device=x.device).view(1, 2, 1, 1)
        return c, h

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Raw ``(batch, 2, F, T)`` -> normalised (training range [-1, 1])."""
        c, h = self._affine(images)
        return (images - c) / h

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised ``(batch, 2, F, T)`` -> raw (exact inverse of :meth:`normalize`)."""
        c, h = self._affine(images)
        return images * h + c

    def to_dict(self) -> dict:
        return {"center": list(self.center), "half_range": list(self.half_range)}

    @classmethod
    def from_dict(cls, d: dict) -> "ImageNormalizer":
        return cls(center=tuple(d["center"]), half_range=tuple(d["half_range"]))


# --------------------------------------------------------------------------- quality of a round trip

def log_spectral_distance(reference: torch.Tensor, estimate: torch.Tensor, n_fft: int = 1024,
                          hop: int = 256, floor_db: float = -80.0) -> torch.Tensor:
    """Log-spectral distance in dB per clip ``(batch,)``: RMS over bins and frames of the dB difference.

    Both spectra are floored at ``floor_db`` below the reference's peak, so silence does not dominate.
    """
    r = stft(_check_audio(reference), n_fft, hop).abs()
    e = stft(_check_audio(estimate), n_fft, hop).abs()
    r_db = 20 * torch.log10(r + 1e-12)
    e_db = 20 * torch.log10(e + 1e-12)
    top = r_db.amax(dim=(1, 2), keepdim=True)
    r_db = torch.maximum(r_db, top + floor_db)
    e_db = torch.maximum(e_db, top + floor_db)
    return (r_db - e_db).pow(2).mean(dim=(1, 2)).sqrt()


def round_trip_quality(audio: torch.Tensor, cfg: SpecImageConfig, quantize_bits: int | None = None) -> dict:
    """Audio -> image -> audio, measured: ``{"snr_db": (batch,), "lsd_db": (batch,)}``.

    ``quantize_bits`` (optional) rounds the normalised image to that many bits per value
    first, a stand-in for a generator's small errors (shows why raw phase is fragile).
    """
    x = _check_audio(audio)
    img = audio_to_image(x, cfg)
    if quantize_bits is not None:
        norm = ImageNormalizer.fit(img, cfg)
        levels = 2 ** quantize_bits - 1
        q = torch.round((norm.normalize(img).clamp(-1, 1) + 1) / 2 * levels) / levels * 2 - 1
        img = norm.denormalize(q)
    y = image_to_audio(img, cfg, length=x.shape[-1])
    return {"snr_db": snr_db(x, y), "lsd_db": log_spectral_distance(x, y, cfg.n_fft, cfg.hop)}
