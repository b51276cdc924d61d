"""Size presets for Lesson 03's WaveNets: ``fast`` (tests, COURSE_FAST), ``lecture`` (a laptop CPU), ``full`` (a GPU).

The lecture WaveNet (2 cycles of dilations 1..128, 32 channels, receptive field 511 samples =
32 ms at 16 kHz) generates one second of 16 kHz audio in a few seconds on 2 CPU cores with fast
generation (``benchmarks/bench_wavenet.py``). ``full`` follows the NSynth paper's shape (3 cycles of
10 layers; encoder hop 512, 16 latents) at a width a single GPU trains in hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, asdict

from course_lib.models.wavenet import AutoencoderConfig, WaveNetConfig

WAVENET_PRESETS: dict[str, WaveNetConfig] = {
    "fast": WaveNetConfig(residual_channels=16, gate_channels=16, skip_channels=32, layers_per_cycle=6, cycles=1),
    "lecture": WaveNetConfig(residual_channels=32, gate_channels=32, skip_channels=64, layers_per_cycle=8, cycles=2),
    "full": WaveNetConfig(residual_channels=128, gate_channels=128, skip_channels=256, layers_per_cycle=10, cycles=3),
}

AUTOENCODER_PRESETS: dict[str, AutoencoderConfig] = {
    "fast": AutoencoderConfig(encoder_channels=16, encoder_layers_per_cycle=6, encoder_cycles=1, latent_channels=4,
                              hop=64, decoder=WAVENET_PRESETS["fast"]),
    "lecture": AutoencoderConfig(encoder_channels=32, encoder_layers_per_cycle=8, encoder_cycles=2, latent_channels=8,
                                 hop=128, decoder=WAVENET_PRESETS["lecture"]),
    "full": AutoencoderConfig(encoder_channels=128, encoder_layers_per_cycle=10, encoder_cycles=3, latent_channels=16,
                              hop=512, decoder=WAVENET_PRESETS["full"]),
}


@dataclass(frozen=True)
class TrainPreset:
    """Training knobs: optimizer steps, clips per batch, crop length in samples, Adam learning rate.

    ``lr_final``: None keeps ``lr`` for the whole run; a number anneals it from ``lr`` (step 0) to
    ``lr_final`` (last step) along a half cosine (:meth:`lr_at`).
    """

    steps: int
    batch_size: int
    crop: int
    lr: float
    lr_final: float | None = None

    def __post_init__(self) -> None:
        if self.lr <= 0 or (self.lr_final is not None and self.lr_final < 0):
            raise ValueError(f"TrainPreset needs lr > 0 and lr_final >= 0 (or None), got {self.lr}, {self.lr_final}")

    def lr_at(self, step: int, total: int | None = None) -> float:
        """Learning rate of optimizer step ``step`` of a ``total``-step run (default ``self.steps``)."""
        n = self.steps if total is None else total
        if self.lr_final is None or n <= 1:
            return self.lr
        t = min(max(step / (n - 1), 0.0), 1.0)
        return self.lr_final + 0.5 * (self.lr - self.lr_final) * (1.0 + math.cos(math.pi * t))

    def to_dict(self) -> dict:
        return asdict(self)


TRAIN_PRESETS: dict[str, TrainPreset] = {
    "fast": TrainPreset(steps=150, batch_size=8, crop=512, lr=3e-3),
    "lecture": TrainPreset(steps=1500, batch_size=8, crop=2048, lr=2e-3),
    "full": TrainPreset(steps=200_000, batch_size=32, crop=6144, lr=1e-3),
}


def _pick(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} preset {name!r}; choose from {sorted(table)}")
    return table[name]


def wavenet_preset(name: str, n_pitches: int = 0, n_instruments: int = 0, pitch_sigma: float = 0.0,
                   excitation_harmonics: int = 0) -> WaveNetConfig:
    """The WaveNet config of preset ``name``, optionally with global pitch / instrument conditioning
    (``pitch_sigma``: the pitch code's width in semitones, 0 = one-hot; ``excitation_harmonics``: harmonics of
    the per-sample pitch excitation, 0 = none; see :class:`WaveNetConfig`)."""
    from dataclasses import replace

    return replace(_pick(WAVENET_PRESETS, name, "WaveNet"), n_pitches=n_pitches, n_instruments=n_instruments,
                   pitch_sigma=pitch_sigma, excitation_harmonics=excitation_harmonics)


def autoencoder_preset(name: str, excitation_harmonics: int = 0) -> AutoencoderConfig:
    """The NSynth-autoencoder config of preset ``name`` (decoder conditioned on 128 MIDI pitches, and on a pitch
    excitation of ``excitation_harmonics`` harmonics if > 0)."""
    from dataclasses import replace

    cfg = _pick(AUTOENCODER_PRESETS, name, "autoencoder")
    return replace(cfg, decoder=replace(cfg.decoder, n_pitches=128, excitation_harmonics=excitation_harmonics))


def train_preset(name: str) -> TrainPreset:
    """The training knobs of preset ``name``."""
    return _pick(TRAIN_PRESETS, name, "training")
