"""Does a pitch-conditioned WaveNet play the pitch it is asked for? (Lesson 03, its data cards and tests.)

Generation starts from a short noise burst (a "pluck", fed in as a prime): a lightly trained
WaveNet started from pure silence tends to stay silent, because silence is the likeliest
continuation of silence in its training crops. The pitch of what it then plays is measured with
pYIN (``librosa.pyin``) on the voiced frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from course_lib import DEFAULT_SR


def pluck_prime(batch: int, sr: int = DEFAULT_SR, ms: float = 5.0, level: float = 0.3, seed: int = 0,
                n_classes: int = 256) -> torch.Tensor:
    """``batch`` bursts of uniform noise, ``ms`` milliseconds at peak ``level``, as mu-law classes ``(batch, P)``."""
    from course_lib.models.wavenet import audio_to_classes

    n = max(1, int(round(ms * 1e-3 * sr)))
    noise = torch.rand(batch, n, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return audio_to_classes(level * noise, n_classes)


def median_f0(audio: torch.Tensor | np.ndarray, sr: int = DEFAULT_SR, fmin: float = 50.0,
              fmax: float = 2000.0) -> tuple[float, float]:
    """Median pYIN f0 (Hz) of the voiced frames of a clip ``(samples,)`` and the voiced fraction of its frames.

    The f0 is ``nan`` when no frame is voiced.
    """
    import librosa

    x = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    f0, voiced, _ = librosa.pyin(x.reshape(-1).astype(np.float32), fmin=fmin, fmax=fmax, sr=sr, frame_length=1024)
    if not voiced.any():
        return float("nan"), 0.0
    return float(np.nanmedian(f0[voiced])), float(voiced.mean())


@dataclass
class PitchCheck:
    """One generated note: the MIDI pitch asked for, the pitch measured (Hz, nan = none), its error in cents."""

    midi: int
    target_hz: float
    measured_hz: float
    cents_error: float
    voiced_fraction: float
    rms: float

    @property
    def within(self) -> float:
        """Absolute error in cents (inf when no pitch was found)."""
        return abs(self.cents_error) if math.isfinite(self.cents_error) else math.inf


def check_generated_pitch(model: torch.nn.Module, midi: Sequence[int], seconds: float = 0.5,
                          temperature: float = 1.0, seed: int = 1, prime: bool = True,
                          sr: int = DEFAULT_SR, progress: bool = False) -> tuple[list[PitchCheck], torch.Tensor]:
    """Generate one note per MIDI pitch in ``midi`` (one batch) and measure each with pYIN.

    Returns ``(checks, audio (len(midi), samples))``; with ``prime`` the 5 ms pluck is not part of the audio.
    """
    from course_lib.models.wavenet import generate
    from course_lib.synth import midi_to_hz

    pitches = torch.as_tensor(list(midi), dtype=torch.long)
    burst = pluck_prime(len(pitches), sr, n_classes=model.config.n_classes) if prime else None
    audio = generate(model, int(round(seconds * sr)), pitch=pitches, prime=burst, temperature=temperature,
                     seed=seed, progress=progress).cpu()
    checks = []
    for p, clip in zip(pitches.tolist(), audio):
        target = float(midi_to_hz(p))
        f0, voiced = median_f0(clip, sr)
        cents = 1200 * math.log2(f0 / target) if math.isfinite(f0) else math.nan
        checks.append(PitchCheck(p, target, f0, cents, voiced, float(clip.pow(2).mean().sqrt())))
    return checks, audio


def summarize(checks: Sequence[PitchCheck], tolerance_cents: float = 50.0) -> dict:
    """How many notes came out within ``tolerance_cents`` of their pitch, and the per-note figures (JSON-able)."""
    errors = [c.within for c in checks]
    finite = [e for e in errors if math.isfinite(e)]
    return {"notes": len(checks), "tolerance_cents": tolerance_cents,
            "within_tolerance": sum(e <= tolerance_cents for e in errors),
            "median_abs_cents_error": round(float(np.median(finite)), 1) if finite else None,
            "per_note": [{k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else
                              (None if isinstance(v, float) else v)) for k, v in asdict(c).items()} for c in checks]}


CARD_PITCHES = (48, 53, 55, 57, 60, 65, 69, 72)
"""The MIDI pitches a data card's pitch check asks for: all in the lesson's training notes, from each of its
four instruments (the lesson data plays 24 of the 37 pitches in MIDI 48-84; a one-hot pitch never seen in
training keeps its random embedding and gets no note)."""


def card_pitch_check(model: torch.nn.Module, seed: int = 1, temperature: float = 1.0) -> dict:
    """The pitch check stored in a pitch-conditioned WaveNet's data card: :data:`CARD_PITCHES`, 0.5 s each."""
    checks, _ = check_generated_pitch(model, CARD_PITCHES, seconds=0.5, temperature=temperature, seed=seed)
    return {"how": f"0.5 s per pitch after a 5 ms pluck prime, temperature {temperature}, seed {seed}; "
                   "median pYIN f0 of the voiced frames (course_lib.models.wavenet_eval)",
            **summarize(checks)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_lib.models.wavenet_eval CKPT``: run the pitch check and store it in CKPT's ``.json`` card."""
    import argparse
    import json
    from pathlib import Path

    from course_lib.models.wavenet import load_wavenet

    ap = argparse.ArgumentParser(description="Pitch check of a pitch-conditioned WaveNet checkpoint (updates its card).")
    ap.add_argument("checkpoint")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=1.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_wavenet(args.checkpoint)
    if not getattr(model.config, "n_pitches", 0):
        raise SystemExit(f"{args.checkpoint}: not a pitch-conditioned WaveNet (n_pitches = 0)")
    result = card_pitch_check(model, args.seed, args.temperature)
    card_path = Path(args.checkpoint).with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {}
    card["pitch_check"] = result
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"{args.checkpoint}: {result['within_tolerance']}/{result['notes']} notes within "
          f"{result['tolerance_cents']:.0f} cents (median |error| {result['median_abs_cents_error']} cents) -> {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
