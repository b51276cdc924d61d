"""mu-law WaveNet with fast (queued) generation, and the NSynth WaveNet autoencoder (Lesson 03).

Audio is companded to ``n_classes`` mu-law classes (``course_lib.audio.mu_law_encode``, 256 for
mu = 255). :class:`WaveNet` predicts a softmax over the class of sample ``t`` from the classes of
samples ``< t``: a stack of causal dilated convolutions in cycles (dilations 1, 2, 4, ... per cycle),
each followed by the gated unit ``tanh(a) * sigmoid(b)``, a residual 1x1 convolution and a skip
1x1 convolution; the summed skips go through ReLU -> 1x1 -> ReLU -> 1x1 to the class logits.
Optional conditioning adds to every gate: global (one-hot pitch and/or instrument per clip),
local (a latent sequence at ``local_hop`` samples per frame, upsampled by repetition) and a pitch
*excitation* (sines and cosines of the first harmonics of the note's f0, one value per sample: a clock
at the pitch asked for, as in neural source-filter models, built from the pitch by the model itself).

Two generators produce identical samples for the same seed (:func:`generate_tokens`):

* ``"naive"`` re-runs the whole network over the last ``receptive_field`` samples for every new
  sample -- cost O(receptive field x layers) per sample;
* ``"fast"`` (Paine et al. 2016, "Fast WaveNet") keeps, for every layer, a queue of that layer's
  past inputs at the lags its dilated kernel reads, so each new sample costs O(layers). On the CPU
  the whole loop is compiled with numba (ring buffers, the same steps and tokens): a step is a few
  small matrix-vector products, which a torch loop would spend in per-operation overhead; the torch
  loop stays for CUDA and ``COURSE_NO_NUMBA=1``.

:class:`WaveNetAutoencoder` (Engel et al. 2017, NSynth) encodes a note with a non-causal dilated
convolution stack, average-pools it to a latent sequence (``hop`` samples per frame,
``latent_channels`` wide; NSynth: 512 and 16) and decodes with a WaveNet conditioned on the
upsampled latents and the pitch.
"""

from __future__ import annotations

import collections
import functools
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.audio import mu_law_decode, mu_law_encode
from course_lib.runtime.checkpoint import checkpoint_meta, load_checkpoint
from course_lib.runtime.model_card import read_model_card
from course_lib.synth import kernels
from course_lib.synth.core import midi_to_hz

