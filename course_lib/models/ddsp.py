"""DDSP: a neural network that plays a harmonic-plus-noise synthesiser (Engel et al., 2020; Lesson 07).

The network never outputs samples. A small decoder reads the pitch (f0) and loudness of every frame
and predicts *synthesiser controls*; Lesson 01's DSP turns them into audio, and the multi-scale
spectral loss (:func:`course_lib.spectral.multiscale_spectral_distance`) is back-propagated through the
oscillators and the noise filter to the decoder.

=========================  =====================================================================
control (per frame)        use
=========================  =====================================================================
amplitude                  overall level of the harmonic part (``exp_sigmoid``, > 0)
harmonic distribution      ``(n_harmonics,)`` sums to 1 over the harmonics below Nyquist
noise magnitudes           ``(n_noise_bands,)`` gains from 0 Hz to Nyquist of a frame-wise FIR
=========================  =====================================================================

Controls are upsampled to the sample rate by linear interpolation between frame centres (frame
``t`` sits at sample ``t * hop``); :func:`course_lib.synth.additive.harmonic_synth` sums the harmonics
(silencing those above Nyquist sample by sample) and :func:`course_lib.synth.filters.filtered_noise`
shapes white noise. An optional learnable reverb (an impulse response, convolved by FFT) follows.

Decoder: one small MLP for f0 and one for loudness, a GRU over frames (``gru=False``: none), an MLP
on [GRU output, both MLP outputs] and a linear head — DDSP's decoder at a CPU-sized width.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import DEFAULT_SR
from course_lib.audio import resample
from course_lib.models.ddsp_features import Features, extract_features, frame_count
from course_lib.runtime.checkpoint import checkpoint_meta, load_checkpoint
from course_lib.runtime.model_card import read_model_card
from course_lib.spectral import MULTISCALE_FFT_SIZES, multiscale_spectral_distance
from course_lib.synth.additive import harmonic_synth
from course_lib.synth.filters import filtered_noise

REBUILD_COMMAND = ("python -m course_lib.train.ddsp --preset full --threads 1 --no-resume "
                   "--out course_lib/assets/ddsp_organ.pt")
"""The command that trains the shipped DDSP (its card, ``course_lib/assets/ddsp_organ.md``, gives the full recipe)."""

Device = Union[str, torch.device, None]
PathLike = Union[str, Path]


@dataclass(frozen=True)
class DDSPConfig:
    """Sizes of a DDSP model and the statistics it normalises its inputs with.

    Attributes:
        sr: sample rate in Hz. hop: samples per control frame (64 = 4 ms at 16 kHz, DDSP's 250 frames/s).
        n_harmonics: harmonics of the additive synthesiser. n_noise_bands: magnitudes of each noise FIR.
        hidden: width of the MLPs and the GRU. gru: a GRU over frames (else frame-wise MLPs only).
        reverb_seconds: length of a learnable reverb impulse response (0 = no reverb).
        loudness_mean_db, loudness_std_db: standardise loudness (set from the training notes).
        f0_range_hz: lowest and highest f0 of the training notes (reported; transfer works outside it).
        fft_sizes: FFT sizes of the multi-scale spectral loss.
    """

    sr: int = DEFAULT_SR
    hop: int = 64
    n_harmonics: int = 60
    n_noise_bands: int = 65
    hidden: int = 128
    gru: bool = True
    reverb_seconds: float = 0.0
    loudness_mean_db: float = -40.0
    loudness_std_db: float = 20.0
    f0_range_hz: tuple[float, float] = (50.0, 1600.0)
    fft_sizes: tuple[int, ...] = field(default=MULTISCALE_FFT_SIZES)

    def __post_init__(self) -> None:
        for name in ("sr", "hop", "n_harmonics", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DDSPConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_noise_bands < 2:
            raise ValueError(f"DDSPConfig.n_noise_bands must be >= 2, got {self.n_noise_bands}")
        if self.reverb_seconds < 0:
            raise ValueError(f"DDSPConfig.reverb_seconds must be >= 0, got {self.reverb_seconds}")
        if self.loudness_std_db <= 0:
            raise ValueError(f"DDSPConfig.loudness_std_db must be > 0, got {self.loudness_std_db}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["f0_range_hz"] = list(self.f0_range_hz)
        d["fft_sizes"] = list(self.fft_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DDSPConfig":
        d = {k: v for k, v in d.items() if k != "kind"}
        return cls(**{**d, "f0_range_hz": tuple(d.get("f0_range_hz", (50.0, 1600.0))),
                      "fft_sizes": tuple(d.get("fft_sizes", MULTISCALE_FFT_SIZES))})


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7) -> torch.Tensor:
    """DDSP's positive output nonlinearity ``max_value * sigmoid(x) ** log(exponent) + threshold``."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def upsample_frames(frames: torch.Tensor, hop: int, samples: int) -> torch.Tensor:
    """Controls ``(batch, channels, frames)`` at samples ``0, hop, 2 hop, ...`` -> ``(batch, channels, samples)``.

    Linear interpolation between frame centres (the last frame is held if the clip runs past it).
    """
    if frames.ndim != 3:
        raise ValueError(f"frames must be (batch, channels, frames), got shape {tuple(frames.shape)}")
    n = frames.shape[-1]
    if n == 1:
        return frames.expand(-1, -1, samples)
    ramp = torch.arange(hop, dtype=frames.dtype, device=frames.device) / hop  # (hop,)
    left = frames[..., :-1, None].expand(*frames.shape[:-1], n - 1, hop)
    right = frames[..., 1:, None].expand(*frames.shape[:-1], n - 1, hop)
    out = torch.lerp(left, right, ramp).reshape(*frames.shape[:-1], (n - 1) * hop)  # samples 0 .. (n-1) hop - 1
    if out.shape[-1] >= samples:
        return out[..., :samples]
    return torch.cat([out, frames[..., -1:].expand(*frames.shape[:-1], samples - out.shape[-1])], dim=-1)


def _mlp(n_in: int, hidden: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.1)]
    return nn.Sequential(*mods)


