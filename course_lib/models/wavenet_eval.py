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
from course_lib.data.note_data import LESSON_DATA, synthetic_note_data
from course_lib.models.gansynth_repr import log_spectral_distance
from course_lib.models.wavenet import WaveNetAutoencoder, audio_to_classes, generate, load_wavenet
from course_lib.synth import midi_to_hz


def pluck_prime(batch: int, sr: int = DEFAULT_SR, ms: float = 5.0, level: float = 0.3, seed: int = 0,
                n_classes: int = 256) -> torch.Tensor:
    """``batch`` bursts of uniform noise, ``ms`` milliseconds at peak ``level``, as mu-law classes ``(batch, P)``."""
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

    midi: float
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
    pitches = torch.as_tensor(list(midi))  # ints; real values for a model with a Gaussian pitch code
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


def contour_cents_error(audio: torch.Tensor | np.ndarray, target_hz: torch.Tensor | np.ndarray, sr: int = DEFAULT_SR,
                        hop: int = 256, fmin: float = 50.0, fmax: float = 2000.0) -> dict:
    """How closely a clip ``(samples,)`` follows a pitch contour ``target_hz (samples,)`` (a glide, a vibrato).

    pYIN f0 every ``hop`` samples against the target at each frame's centre -> ``{"times_s", "measured_hz",
    "target_hz", "cents", "voiced_fraction", "median_abs_cents"}`` (numpy arrays per frame; ``cents`` is nan on
    unvoiced frames, the median is over voiced frames, nan when none is voiced).
    """
    import librosa

    x = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    target = target_hz.detach().cpu().numpy() if isinstance(target_hz, torch.Tensor) else np.asarray(target_hz)
    x, target = x.reshape(-1).astype(np.float32), target.reshape(-1).astype(np.float64)
    if x.shape != target.shape:
        raise ValueError(f"audio has {x.size} samples but the target contour {target.size}")
    f0, voiced, _ = librosa.pyin(x, fmin=fmin, fmax=fmax, sr=sr, frame_length=1024, hop_length=hop)
    centres = np.clip(np.arange(len(f0)) * hop, 0, x.size - 1)  # librosa centres frame i on sample i * hop
    want = target[centres]
    cents = np.where(voiced, 1200 * np.log2(np.where(voiced, f0, 1.0) / want), np.nan)
    return {"times_s": centres / sr, "measured_hz": f0, "target_hz": want, "cents": cents,
            "voiced_fraction": float(voiced.mean()),
            "median_abs_cents": float(np.median(np.abs(cents[voiced]))) if voiced.any() else float("nan")}


CARD_PITCHES = (48, 53, 55, 57, 60, 65, 69, 72)
"""The MIDI pitches a data card's pitch check asks for: all in the lesson's training notes, from each of its
four instruments (the lesson data plays 24 of the 37 pitches in MIDI 48-84; a one-hot pitch never seen in
training keeps its random embedding and gets no note)."""


UNSEEN_PITCHES = (50, 52, 56, 58, 62, 64, 68, 70)
"""Pitches inside the lesson data's range (MIDI 48-84) that none of its notes plays: what a model that generalises
over pitch (a Gaussian pitch code, a pitch excitation) plays when asked for a note it never heard."""


def card_pitch_check(model: torch.nn.Module, seed: int = 1, temperature: float = 1.0,
                     pitches: Sequence[int] = CARD_PITCHES) -> dict:
    """The pitch check stored in a pitch-conditioned WaveNet's data card: ``pitches`` (default
    :data:`CARD_PITCHES`), 0.5 s each."""
    checks, _ = check_generated_pitch(model, pitches, seconds=0.5, temperature=temperature, seed=seed)
    return {"how": f"0.5 s per pitch after a 5 ms pluck prime, temperature {temperature}, seed {seed}; "
                   "median pYIN f0 of the voiced frames (course_lib.models.wavenet_eval)",
            **summarize(checks)}


def reconstruction_check(model: torch.nn.Module, audio: torch.Tensor, midi: Sequence[int], seed: int = 0,
                         temperature: float = 1.0, sr: int = DEFAULT_SR) -> dict:
    """Encode notes ``audio (batch, samples)`` with a WaveNet autoencoder, decode them (pitch-conditioned) and compare.

    Per note: the pYIN pitch of original and reconstruction (cents between them) and the log-spectral
    distance (dB, :func:`course_lib.models.gansynth_repr.log_spectral_distance`). JSON-able dict.
    """
    x = audio.to(model.device)
    recon = model.decode(model.encode(x), pitch=torch.as_tensor(list(midi)), n_samples=x.shape[-1],
                         temperature=temperature, seed=seed).cpu()
    lsd = log_spectral_distance(audio.cpu(), recon, n_fft=512, hop=128)
    notes = []
    for p, orig, rec, d in zip(midi, audio.cpu(), recon, lsd.tolist()):
        f_orig, _ = median_f0(orig, sr)
        f_rec, voiced = median_f0(rec, sr)
        cents = 1200 * math.log2(f_rec / f_orig) if math.isfinite(f_rec) and math.isfinite(f_orig) else math.nan
        notes.append({"midi": int(p), "original_hz": round(f_orig, 2) if math.isfinite(f_orig) else None,
                      "reconstruction_hz": round(f_rec, 2) if math.isfinite(f_rec) else None,
                      "cents_apart": round(cents, 1) if math.isfinite(cents) else None,
                      "voiced_fraction": round(voiced, 3), "lsd_db": round(d, 2)})
    kept = [n for n in notes if n["cents_apart"] is not None and abs(n["cents_apart"]) <= 50]
    return {"how": f"{len(notes)} training notes of {audio.shape[-1] / sr:.2f} s encoded and decoded (temperature "
                   f"{temperature}, seed {seed}); pYIN pitch of original vs reconstruction; log-spectral distance "
                   "(n_fft 512)", "notes": len(notes), "pitch_kept_within_50_cents": len(kept),
            "median_lsd_db": round(float(np.median([n["lsd_db"] for n in notes])), 2), "per_note": notes}