Device = Union[str, torch.device, None]
PathLike = Union[str, Path]


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WaveNetConfig:
    """Size and conditioning of a :class:`WaveNet`.

    Attributes:
        n_classes: mu-law classes (256 = mu 255).
        residual_channels / gate_channels / skip_channels: widths of the residual stream, of each
            gate (tanh and sigmoid halves) and of the skip sum.
        kernel_size: taps of each dilated causal convolution (2 in the paper).
        layers_per_cycle, cycles: dilations ``1, 2, ..., 2**(layers_per_cycle-1)`` repeated ``cycles`` times.
        dilations: explicit dilation list overriding the two fields above (empty = use them).
        n_pitches: global pitch conditioning over MIDI ``0..n_pitches-1`` (0 = off).
        pitch_sigma: how a pitch is coded over those ``n_pitches`` bins. 0: one-hot (every pitch its own
            learned vector; integer pitches only). > 0: a Gaussian bump ``exp(-(k - m)^2 / (2 sigma^2))``
            over bins ``k`` for MIDI pitch ``m`` (semitones), so neighbouring pitches share weights and
            any real-valued pitch in range (e.g. 52.5, or one never heard in training) gets a code.
        n_instruments: global one-hot instrument conditioning (0 = off).
        local_channels: channels of a local conditioning sequence (0 = off).
        local_hop: samples per local conditioning frame (frames are repeated ``local_hop`` times).
        excitation_harmonics: ``H`` > 0 adds the pitch excitation to every gate: ``sin(k phi_t)``,
            ``cos(k phi_t)`` for ``k = 1..H`` of a phase track ``phi_t`` (:func:`excitation`; by default
            ``2 pi f0 t / sample_rate`` of the pitch asked for, :func:`pitch_phase`), so the pitch arrives as a
            period, not only as a code (needs ``n_pitches`` > 0; 0 = off). Trained with each note's own
            phase track, the network learns to play in phase with the clock (``train.wavenet.note_clocks``).
        sample_rate: Hz of the audio, for the excitation's f0 (unused without it).
    """

    n_classes: int = 256
    residual_channels: int = 32
    gate_channels: int = 32
    skip_channels: int = 64
    kernel_size: int = 2
    layers_per_cycle: int = 8
    cycles: int = 2
    dilations: tuple[int, ...] = ()
    n_pitches: int = 0
    n_instruments: int = 0
    local_channels: int = 0
    local_hop: int = 1
    pitch_sigma: float = 0.0
    excitation_harmonics: int = 0
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        for name in ("n_classes", "residual_channels", "gate_channels", "skip_channels", "local_hop"):
            if getattr(self, name) < 1:
                raise ValueError(f"WaveNetConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_classes < 2:
            raise ValueError(f"WaveNetConfig.n_classes must be >= 2, got {self.n_classes}")
        if self.kernel_size < 1:
            raise ValueError(f"WaveNetConfig.kernel_size must be >= 1, got {self.kernel_size}")
        for name in ("n_pitches", "n_instruments", "local_channels"):
            if getattr(self, name) < 0:
                raise ValueError(f"WaveNetConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not (self.pitch_sigma >= 0 and math.isfinite(self.pitch_sigma)):
            raise ValueError(f"WaveNetConfig.pitch_sigma must be a finite number >= 0 (semitones), got {self.pitch_sigma}")
        if self.excitation_harmonics < 0:
            raise ValueError(f"WaveNetConfig.excitation_harmonics must be >= 0, got {self.excitation_harmonics}")
        if self.excitation_harmonics and not self.n_pitches:
            raise ValueError("WaveNetConfig.excitation_harmonics needs pitch conditioning (n_pitches > 0): "
                             "the excitation is built from the pitch asked for")
        if self.sample_rate < 1:
            raise ValueError(f"WaveNetConfig.sample_rate must be >= 1 Hz, got {self.sample_rate}")
        if any(int(d) < 1 for d in self.dilations):
            raise ValueError(f"WaveNetConfig.dilations must all be >= 1, got {self.dilations}")
        if not self.dilations and (self.layers_per_cycle < 1 or self.cycles < 1):
            raise ValueError("WaveNetConfig needs layers_per_cycle >= 1 and cycles >= 1 (or explicit dilations)")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))

    @property
    def layer_dilations(self) -> tuple[int, ...]:
        """Dilation (in samples) of every layer, in order."""
        if self.dilations:
            return self.dilations
        return tuple(2**i for _ in range(self.cycles) for i in range(self.layers_per_cycle))

    @property
    def receptive_field(self) -> int:
        """Samples of the past (including the current input) that one output sees: ``1 + (k-1) sum(d)``."""
        return 1 + (self.kernel_size - 1) * sum(self.layer_dilations)

    @property
    def n_global(self) -> int:
        """Width of the global conditioning vector (pitch code then instrument one-hot)."""
        return self.n_pitches + self.n_instruments

    @property
    def n_excitation(self) -> int:
        """Channels of the pitch excitation: a sine and a cosine per harmonic (0 without one)."""
        return 2 * self.excitation_harmonics

    @property
    def mu(self) -> int:
        """The mu-law parameter: ``n_classes - 1``."""
        return self.n_classes - 1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Size of a :class:`WaveNetAutoencoder` (NSynth: 30 layers of 128, hop 512, 16 latents).

    Attributes:
        encoder_channels: width of the non-causal encoder.
        encoder_layers_per_cycle, encoder_cycles: dilations 1..2**(L-1), repeated.
        encoder_kernel: taps of each (centred, non-causal) encoder convolution (odd).
        latent_channels: latent width per frame. hop: samples per latent frame (pooling stride).
        decoder: the decoder WaveNet; its ``local_channels`` / ``local_hop`` are set to
            ``latent_channels`` / ``hop`` automatically.
    """

    encoder_channels: int = 32
    encoder_layers_per_cycle: int = 8
    encoder_cycles: int = 2
    encoder_kernel: int = 3
    latent_channels: int = 8
    hop: int = 128
    decoder: WaveNetConfig = field(default_factory=lambda: WaveNetConfig(n_pitches=128))

    def __post_init__(self) -> None:
        for name in ("encoder_channels", "encoder_layers_per_cycle", "encoder_cycles", "latent_channels", "hop"):
            if getattr(self, name) < 1:
                raise ValueError(f"AutoencoderConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.encoder_kernel < 1 or self.encoder_kernel % 2 == 0:
            raise ValueError(f"AutoencoderConfig.encoder_kernel must be odd and >= 1, got {self.encoder_kernel}")
        if isinstance(self.decoder, dict):
            object.__setattr__(self, "decoder", WaveNetConfig(**self.decoder))
        dec = replace(self.decoder, local_channels=self.latent_channels, local_hop=self.hop)
        object.__setattr__(self, "decoder", dec)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def audio_to_classes(audio: torch.Tensor, n_classes: int = 256) -> torch.Tensor:
    """Audio ``(batch, samples)`` in [-1, 1] -> mu-law classes ``(batch, samples)`` long in ``0..n_classes-1``."""
    return mu_law_encode(audio, mu=n_classes - 1, quantize=True)


def classes_to_audio(classes: torch.Tensor, n_classes: int = 256) -> torch.Tensor:
    """mu-law classes ``(batch, samples)`` -> audio float32 ``(batch, samples)`` in [-1, 1]."""
    return mu_law_decode(classes, mu=n_classes - 1, quantized=True)


def quantize_linear(audio: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """Uniform quantisation of audio in [-1, 1] to ``levels`` evenly spaced values (8 bit = 256) -> same shape, float32.

    The linear counterpart of mu-law classes, for comparing the two at the same bit depth.
    """
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    x = torch.as_tensor(audio, dtype=torch.float32).clamp(-1.0, 1.0)
    k = torch.round((x + 1.0) / 2.0 * (levels - 1))
    return k / (levels - 1) * 2.0 - 1.0


def silence_class(n_classes: int = 256) -> int:
    """The class of a zero sample (the start token fed before the first sample)."""
    return int(mu_law_encode(torch.zeros(1), mu=n_classes - 1)[0])


def shift_right(classes: torch.Tensor, start: int) -> torch.Tensor:
    """Network input for teacher forcing: ``[start, x_0, ..., x_{T-2}]`` for classes ``(batch, T)``."""
    pad = torch.full_like(classes[:, :1], start)
    return torch.cat([pad, classes[:, :-1]], dim=1)


def upsample_local(local: torch.Tensor, hop: int, samples: int) -> torch.Tensor:
    """Frames ``(batch, channels, frames)`` -> per-sample ``(batch, channels, samples)`` by repeating each frame ``hop`` times.

    Frame ``f`` covers samples ``f*hop .. (f+1)*hop - 1``; there must be at least ``ceil(samples/hop)`` frames.
    """
    need = -(-samples // hop)
    if local.ndim != 3 or local.shape[-1] < need:
        raise ValueError(f"local conditioning must be (batch, channels, >= {need} frames) for {samples} samples "
                         f"at hop {hop}; got shape {tuple(local.shape)}")
    return local.repeat_interleave(hop, dim=-1)[..., :samples]


def pitch_code(pitch: torch.Tensor, n_pitches: int, sigma: float = 0.0) -> torch.Tensor:
    """Pitch code ``(batch, n_pitches)`` of MIDI pitches ``(batch,)``: one-hot (``sigma`` 0, integer pitches)
    or a Gaussian bump of ``sigma`` semitones centred on each (real-valued) pitch, peak 1."""
    if sigma == 0:
        return F.one_hot(pitch.long(), n_pitches).float()
    bins = torch.arange(n_pitches, device=pitch.device, dtype=torch.float32)
    return torch.exp(-0.5 * ((bins - pitch.float().unsqueeze(1)) / sigma) ** 2)


def pitch_phase(pitch: torch.Tensor, samples: int, sample_rate: int) -> torch.Tensor:
    """Phase track ``(batch, samples)`` in radians of steady MIDI pitches ``(batch,)`` (real-valued allowed):
    ``2 pi f0 t / sample_rate`` from 0 at sample 0, ``f0 = 440 * 2 ** ((pitch - 69) / 12)`` Hz (wrapped to [0, 2 pi))."""
    f0 = midi_to_hz(pitch.reshape(-1, 1), dtype=torch.float64)  # float64 keeps long phases exact
    t = torch.arange(samples, device=pitch.device, dtype=torch.float64).view(1, -1)
    return (torch.remainder(f0 * t / sample_rate, 1.0) * (2 * math.pi)).float()


def phase_of_f0(f0_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Phase track ``(batch, samples)`` in radians of a frequency contour ``f0_hz (batch, samples)`` (Hz per sample):
    the running sum of ``2 pi f0 / sample_rate``, 0 at sample 0 (wrapped to [0, 2 pi)). A glide or a vibrato for a
    model with a pitch excitation (``generate_tokens(..., phase=)``)."""
    if f0_hz.ndim != 2:
        raise ValueError(f"f0_hz must be (batch, samples) Hz, got shape {tuple(f0_hz.shape)}")
    steps = torch.remainder(f0_hz.double() / sample_rate, 1.0)
    cycles = torch.remainder(torch.cumsum(steps, dim=-1) - steps[:, :1], 1.0)  # phase 0 at sample 0
    return (cycles * (2 * math.pi)).float()