class DDSPDecoder(nn.Module):
    """(scaled f0, scaled loudness) per frame ``(batch, frames, 2)`` -> raw controls ``(batch, frames, 1 + K + B)``."""

    def __init__(self, config: DDSPConfig) -> None:
        super().__init__()
        h = config.hidden
        self.f0_mlp = _mlp(1, h)
        self.loudness_mlp = _mlp(1, h)
        self.gru = nn.GRU(2 * h, h, batch_first=True) if config.gru else None
        self.out_mlp = _mlp(3 * h if config.gru else 2 * h, h)
        self.head = nn.Linear(h, 1 + config.n_harmonics + config.n_noise_bands)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        a = self.f0_mlp(inputs[..., :1])
        b = self.loudness_mlp(inputs[..., 1:2])
        h = torch.cat([a, b], dim=-1)
        if self.gru is not None:
            g, _ = self.gru(h)
            h = torch.cat([g, h], dim=-1)
        return self.head(self.out_mlp(h))


class Reverb(nn.Module):
    """A learnable impulse response (``seconds`` long), added to the dry signal by FFT convolution."""

    def __init__(self, seconds: float, sr: int) -> None:
        super().__init__()
        n = max(2, int(round(seconds * sr)))
        g = torch.Generator().manual_seed(0)
        decay = torch.exp(-torch.arange(n, dtype=torch.float32) / (0.05 * sr))
        self.ir = nn.Parameter(1e-3 * torch.randn(n, generator=g) * decay)

    def forward(self, dry: torch.Tensor) -> torch.Tensor:
        n = dry.shape[-1] + self.ir.shape[0] - 1
        n_fft = 1 << (n - 1).bit_length()
        wet = torch.fft.irfft(torch.fft.rfft(dry, n=n_fft) * torch.fft.rfft(self.ir, n=n_fft), n=n_fft)
        return dry + wet[..., : dry.shape[-1]]