def card_reconstruction_check(model: torch.nn.Module, seconds: float = 0.5, seed: int = 0) -> dict:
    """The reconstruction check stored in an autoencoder's card: one note of each pitch in :data:`CARD_PITCHES`
    (decoding noise ``seed``)."""
    data = synthetic_note_data(**LESSON_DATA)
    idx = [int((data.pitch == p).nonzero()[0]) for p in CARD_PITCHES]
    n = int(round(seconds * data.sr))
    return reconstruction_check(model, data.audio[idx, :n], CARD_PITCHES, seed=seed, sr=data.sr)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_lib.models.wavenet_eval CKPT``: run the pitch / reconstruction check, store it in CKPT's card."""
    import argparse
    import json
    from pathlib import Path

    ap = argparse.ArgumentParser(description="Pitch check of a pitch-conditioned WaveNet, or reconstruction check of "
                                             "an autoencoder (updates the checkpoint's .json card).")
    ap.add_argument("checkpoint")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--other-seeds", type=int, nargs="*", default=[2, 3, 4, 5, 6],
                    help="also run the pitch check with these sampling seeds (stored as pitch_check_other_seeds)")
    ap.add_argument("--temperature", type=float, default=1.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = load_wavenet(args.checkpoint)
    card, card_path = dict(model.card), Path(args.checkpoint).with_suffix(".json")
    if isinstance(model, WaveNetAutoencoder):
        result = card_reconstruction_check(model)
        card["reconstruction_check"] = result
        summary = (f"{result['pitch_kept_within_50_cents']}/{result['notes']} reconstructions keep the note's pitch "
                   f"within 50 cents; median log-spectral distance {result['median_lsd_db']} dB")
        others = {}
        for seed in args.other_seeds:  # other decoding noise: does the figure hold?
            other = card_reconstruction_check(model, seed=seed)
            others[str(seed)] = {k: other[k] for k in ("pitch_kept_within_50_cents", "median_lsd_db")}
            summary += f"; seed {seed}: {other['pitch_kept_within_50_cents']}/{other['notes']}"
        card["reconstruction_check_other_seeds"] = others
    elif getattr(model.config, "n_pitches", 0):
        result = card_pitch_check(model, args.seed, args.temperature)
        card["pitch_check"] = result
        summary = (f"{result['within_tolerance']}/{result['notes']} notes within {result['tolerance_cents']:.0f} cents "
                   f"(median |error| {result['median_abs_cents_error']} cents)")
        others = {}
        for seed in args.other_seeds:  # the same check with other sampling noise: does the figure hold?
            other = card_pitch_check(model, seed, args.temperature)
            others[str(seed)] = {"within_tolerance": other["within_tolerance"],
                                 "median_abs_cents_error": other["median_abs_cents_error"],
                                 "cents_error": {str(n["midi"]): n["cents_error"] for n in other["per_note"]}}
            summary += f"; seed {seed}: {other['within_tolerance']}/{other['notes']}"
        card["pitch_check_other_seeds"] = others
        every = sorted(set(synthetic_note_data(**LESSON_DATA).pitch.tolist()))  # all the lesson data's pitches
        trained = card_pitch_check(model, args.seed, args.temperature, every)
        card["training_pitch_check"] = {k: trained[k] for k in ("how", "notes", "tolerance_cents", "within_tolerance",
                                                               "median_abs_cents_error")}
        card["training_pitch_check"]["missed"] = [n["midi"] for n in trained["per_note"]
                                                  if n["cents_error"] is None or abs(n["cents_error"]) > 50]
        summary += f"; all {trained['notes']} training pitches: {trained['within_tolerance']}"
        if getattr(model.config, "pitch_sigma", 0) > 0:  # a code for any pitch: ask for the ones never heard
            unseen = card_pitch_check(model, args.seed, args.temperature, UNSEEN_PITCHES)
            card["unseen_pitch_check"] = unseen
            summary += f"; pitches never heard: {unseen['within_tolerance']}/{unseen['notes']}"
    else:
        raise SystemExit(f"{args.checkpoint}: neither a pitch-conditioned WaveNet nor an autoencoder")
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"{args.checkpoint}: {summary} -> {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