def excitation(phase: torch.Tensor, harmonics: int) -> torch.Tensor:
    """Pitch excitation ``(batch, 2 * harmonics, samples)`` of a phase track ``(batch, samples)`` (radians).

    Channels ``sin(k phi_t)`` for ``k = 1..harmonics`` then ``cos(k phi_t)``. A harmonic whose instantaneous
    frequency (from the phase step) reaches Nyquist is zero there (no aliased clock).
    """
    if phase.ndim != 2:
        raise ValueError(f"phase must be (batch, samples) radians, got shape {tuple(phase.shape)}")
    k = torch.arange(1, harmonics + 1, device=phase.device, dtype=phase.dtype).view(1, -1, 1)
    step = torch.remainder(torch.diff(phase, dim=-1, prepend=phase[:, :1] - (phase[:, 1:2] - phase[:, :1])),
                           2 * math.pi)  # radians per sample in [0, 2 pi); pi = Nyquist
    step = torch.where(step > math.pi, 2 * math.pi - step, step).unsqueeze(1)
    below_nyquist = (k * step < math.pi).to(phase.dtype)
    kp = k * phase.unsqueeze(1)
    return torch.cat([torch.sin(kp) * below_nyquist, torch.cos(kp) * below_nyquist], dim=1)


def _pitch_values(pitch: torch.Tensor | Sequence[float] | float, batch: int, device: torch.device) -> torch.Tensor:
    """Pitches as a float ``(batch,)`` tensor (one value is broadcast), for the excitation."""
    v = torch.as_tensor(pitch).reshape(-1).float().to(device)
    return v.expand(batch) if v.numel() == 1 else v


def _global_code(cfg: WaveNetConfig, pitch: torch.Tensor | Sequence[float] | float | None,
                   instrument: torch.Tensor | Sequence[int] | int | None, batch: int,
                   device: torch.device) -> torch.Tensor | None:
    """Global conditioning ``(batch, n_pitches + n_instruments)``: pitch code then instrument one-hot (None when the
    model has none)."""
    parts = []
    for name, value, n in (("pitch", pitch, cfg.n_pitches), ("instrument", instrument, cfg.n_instruments)):
        if n == 0:
            if value is not None:
                raise ValueError(f"{name} given but the model has no {name} conditioning (n_{name}s=0)")
            continue
        if value is None:
            raise ValueError(f"the model is conditioned on {name}: pass {name}= a (batch,) tensor of ints in 0..{n - 1}")
        soft = name == "pitch" and cfg.pitch_sigma > 0
        v = torch.as_tensor(value).reshape(-1)
        on_host = v.device.type == "cpu"  # values are checked on the host only: a check on a GPU tensor would sync
        if not soft:
            if on_host and v.is_floating_point() and not torch.equal(v, v.round()):
                raise ValueError(f"{name} must be whole numbers for a one-hot code, got {v.tolist()}")
            v = v.long()
        if v.numel() == 1:
            v = v.expand(batch)
        if v.numel() != batch:
            raise ValueError(f"{name} has {v.numel()} values for a batch of {batch}")
        if on_host and (not bool(torch.isfinite(v.float()).all()) or float(v.min()) < 0 or float(v.max()) > n - 1):
            raise ValueError(f"{name} must lie in 0..{n - 1}, got values {v.min().item()}..{v.max().item()}")
        v = v.to(device)
        parts.append(pitch_code(v, n, cfg.pitch_sigma) if name == "pitch" else F.one_hot(v, n).float())
    return torch.cat(parts, dim=1) if parts else None