class DDSP(nn.Module):
    """Decoder + harmonic-plus-noise synthesiser (+ optional reverb). See the module docstring."""

    def __init__(self, config: DDSPConfig | None = None, device: Device = None) -> None:
        super().__init__()
        self.config = config or DDSPConfig()
        self.decoder = DDSPDecoder(self.config)
        with torch.no_grad():  # start with quiet noise (DDSP's initial bias of -5 on the noise magnitudes)
            self.decoder.head.bias[1 + self.config.n_harmonics:] = -5.0
        self.reverb = Reverb(self.config.reverb_seconds, self.config.sr) if self.config.reverb_seconds > 0 else None
        if device is not None:
            self.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def scale_inputs(self, f0_hz: torch.Tensor, loudness_db: torch.Tensor) -> torch.Tensor:
        """``(batch, frames)`` f0 and loudness -> network inputs ``(batch, frames, 2)``: MIDI / 127, standardised dB."""
        midi = 69.0 + 12.0 * torch.log2(f0_hz.clamp_min(1.0) / 440.0)
        ld = (loudness_db - self.config.loudness_mean_db) / self.config.loudness_std_db
        return torch.stack([midi / 127.0, ld], dim=-1)

    def controls(self, f0_hz: torch.Tensor, loudness_db: torch.Tensor) -> dict[str, torch.Tensor]:
        """Synthesiser controls per frame: ``amplitude (batch, frames)``, ``harmonic_distribution (batch, frames, K)``
        (zero at or above Nyquist, summing to 1 otherwise) and ``noise_magnitudes (batch, frames, B)``."""
        cfg = self.config
        if f0_hz.ndim != 2 or f0_hz.shape != loudness_db.shape:
            raise ValueError(f"f0 and loudness must both be (batch, frames), got {tuple(f0_hz.shape)} and "
                             f"{tuple(loudness_db.shape)}")
        if not torch.isfinite(f0_hz).all() or not torch.isfinite(loudness_db).all():
            raise ValueError("f0 and loudness must be finite (fill unvoiced f0 frames first)")
        raw = self.decoder(self.scale_inputs(f0_hz, loudness_db))
        amplitude = exp_sigmoid(raw[..., 0])
        k = torch.arange(1, cfg.n_harmonics + 1, device=raw.device, dtype=raw.dtype)
        below = (f0_hz.unsqueeze(-1) * k) < 0.5 * cfg.sr
        dist = exp_sigmoid(raw[..., 1:1 + cfg.n_harmonics]) * below
        dist = dist / dist.sum(dim=-1, keepdim=True).clamp_min(1e-7)
        noise = exp_sigmoid(raw[..., 1 + cfg.n_harmonics:] - 5.0)
        return {"amplitude": amplitude, "harmonic_distribution": dist, "noise_magnitudes": noise}

    def synthesize(self, f0_hz: torch.Tensor, controls: dict[str, torch.Tensor], n_samples: int,
                   seed: int | None = None) -> dict[str, torch.Tensor]:
        """Controls -> ``{"audio", "harmonic", "noise"}``, each ``(batch, n_samples)``; ``seed`` fixes the noise."""
        cfg = self.config
        frames = f0_hz.shape[-1]
        if frames < frame_count(n_samples, cfg.hop) - 1:
            raise ValueError(f"{frames} frames of hop {cfg.hop} cannot cover {n_samples} samples")
        amps = controls["amplitude"].unsqueeze(-1) * controls["harmonic_distribution"]  # (batch, frames, K)
        f0_s = upsample_frames(f0_hz.unsqueeze(1), cfg.hop, n_samples)[:, 0]
        harmonic = harmonic_synth(f0_s, upsample_frames(amps.transpose(1, 2), cfg.hop, n_samples), cfg.sr)
        noise = filtered_noise(controls["noise_magnitudes"], cfg.hop, cfg.sr, seed=seed)[:, :n_samples]
        if noise.shape[-1] < n_samples:
            noise = F.pad(noise, (0, n_samples - noise.shape[-1]))
        audio = harmonic + noise
        if self.reverb is not None:
            audio = self.reverb(audio)
        return {"audio": audio, "harmonic": harmonic, "noise": noise}

    def forward(self, f0_hz: torch.Tensor, loudness_db: torch.Tensor, n_samples: int,
                seed: int | None = None) -> torch.Tensor:
        """Frame features ``(batch, frames)`` -> audio ``(batch, n_samples)``."""
        return self.synthesize(f0_hz, self.controls(f0_hz, loudness_db), n_samples, seed)["audio"]

    def loss(self, audio: torch.Tensor, f0_hz: torch.Tensor, loudness_db: torch.Tensor,
             seed: int | None = None) -> torch.Tensor:
        """Mean multi-scale spectral distance between ``audio (batch, samples)`` and its resynthesis."""
        out = self(f0_hz, loudness_db, audio.shape[-1], seed)
        return multiscale_spectral_distance(audio, out, self.config.fft_sizes).mean()

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor, features: Features | None = None, seed: int = 0) -> torch.Tensor:
        """Resynthesise audio ``(batch, samples)`` at the model's rate from its own f0 and loudness."""
        x = audio.to(self.device, torch.float32)
        feats = features if features is not None else extract_features(x.cpu(), self.config.sr, self.config.hop)
        if not torch.isfinite(feats.f0_hz).all():
            raise ValueError("no voiced frame found in at least one clip: DDSP needs a pitched input")
        feats = feats.to(self.device)
        return self(feats.f0_hz, feats.loudness_db, x.shape[-1], seed)


def build_ddsp(config: DDSPConfig | dict, device: Device = None) -> DDSP:
    """A :class:`DDSP` from a config or its dict (``{"kind": "ddsp", ...}``)."""
    if isinstance(config, dict):
        if config.get("kind", "ddsp") != "ddsp":
            raise ValueError(f"model config kind must be 'ddsp', got {config.get('kind')!r}")
        config = DDSPConfig.from_dict(config)
    return DDSP(config, device=device)


def model_config_dict(model: DDSP) -> dict:
    """The ``{"kind": "ddsp", ...}`` dict :func:`build_ddsp` rebuilds ``model`` from."""
    return {"kind": "ddsp", **model.config.to_dict()}


ASSETS = Path(__file__).resolve().parents[1] / "assets"
PRETRAINED = "ddsp_organ.pt"


def pretrained_path() -> Path:
    """Where the shipped DDSP checkpoint lives (``course_lib/assets/ddsp_organ.pt``)."""
    return ASSETS / PRETRAINED


def load_ddsp(path: PathLike | None = None, device: Device = None) -> DDSP:
    """Load a DDSP checkpoint (default: the shipped organ, :func:`pretrained_path`).

    Returns the model in eval mode with ``.meta`` (the checkpoint's config, step, history and extra: everything
    but the weights) and ``.card`` (the data card ``.json`` beside the file, ``{}`` if none). Raises
    FileNotFoundError for a missing file (naming :data:`REBUILD_COMMAND`), ValueError if it holds no DDSP config.
    """
    path = Path(path) if path is not None else pretrained_path()
    ckpt = load_checkpoint(path, rebuild=REBUILD_COMMAND)
    cfg = ckpt.get("config", {}).get("model")
    if not isinstance(cfg, dict) or cfg.get("kind") != "ddsp":
        raise ValueError(f"{path}: checkpoint has no config['model'] describing a DDSP model")
    model = build_ddsp(cfg, device=device)
    model.load_state_dict(ckpt["model"])
    model.meta, model.card = checkpoint_meta(ckpt), read_model_card(path)
    return model.eval()


def load_pretrained(device: Device = None) -> DDSP:
    """The shipped DDSP (organ of the mini-NSynth), with its data card as ``.card``: ``load_ddsp(None, device)``."""
    return load_ddsp(None, device=device)


# ---------------------------------------------------------------------------------------------
# timbre transfer
# ---------------------------------------------------------------------------------------------
MIN_SR, MAX_SR = 8_000, 192_000
SILENCE_PEAK = 1e-4