# ---------------------------------------------------------------------------------------------
# WaveNet
# ---------------------------------------------------------------------------------------------
class GatedResidualLayer(nn.Module):
    """One WaveNet layer: causal dilated conv -> (+ conditioning) -> tanh * sigmoid -> residual and skip 1x1."""

    def __init__(self, residual: int, gate: int, skip: int, kernel_size: int, dilation: int,
                 n_global: int = 0, local_channels: int = 0, excitation_channels: int = 0) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.gate_channels = kernel_size, dilation, gate
        self.conv = nn.Conv1d(residual, 2 * gate, kernel_size, dilation=dilation)
        self.res = nn.Conv1d(gate, residual, 1, bias=False)
        self.skip = nn.Conv1d(gate, skip, 1, bias=False)
        self.global_proj = nn.Linear(n_global, 2 * gate, bias=False) if n_global else None
        self.local_proj = nn.Conv1d(local_channels, 2 * gate, 1, bias=False) if local_channels else None
        self.excitation_proj = nn.Conv1d(excitation_channels, 2 * gate, 1, bias=False) if excitation_channels else None

    @property
    def pad(self) -> int:
        """Left padding (samples) that makes the convolution causal: ``(k-1) * dilation``."""
        return (self.kernel_size - 1) * self.dilation

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None, c: torch.Tensor | None = None,
                e: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, R, T)``, global ``g (B, n_global)``, local ``c (B, C, T)``, excitation ``e (B, E, T)`` ->
        (next x ``(B, R, T)``, skip ``(B, S, T)``)."""
        h = self.conv(F.pad(x, (self.pad, 0)))
        if g is not None and self.global_proj is not None:
            h = h + self.global_proj(g).unsqueeze(-1)
        if c is not None and self.local_proj is not None:
            h = h + self.local_proj(c)
        if e is not None and self.excitation_proj is not None:
            h = h + self.excitation_proj(e)
        a, b = h.chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)
        return x + self.res(z), self.skip(z)


class WaveNet(nn.Module):
    """Autoregressive mu-law WaveNet: logits of sample ``t`` from the classes of samples ``< t``.

    ``forward`` takes the *input* classes (already shifted right, see :func:`shift_right`): output
    position ``t`` depends on inputs ``0..t`` only. :meth:`loss` does the shifting for you.
    """

    def __init__(self, config: WaveNetConfig | None = None, device: Device = None) -> None:
        super().__init__()
        self.config = cfg = config or WaveNetConfig()
        self.embed = nn.Conv1d(cfg.n_classes, cfg.residual_channels, 1, bias=False)  # 1x1 conv on the one-hot
        self.layers = nn.ModuleList(
            GatedResidualLayer(cfg.residual_channels, cfg.gate_channels, cfg.skip_channels, cfg.kernel_size, d,
                               cfg.n_global, cfg.local_channels, cfg.n_excitation) for d in cfg.layer_dilations)
        self.skip_bias = nn.Parameter(torch.zeros(cfg.skip_channels))
        self.head1 = nn.Conv1d(cfg.skip_channels, cfg.skip_channels, 1)
        self.head2 = nn.Conv1d(cfg.skip_channels, cfg.n_classes, 1)
        if device is not None:
            self.to(device)

    @property
    def receptive_field(self) -> int:
        """Receptive field in samples (see :attr:`WaveNetConfig.receptive_field`)."""
        return self.config.receptive_field

    @property
    def device(self) -> torch.device:
        return self.skip_bias.device

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if x.dtype == torch.long:
            if x.ndim != 2:
                raise ValueError(f"class input must be (batch, samples), got shape {tuple(x.shape)}")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= cfg.n_classes):
                raise ValueError(f"class input must lie in 0..{cfg.n_classes - 1}")
            return F.embedding(x, self.embed.weight[:, :, 0].t()).transpose(1, 2)
        if x.ndim != 3 or x.shape[1] != cfg.n_classes:
            raise ValueError(f"one-hot input must be (batch, {cfg.n_classes}, samples), got {tuple(x.shape)}")
        return self.embed(x)

    def forward(self, x: torch.Tensor, pitch: torch.Tensor | None = None, instrument: torch.Tensor | None = None,
                local: torch.Tensor | None = None, phase: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, n_classes, samples)``.

        Args:
            x: input classes ``(batch, samples)`` long, or a one-hot / soft float ``(batch, n_classes, samples)``.
            pitch, instrument: ``(batch,)`` ints for global conditioning (if the config has it).
            local: per-sample local conditioning ``(batch, local_channels, samples)`` (see :func:`upsample_local`).
            phase: the excitation's phase track ``(batch, samples)`` in radians, one value per output sample
                (a model with ``excitation_harmonics``; default: the steady phase of ``pitch``).
        """
        h = self._embed(x)
        g = _global_code(self.config, pitch, instrument, h.shape[0], h.device)
        return self._run(h, g, local, self._excitation(pitch, phase, h.shape[0], h.shape[-1], h.device))

    def _excitation(self, pitch: torch.Tensor | Sequence[float] | float | None, phase: torch.Tensor | None,
                    batch: int, samples: int, device: torch.device) -> torch.Tensor | None:
        """The pitch excitation ``(batch, n_excitation, samples)`` of ``phase`` (default: the pitch's steady phase
        from 0 at sample 0), or None for a model without one."""
        cfg = self.config
        if not cfg.excitation_harmonics:
            if phase is not None:
                raise ValueError("phase given but the model has no pitch excitation (excitation_harmonics=0)")
            return None
        if phase is None:
            phase = pitch_phase(_pitch_values(pitch, batch, device), samples, cfg.sample_rate)
        elif phase.shape != (batch, samples):
            raise ValueError(f"phase must be ({batch}, {samples}) radians, got shape {tuple(phase.shape)}")
        return excitation(phase.to(device=device, dtype=torch.float32), cfg.excitation_harmonics)

    def _run(self, h: torch.Tensor, g: torch.Tensor | None, local: torch.Tensor | None,
             exc: torch.Tensor | None = None) -> torch.Tensor:
        """Layers and head on an embedded input ``h (B, R, T)`` with global code ``g`` and excitation ``exc`` -> logits."""
        cfg = self.config
        batch, samples = h.shape[0], h.shape[-1]
        if cfg.local_channels:
            if local is None or local.shape != (batch, cfg.local_channels, samples):
                got = None if local is None else tuple(local.shape)
                raise ValueError(f"local conditioning must be ({batch}, {cfg.local_channels}, {samples}); got {got}")
        elif local is not None:
            raise ValueError("local conditioning given but the model has local_channels=0")
        skip = torch.zeros(batch, cfg.skip_channels, samples, device=h.device, dtype=h.dtype)
        for layer in self.layers:
            h, s = layer(h, g, local, exc)
            skip = skip + s
        out = F.relu(skip + self.skip_bias.view(1, -1, 1))
        return self.head2(F.relu(self.head1(out)))

    def loss(self, classes: torch.Tensor, pitch: torch.Tensor | None = None, instrument: torch.Tensor | None = None,
             local: torch.Tensor | None = None, phase: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy (nats per sample) of predicting ``classes (batch, samples)`` from their past."""
        inp = shift_right(classes, silence_class(self.config.n_classes))
        return F.cross_entropy(self(inp, pitch, instrument, local, phase), classes)


def receptive_field_by_gradient(model: WaveNet, samples: int | None = None) -> int:
    """Measure the receptive field (samples): how many input positions get a non-zero gradient from the last output.

    Feeds a random one-hot input of ``samples`` positions (default receptive field + 32) with random
    conditioning and backpropagates the last output's logits.
    """
    cfg = model.config
    T = samples or cfg.receptive_field + 32
    gen = torch.Generator().manual_seed(0)
    dev = model.device
    x = F.one_hot(torch.randint(0, cfg.n_classes, (1, T), generator=gen), cfg.n_classes).float()
    x = x.transpose(1, 2).to(dev).requires_grad_(True)
    kw: dict = {}
    if cfg.n_pitches:
        kw["pitch"] = torch.zeros(1, dtype=torch.long, device=dev)
    if cfg.n_instruments:
        kw["instrument"] = torch.zeros(1, dtype=torch.long, device=dev)
    if cfg.local_channels:
        kw["local"] = torch.randn(1, cfg.local_channels, T, generator=gen).to(dev)
    model(x, **kw)[0, :, -1].pow(2).sum().backward()
    hit = (x.grad.abs().sum(dim=1)[0] > 0).nonzero().flatten()
    model.zero_grad(set_to_none=True)
    return T - int(hit.min())


# ---------------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------------
def _sample(logits: torch.Tensor, temperature: float, gen: torch.Generator | None) -> torch.Tensor:
    """Class per row of ``logits (B, n_classes)``: argmax if temperature == 0, else inverse-CDF sampling.

    The uniform noise is drawn as ``torch.rand(B)`` once per step, so naive and fast generation
    consume the generator identically.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits if temperature == 1 else logits / temperature, dim=-1)
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(logits.shape[0], 1, generator=gen, device=logits.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(1).clamp_(max=logits.shape[-1] - 1)


class _FastState:
    """Per-layer weights as matrices and queues of past layer inputs for O(layers) generation steps.

    Layer ``l`` with kernel ``k`` and dilation ``d`` reads its input at lags ``(k-1)d, ..., d, 0``;
    its queue holds its last ``(k-1)d`` inputs, so a step reads the lagged inputs from the queue,
    concatenates them with the current one and applies the conv taps as two matrices (tanh and
    sigmoid halves) -- no recomputation of the past.
    """

    def __init__(self, model: WaveNet, batch: int, g: torch.Tensor | None, local: torch.Tensor | None,
                 exc: torch.Tensor | None = None) -> None:
        cfg = model.config
        dev, dtype = model.device, model.skip_bias.dtype
        self.k = k = cfg.kernel_size
        self.hop = cfg.local_hop
        self.dilations = [layer.dilation for layer in model.layers]
        self.embed = model.embed.weight[:, :, 0].t().contiguous()  # (n_classes, R)
        self.layers = []
        for layer in model.layers:
            G = layer.gate_channels
            w = layer.conv.weight  # (2G, R, k); tap m reads lag (k-1-m)*d
            w = torch.cat([w[:, :, m].t() for m in range(k)], dim=0)  # (k*R, 2G), rows in tap order
            cond = layer.conv.bias.view(1, 1, -1).expand(1, batch, -1)
            if g is not None:
                cond = cond + layer.global_proj(g).unsqueeze(0)
            if local is not None:
                cond = cond + layer.local_proj(local).permute(2, 0, 1)  # (frames, B, 2G)
            lags = [(k - 1 - m) * layer.dilation for m in range(k - 1)]  # queued lags, oldest first
            queue = collections.deque(
                [torch.zeros(batch, cfg.residual_channels, device=dev, dtype=dtype)] * ((k - 1) * layer.dilation))
            self.layers.append((lags, queue,
                                list(cond[..., :G].contiguous().unbind(0)), list(cond[..., G:].contiguous().unbind(0)),
                                w[:, :G].contiguous(), w[:, G:].contiguous(),
                                layer.res.weight[:, :, 0].t().contiguous() if layer is not model.layers[-1] else None))
        # (the last layer's residual output feeds nothing: its matrix is dropped)
        # all skip 1x1 convs as one matrix over the concatenated gate outputs: one matmul per step
        self.skip_w = torch.cat([layer.skip.weight[:, :, 0].t() for layer in model.layers], dim=0).contiguous()
        # the pitch excitation (B, E, T) -> (T, B, E) and each layer's projection (E, 2G), added per sample
        self.exc = exc.permute(2, 0, 1).contiguous() if exc is not None else None
        self.exc_w = [layer.excitation_proj.weight[:, :, 0].t().contiguous() for layer in model.layers] if exc is not None else []
        self.skip_bias = model.skip_bias.view(1, -1).expand(batch, -1)
        self.h1w, self.h1b = model.head1.weight[:, :, 0].t().contiguous(), model.head1.bias
        self.h2w, self.h2b = model.head2.weight[:, :, 0].t().contiguous(), model.head2.bias

    def step(self, x_class: torch.Tensor, t: int) -> torch.Tensor:
        """Feed input class ``(B,)`` at time ``t``; return logits ``(B, n_classes)`` for sample ``t``."""
        x = self.embed[x_class]
        zs = []
        frame = t // self.hop
        for li, (lags, q, cond_a, cond_b, wa, wb, wres) in enumerate(self.layers):
            if lags:
                n = len(q)
                inp = torch.cat([q[n - lag] for lag in lags] + [x], dim=1)
                q.append(x)
                q.popleft()
            else:
                inp = x
            f = min(frame, len(cond_a) - 1)
            ca, cb = cond_a[f], cond_b[f]
            if self.exc is not None:
                e = self.exc[t] @ self.exc_w[li]  # (B, 2G)
                ca, cb = ca + e[:, :ca.shape[1]], cb + e[:, ca.shape[1]:]
            z = torch.tanh(torch.addmm(ca, inp, wa)) * torch.sigmoid(torch.addmm(cb, inp, wb))
            zs.append(z)
            if wres is not None:
                x = torch.addmm(x, z, wres)
        skip = torch.addmm(self.skip_bias, torch.cat(zs, dim=1), self.skip_w)
        out = torch.addmm(self.h1b, torch.relu(skip), self.h1w)
        return torch.addmm(self.h2b, torch.relu(out), self.h2w)


@functools.lru_cache(maxsize=1)
def _compiled_generation():
    """The numba kernel of fast generation (whole loop compiled), or ``None`` without numba."""
    try:
        import numba
    except Exception:  # noqa: BLE001 - no numba: the torch loop
        return None

    @numba.njit(cache=True, nogil=True)
    def run(seq, first, total, embed, w_gate, cond, hop, exc, w_exc, w_res, skip_w, skip_b, h1w, h1b, h2w, h2b,
            dilations, k, temperature, noise, hist):
        """Fast WaveNet generation in place on ``seq`` (B, total + 1): the operations of
        ``_FastState.step`` and ``_sample`` per step, float32, ring buffers instead of deques."""
        batch = seq.shape[0]
        n_layers, kr, g2 = w_gate.shape
        r = embed.shape[1]
        g = g2 // 2
        n_frames = cond.shape[1]
        n_exc = w_exc.shape[1]  # 0 without a pitch excitation
        n_classes = h2w.shape[1]
        s = skip_w.shape[1]
        x = np.empty(r, dtype=np.float32)
        inp = np.empty(kr, dtype=np.float32)
        gates = np.empty(g2, dtype=np.float32)
        zcat = np.empty(n_layers * g, dtype=np.float32)
        skip = np.empty(s, dtype=np.float32)
        head = np.empty(s, dtype=np.float32)
        logits = np.empty(n_classes, dtype=np.float32)
        cdf = np.empty(n_classes, dtype=np.float32)
        for t in range(total):
            frame = min(t // hop, n_frames - 1)
            for b in range(batch):
                x[:] = embed[seq[b, t]]
                for layer in range(n_layers):
                    d = dilations[layer]
                    qlen = (k - 1) * d
                    for m in range(k - 1):  # tap m reads the input (k - 1 - m) d samples back
                        lag = (k - 1 - m) * d
                        inp[m * r:(m + 1) * r] = hist[layer, (t - lag) % qlen, b]
                    inp[(k - 1) * r:] = x
                    if qlen > 0:
                        hist[layer, t % qlen, b] = x
                    gates[:] = cond[layer, frame, b]
                    for i in range(n_exc):
                        v = exc[t, b, i]
                        for j in range(g2):
                            gates[j] += v * w_exc[layer, i, j]
                    w = w_gate[layer]
                    for i in range(kr):
                        v = inp[i]
                        for j in range(g2):
                            gates[j] += v * w[i, j]
                    for j in range(g):
                        zcat[layer * g + j] = math.tanh(gates[j]) * (np.float32(1.0) / (np.float32(1.0) + math.exp(-gates[g + j])))
                    if layer < n_layers - 1:
                        wr = w_res[layer]
                        for i in range(g):
                            v = zcat[layer * g + i]
                            for j in range(r):
                                x[j] += v * wr[i, j]
                skip[:] = skip_b
                for i in range(n_layers * g):
                    v = zcat[i]
                    for j in range(s):
                        skip[j] += v * skip_w[i, j]
                head[:] = h1b
                for i in range(s):
                    v = max(skip[i], np.float32(0.0))
                    for j in range(s):
                        head[j] += v * h1w[i, j]
                logits[:] = h2b
                for i in range(s):
                    v = max(head[i], np.float32(0.0))
                    for j in range(n_classes):
                        logits[j] += v * h2w[i, j]
                if t < first:
                    continue
                if temperature == 0.0:
                    best = 0
                    for j in range(1, n_classes):
                        if logits[j] > logits[best]:
                            best = j
                    seq[b, t + 1] = best
                    continue
                if temperature != 1.0:
                    for j in range(n_classes):
                        logits[j] = logits[j] / np.float32(temperature)
                top = logits.max()
                total_p = np.float32(0.0)
                for j in range(n_classes):
                    cdf[j] = math.exp(logits[j] - top)
                    total_p += cdf[j]
                acc = np.float32(0.0)
                for j in range(n_classes):
                    acc += cdf[j] / total_p
                    cdf[j] = acc
                u = noise[t - first, b] * cdf[n_classes - 1]
                pick = n_classes - 1
                for j in range(n_classes):
                    if cdf[j] >= u:
                        pick = j
                        break
                seq[b, t + 1] = pick

    return run


def _generate_compiled(state: "_FastState", seq: torch.Tensor, first: int, total: int, temperature: float,
                       gen: torch.Generator | None) -> bool:
    """Run fast generation through the numba kernel; ``False`` (nothing done) if it cannot serve."""
    if seq.device.type != "cpu" or not kernels.available():  # COURSE_NO_NUMBA=1 keeps the torch loop
        return False
    run = _compiled_generation()
    if run is None:
        return False
    f32 = lambda t: np.ascontiguousarray(t.detach().to(torch.float32).numpy())  # noqa: E731
    batch = seq.shape[0]
    w_gate = torch.stack([torch.cat([wa, wb], dim=1) for _, _, _, _, wa, wb, _ in state.layers])
    cond = torch.stack([torch.cat([torch.stack(ca), torch.stack(cb)], dim=-1) for _, _, ca, cb, _, _, _ in state.layers])
    r = w_gate.shape[1] // state.k
    w_res = torch.stack([wres if wres is not None else torch.zeros(w_gate.shape[2] // 2, r)
                         for *_, wres in state.layers])
    max_q = max([(state.k - 1) * d for d in state.dilations] + [1])
    hist = np.zeros((len(state.layers), max_q, batch, r), dtype=np.float32)
    # the sampling noise, drawn exactly as _sample draws it: one torch.rand(B, 1) per generated sample
    steps = total - first
    noise = (torch.stack([torch.rand(batch, 1, generator=gen, device=seq.device)[:, 0] for _ in range(steps)])
             if temperature != 0 and steps > 0 else torch.zeros(max(steps, 1), batch))
    if state.exc is not None:
        exc, w_exc = state.exc, torch.stack(state.exc_w)
    else:  # no excitation: empty arrays, the kernel's excitation loop runs zero times
        exc, w_exc = torch.zeros(1, batch, 0), torch.zeros(len(state.layers), 0, w_gate.shape[2])
    seq_np = seq.numpy()  # shares memory: the kernel writes the generated classes into seq
    run(seq_np, first, total, f32(state.embed), f32(w_gate), f32(cond), state.hop, f32(exc), f32(w_exc),
        f32(w_res), f32(state.skip_w),
        f32(state.skip_bias[0]), f32(state.h1w), f32(state.h1b), f32(state.h2w), f32(state.h2b),
        np.asarray(state.dilations, dtype=np.int64), state.k, float(temperature), f32(noise), hist)
    return True


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="sample", leave=False)


@torch.inference_mode()
def generate_tokens(model: WaveNet, n_samples: int, *, batch: int | None = None,
                    pitch: torch.Tensor | Sequence[int] | int | None = None,
                    instrument: torch.Tensor | Sequence[int] | int | None = None,
                    local: torch.Tensor | None = None, prime: torch.Tensor | None = None,
                    temperature: float = 1.0, seed: int | None = 0, method: str = "fast",
                    progress: bool = False, threads: int | None = 1,
                    phase: torch.Tensor | None = None) -> torch.Tensor:
    """Generate mu-law classes autoregressively -> ``(batch, n_samples)`` long (the prime excluded).

    Args:
        model: a :class:`WaveNet` (runs on its own device).
        n_samples: new samples to generate.
        batch: clips generated at once (default: from pitch / local / prime, else 1).
        pitch, instrument: global conditioning, ``(batch,)`` ints or one int for all.
        local: local conditioning frames ``(batch, local_channels, frames)`` at ``config.local_hop``
            samples per frame, covering prime + generated samples.
        prime: classes ``(batch, P)`` to start from (teacher-forced; no noise drawn for them).
        temperature: softmax temperature; 0 = argmax (greedy).
        seed: seed of the sampling noise (same seed -> same samples in "naive" and "fast").
        method: ``"fast"`` (queues, O(layers) per sample) or ``"naive"`` (re-run over the receptive field).
        progress: show a tqdm bar.
        threads: torch intra-op threads while generating on a CPU (restored afterwards). Each step
            multiplies matrices of a few thousand numbers, which extra threads only slow down
            (badly so on a busy machine); ``None`` leaves the setting alone.
        phase: the excitation's phase track ``(batch, prime + n_samples)`` in radians (a model with
            ``excitation_harmonics``; default: the steady phase of ``pitch``). A glide or a vibrato is a phase
            track: the cumulative sum of ``2 pi f0_t / sample_rate``.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    if threads is not None and model.device.type == "cpu" and torch.get_num_threads() != threads:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return generate_tokens(model, n_samples, batch=batch, pitch=pitch, instrument=instrument, local=local,
                                   prime=prime, temperature=temperature, seed=seed, method=method,
                                   progress=progress, threads=None, phase=phase)
        finally:
            torch.set_num_threads(before)
    if method not in ("fast", "naive"):
        raise ValueError(f"method must be 'fast' or 'naive', got {method!r}")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    cfg, dev = model.config, model.device
    sizes = {int(t.shape[0]) for t in (local, prime, phase) if t is not None}
    if isinstance(pitch, torch.Tensor) and pitch.numel() > 1:
        sizes.add(pitch.numel())
    if batch is not None:
        sizes.add(int(batch))
    if len(sizes) > 1:
        raise ValueError(f"batch sizes disagree: {sorted(sizes)}")
    B = sizes.pop() if sizes else 1
    prime = torch.empty(B, 0, dtype=torch.long, device=dev) if prime is None else prime.to(dev).long()
    P = prime.shape[1]
    total = P + n_samples
    g = _global_code(cfg, pitch, instrument, B, dev)
    exc = model._excitation(pitch, phase, B, total, dev)
    if cfg.local_channels:
        if local is None:
            raise ValueError("the model is conditioned on a local sequence: pass local=(batch, channels, frames)")
        if local.ndim != 3 or local.shape[1] != cfg.local_channels:
            raise ValueError(f"local conditioning must be (batch, {cfg.local_channels}, frames), "
                             f"got shape {tuple(local.shape)}")
        local = local.to(dev)
        upsample_local(local[:1], cfg.local_hop, total)  # checks the frame count
    elif local is not None:
        raise ValueError("local conditioning given but the model has local_channels=0")
    gen = torch.Generator(device=dev).manual_seed(int(seed)) if seed is not None else None
    was_training = model.training
    model.eval()
    start = silence_class(cfg.n_classes)
    seq = torch.full((B, total + 1), start, dtype=torch.long, device=dev)  # seq[:, t] = input at time t
    seq[:, 1:P + 1] = prime
    bar = _progress(total, progress, f"WaveNet {method}")
    try:
        if method == "fast" and _generate_compiled(_FastState(model, B, g, local, exc), seq, P, total, temperature, gen):
            if bar is not None:  # compiled on the CPU (numba): the same steps without per-operation overhead
                bar.update(total)
        elif method == "fast":
            state = _FastState(model, B, g, local, exc)
            for t in range(total):
                logits = state.step(seq[:, t], t)
                if t >= P:
                    seq[:, t + 1] = _sample(logits, temperature, gen)
                if bar is not None:
                    bar.update(1)
        else:
            rf = cfg.receptive_field
            up = upsample_local(local, cfg.local_hop, total) if local is not None else None
            for t in range(P, total):
                lo = max(0, t + 1 - rf)
                window = seq[:, lo:t + 1]
                c = up[..., lo:t + 1] if up is not None else None
                e = exc[..., lo:t + 1] if exc is not None else None
                logits = model._run(model._embed(window), g, c, e)[..., -1]
                seq[:, t + 1] = _sample(logits, temperature, gen)
                if bar is not None:
                    bar.update(1 if t > P else P + 1)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    return seq[:, P + 1:]


def generate(model: WaveNet, n_samples: int, **kw) -> torch.Tensor:
    """Like :func:`generate_tokens` but returns audio float32 ``(batch, n_samples)`` in [-1, 1] (mu-law decoded)."""
    return classes_to_audio(generate_tokens(model, n_samples, **kw), model.config.n_classes)


# ---------------------------------------------------------------------------------------------
# NSynth WaveNet autoencoder
# ---------------------------------------------------------------------------------------------
class WaveNetEncoder(nn.Module):
    """Non-causal dilated residual encoder -> 1x1 bottleneck -> average pooling (``hop`` samples per frame)."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        c, k = config.encoder_channels, config.encoder_kernel
        self.hop = config.hop
        self.start = nn.Conv1d(1, c, k, padding=k // 2)
        dil = [2**i for _ in range(config.encoder_cycles) for i in range(config.encoder_layers_per_cycle)]
        self.convs = nn.ModuleList(nn.Conv1d(c, c, k, dilation=d, padding=d * (k // 2)) for d in dil)
        self.mixes = nn.ModuleList(nn.Conv1d(c, c, 1) for _ in dil)
        self.bottleneck = nn.Conv1d(c, config.latent_channels, 1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``(batch, samples)`` -> latents ``(batch, latent_channels, ceil(samples / hop))``."""
        if audio.ndim != 2:
            raise ValueError(f"audio must be (batch, samples), got shape {tuple(audio.shape)}")
        x = mu_law_encode(audio, quantize=False).unsqueeze(1)  # companded, continuous in [-1, 1]
        pad = (-x.shape[-1]) % self.hop
        h = self.start(x)
        for conv, mix in zip(self.convs, self.mixes):
            h = h + mix(F.relu(conv(F.relu(h))))
        z = self.bottleneck(h)
        z = F.pad(z, (0, pad), mode="replicate") if pad else z
        return F.avg_pool1d(z, self.hop)


class WaveNetAutoencoder(nn.Module):
    """NSynth WaveNet autoencoder: encoder -> latent sequence -> pitch- and latent-conditioned WaveNet decoder."""

    def __init__(self, config: AutoencoderConfig | None = None, device: Device = None) -> None:
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.encoder = WaveNetEncoder(self.config)
        self.decoder = WaveNet(self.config.decoder)
        if device is not None:
            self.to(device)

    @property
    def device(self) -> torch.device:
        return self.decoder.device

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``(batch, samples)`` -> latents ``(batch, latent_channels, frames)``, one frame per ``hop`` samples."""
        return self.encoder(audio)

    def forward(self, audio: torch.Tensor, pitch: torch.Tensor | None = None,
                phase: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits ``(batch, n_classes, samples)`` for every sample of ``audio (batch, samples)``
        (``phase``: the decoder's excitation phase track ``(batch, samples)``, if it has an excitation)."""
        z = self.encode(audio)
        classes = audio_to_classes(audio, self.config.decoder.n_classes)
        inp = shift_right(classes, silence_class(self.config.decoder.n_classes))
        return self.decoder(inp, pitch, None, upsample_local(z, self.config.hop, audio.shape[-1]), phase)

    def loss(self, audio: torch.Tensor, pitch: torch.Tensor | None = None,
             phase: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy (nats per sample) of reconstructing ``audio (batch, samples)`` through the latents."""
        classes = audio_to_classes(audio, self.config.decoder.n_classes)
        return F.cross_entropy(self(audio, pitch, phase), classes)

    def decode(self, latents: torch.Tensor, pitch: torch.Tensor | Sequence[int] | int | None = None,
               n_samples: int | None = None, **generate_kw) -> torch.Tensor:
        """Latents ``(batch, latent_channels, frames)`` -> audio ``(batch, n_samples)`` (default ``frames * hop``).

        ``generate_kw`` go to :func:`generate_tokens` (temperature, seed, method, progress).
        """
        n = latents.shape[-1] * self.config.hop if n_samples is None else n_samples
        return generate(self.decoder, n, pitch=pitch, local=latents, batch=latents.shape[0], **generate_kw)

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor, pitch: torch.Tensor | Sequence[int] | int | None = None,
                    **generate_kw) -> torch.Tensor:
        """Encode then decode ``audio (batch, samples)`` -> audio ``(batch, samples)``."""
        return self.decode(self.encode(audio.to(self.device)), pitch, audio.shape[-1], **generate_kw)

    @torch.no_grad()
    def interpolate(self, audio_a: torch.Tensor, audio_b: torch.Tensor, alphas: Sequence[float],
                    pitch: int | None = None, **generate_kw) -> torch.Tensor:
        """Decode the latent mixes ``(1 - a) z(audio_a) + a z(audio_b)`` -> audio ``(len(alphas), samples)``.

        ``audio_a`` and ``audio_b`` are single notes ``(samples,)`` or ``(1, samples)`` of equal length.
        """
        a = audio_a.reshape(1, -1).to(self.device)
        b = audio_b.reshape(1, -1).to(self.device)
        if a.shape != b.shape:
            raise ValueError(f"notes to interpolate must have equal length, got {a.shape[-1]} and {b.shape[-1]}")
        z = interpolate_latents(self.encode(a), self.encode(b), alphas)
        return self.decode(z, pitch, a.shape[-1], **generate_kw)


def interpolate_latents(za: torch.Tensor, zb: torch.Tensor, alphas: Sequence[float]) -> torch.Tensor:
    """Linear mixes of two latent sequences ``(1, C, frames)`` -> ``(len(alphas), C, frames)``; alpha 0 = ``za``, 1 = ``zb``."""
    if za.shape != zb.shape or za.shape[0] != 1:
        raise ValueError(f"latents must both be (1, channels, frames), got {tuple(za.shape)} and {tuple(zb.shape)}")
    w = torch.as_tensor(list(alphas), dtype=za.dtype, device=za.device).view(-1, 1, 1)
    return torch.lerp(za.expand(w.shape[0], -1, -1), zb.expand(w.shape[0], -1, -1), w)


# ---------------------------------------------------------------------------------------------
# building and loading
# ---------------------------------------------------------------------------------------------
def build_model(config: WaveNetConfig | AutoencoderConfig | dict, device: Device = None) -> nn.Module:
    """A :class:`WaveNet` or :class:`WaveNetAutoencoder` from a config (or its ``{"kind", ...}`` dict)."""
    if isinstance(config, dict):
        kind = config.get("kind")
        fields = {k: v for k, v in config.items() if k != "kind"}
        if kind == "wavenet":
            config = WaveNetConfig(**{**fields, "dilations": tuple(fields.get("dilations", ()))})
        elif kind == "wavenet_autoencoder":
            dec = dict(fields.pop("decoder"))
            dec["dilations"] = tuple(dec.get("dilations", ()))
            config = AutoencoderConfig(**fields, decoder=WaveNetConfig(**dec))
        else:
            raise ValueError(f"model config kind must be 'wavenet' or 'wavenet_autoencoder', got {kind!r}")
    if isinstance(config, WaveNetConfig):
        return WaveNet(config, device=device)
    if isinstance(config, AutoencoderConfig):
        return WaveNetAutoencoder(config, device=device)
    raise ValueError(f"expected a WaveNetConfig or AutoencoderConfig, got {type(config).__name__}")


def model_config_dict(model: nn.Module) -> dict:
    """The ``{"kind": ..., **config}`` dict that :func:`build_model` rebuilds ``model`` from."""
    if isinstance(model, WaveNetAutoencoder):
        return {"kind": "wavenet_autoencoder", **model.config.to_dict()}
    if isinstance(model, WaveNet):
        return {"kind": "wavenet", **model.config.to_dict()}
    raise ValueError(f"not a WaveNet model: {type(model).__name__}")


ASSETS = Path(__file__).resolve().parents[1] / "assets"
PRETRAINED: dict[str, str] = {"pitch": "wavenet_lecture_pitch.pt", "autoencoder": "wavenet_ae_lecture.pt"}
REBUILD_COMMAND = "python -m course_lib.train.wavenet --model wavenet --pitch --preset lecture --out PATH"
"""How a WaveNet checkpoint is made (each shipped card, ``assets/wavenet_*.json``, names its exact command)."""


def load_wavenet(path: PathLike | None = None, device: Device = None) -> nn.Module:
    """Load a model saved by the training loop (default: the shipped pitch-conditioned WaveNet).

    Returns the :class:`WaveNet` or :class:`WaveNetAutoencoder` in eval mode with ``.meta`` (the checkpoint's
    config, step, history and extra: everything but the weights) and ``.card`` (the data card ``.json`` beside the
    file, ``{}`` if none). Raises FileNotFoundError naming the command that makes it if ``path`` does not exist,
    ValueError if it holds no WaveNet config.
    """
    path = Path(path) if path is not None else ASSETS / PRETRAINED["pitch"]
    card = read_model_card(path)
    ckpt = load_checkpoint(path, rebuild=card.get("rebuild", REBUILD_COMMAND))
    cfg = ckpt.get("config", {}).get("model")
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: checkpoint has no config['model'] describing a WaveNet")
    model = build_model(cfg, device=device)
    model.load_state_dict(ckpt["model"])
    model.meta, model.card = checkpoint_meta(ckpt), card
    return model.eval()


def load_pretrained(name: str, device: Device = None) -> nn.Module:
    """The shipped checkpoint ``name`` (``"pitch"``: pitch-conditioned lecture WaveNet, ``"autoencoder"``): the
    model, with its data card (``course_lib/assets/*.json``) as ``.card``. See :func:`load_wavenet`."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained WaveNet {name!r}; choose from {sorted(PRETRAINED)}")
    return load_wavenet(ASSETS / PRETRAINED[name], device=device)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "WaveNetConfig", "AutoencoderConfig", "WaveNet", "GatedResidualLayer", "WaveNetEncoder", "WaveNetAutoencoder",
    "audio_to_classes", "classes_to_audio", "excitation", "phase_of_f0", "pitch_phase", "pitch_code", "quantize_linear", "receptive_field_by_gradient", "silence_class", "shift_right", "upsample_local",
    "generate_tokens", "generate", "interpolate_latents", "build_model", "model_config_dict", "load_wavenet", "load_pretrained", "count_parameters",
]