def _check_transfer_input(audio: torch.Tensor, sr: int) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor) or not torch.is_floating_point(audio):
        raise ValueError("audio must be a float tensor (batch, samples)")
    if audio.ndim == 3:
        raise ValueError(f"audio of shape {tuple(audio.shape)} looks multichannel (batch, channels, samples); "
                         "resynthesize takes mono (batch, samples): mix the channels down first")
    if audio.ndim == 1:
        raise ValueError(f"audio must be (batch, samples), got one clip of shape {tuple(audio.shape)}: "
                         "use audio.unsqueeze(0)")
    if audio.ndim != 2:
        raise ValueError(f"audio must be (batch, samples), got shape {tuple(audio.shape)}")
    if audio.shape[-1] == 2 and audio.shape[0] > 2:
        raise ValueError(f"audio of shape {tuple(audio.shape)} looks like stereo (samples, channels); "
                         "resynthesize takes mono (batch, samples): mix the channels down first")
    if isinstance(sr, bool) or not isinstance(sr, int) or not MIN_SR <= sr <= MAX_SR:
        raise ValueError(f"unsupported sample rate {sr!r}: give an integer rate in Hz from {MIN_SR} to {MAX_SR}")
    if not torch.isfinite(audio).all():
        raise ValueError("audio holds NaN or infinite samples")
    if audio.shape[-1] < sr // 10:
        raise ValueError(f"audio of {audio.shape[-1]} samples is shorter than 0.1 s at {sr} Hz")
    silent = audio.abs().amax(dim=-1) < SILENCE_PEAK
    if bool(silent.any()):
        rows = silent.nonzero().flatten().tolist()
        raise ValueError(f"clip(s) {rows} are silent (peak below {SILENCE_PEAK:g}): nothing to resynthesise")
    return audio


@torch.no_grad()
def resynthesize(audio: torch.Tensor, sr: int, checkpoint: PathLike | DDSP | None = None, *,
                 loudness_shift_db: float | None = None, octave_shift: int = 0, seed: int = 0,
                 device: Device = None) -> torch.Tensor:
    """Timbre transfer: play the f0 and loudness of monophonic audio with a trained DDSP instrument.

    Args:
        audio: float ``(batch, samples)`` at ``sr`` Hz, mono, pitched (voice, a whistle, a sine melody...).
        sr: its sample rate (integer Hz, 8 kHz to 192 kHz); resampled to the model's rate inside.
        checkpoint: a DDSP checkpoint path, a loaded :class:`DDSP`, or None for the shipped one.
        loudness_shift_db: dB added to the input's loudness; None moves the mean loudness of its voiced
            frames to the training notes' mean (DDSP's timbre-transfer adjustment).
        octave_shift: octaves added to the f0 (0 keeps the pitch).
        seed: the noise synthesiser's seed.
    Returns:
        float32 ``(batch, samples)`` at ``sr``, as long as the input.
    Raises:
        ValueError: not a float tensor, multichannel, an unsupported rate, silence, or no pitched frame.
        FileNotFoundError: no such checkpoint (or the shipped one is not installed).
    """
    x = _check_transfer_input(audio, sr)
    if isinstance(checkpoint, DDSP):
        model = checkpoint
    else:
        path = pretrained_path() if checkpoint is None else Path(checkpoint)
        model = load_ddsp(path, device=device)
    if device is not None:
        model = model.to(device)
    cfg = model.config
    x16 = resample(x.detach().cpu().float(), sr, cfg.sr)
    feats = extract_features(x16, cfg.sr, cfg.hop)
    no_pitch = ~torch.isfinite(feats.f0_hz).all(dim=-1)
    if bool(no_pitch.any()):
        raise ValueError(f"clip(s) {no_pitch.nonzero().flatten().tolist()} have no pitched (voiced) frame: "
                         "resynthesize needs a monophonic, pitched input")
    f0 = feats.f0_hz * 2.0 ** octave_shift
    ld = feats.loudness_db
    if loudness_shift_db is None:
        voiced = feats.voiced.float()
        mean_voiced = (ld * voiced).sum(-1, keepdim=True) / voiced.sum(-1, keepdim=True).clamp_min(1.0)
        ld = ld + (cfg.loudness_mean_db - mean_voiced)
    else:
        ld = ld + float(loudness_shift_db)
    model.eval()
    out16 = model(f0.to(model.device), ld.to(model.device), x16.shape[-1], seed).cpu()
    out = resample(out16, cfg.sr, sr)
    n = x.shape[-1]
    out = out[..., :n] if out.shape[-1] >= n else F.pad(out, (0, n - out.shape[-1]))
    return out.to(torch.float32).to(audio.device)


__all__ = ["DDSPConfig", "DDSP", "DDSPDecoder", "Reverb", "build_ddsp", "exp_sigmoid", "load_ddsp",
           "load_pretrained", "model_config_dict", "pretrained_path", "resynthesize", "upsample_frames"]
