"""The data card of the shipped DDSP checkpoint: measure it and write ``.json`` + ``.md`` beside the ``.pt``.

    python -m course_lib.metrics.ddsp_card course_lib/assets/ddsp_organ.pt --command "<the training command>"

Measured: reconstruction of the held-out notes (:mod:`course_lib.metrics.ddsp_eval`) and a timbre
transfer of a held-out glide (:func:`glide_check`: the pitch of the output against the input's, pYIN).
A hand-written ``## Limitations`` section already in the ``.md`` is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Sequence, Union

import torch

from course_lib import DEFAULT_SR
from course_lib.audio import resample
from course_lib.models.ddsp import load_ddsp, resynthesize
from course_lib.metrics.ddsp_eval import reconstruction_metrics
from course_lib.models.ddsp_features import pitch_pyin
from course_lib.train.ddsp import HELDOUT_PITCHES, HELDOUT_VELOCITIES, heldout_notes, note_features
from course_lib.runtime.checkpoint import load_checkpoint
from course_lib.runtime.model_card import write_model_card
from course_lib.synth import sine

PathLike = Union[str, Path]


def glide(seconds: float = 2.0, sr: int = DEFAULT_SR, f_start: float = 180.0, f_end: float = 520.0,
          amplitude: float = 0.5) -> torch.Tensor:
    """An exponential sine glide ``(1, samples)`` from ``f_start`` to ``f_end`` Hz with 50 ms fades."""
    n = int(round(seconds * sr))
    f0 = torch.exp(torch.linspace(math.log(f_start), math.log(f_end), n)).unsqueeze(0)
    x = sine(f0, seconds, sr, amplitude=amplitude)
    fade = torch.clamp(torch.minimum(torch.arange(n), torch.arange(n).flip(0)) / (0.05 * sr), max=1.0)
    return x * fade


def glide_check(model, sr: int = 22_050, seconds: float = 2.0) -> dict:
    """Timbre transfer of :func:`glide` at ``sr`` (not the model's rate): median and 95th-percentile |cents|
    between the pYIN f0 of output and input over the frames voiced in both."""
    x = glide(seconds, sr)
    y = resynthesize(x, sr, model)
    f_in, v_in = pitch_pyin(resample(x, sr, DEFAULT_SR), DEFAULT_SR, 256)
    f_out, v_out = pitch_pyin(resample(y, sr, DEFAULT_SR), DEFAULT_SR, 256)
    both = v_in & v_out
    cents = (1200 * torch.log2(f_out / f_in))[both].abs()
    return {"how": f"{seconds:.0f} s sine glide 180 -> 520 Hz at {sr} Hz through resynthesize(); pYIN f0 of output "
                   "vs input on the frames voiced in both",
            "frames_voiced_in_both": round(float(both.float().mean()), 3),
            "median_abs_cents": round(float(cents.median()), 1) if cents.numel() else None,
            "p95_abs_cents": round(float(cents.quantile(0.95)), 1) if cents.numel() else None}


def _loss_points(loss: list[float], window: int = 50) -> dict:
    points = {}
    for step in (window, 250, 500, 1000, 2000, 3000, 5000, len(loss)):
        if window <= step <= len(loss):
            tail = loss[step - window: step]
            points[str(step)] = round(sum(tail) / len(tail), 3)
    return points


def build_card(path: PathLike, command: str | None = None) -> dict:
    """Measure the checkpoint at ``path`` and return its card (JSON-able)."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    model = load_ddsp(path)
    held = heldout_notes()
    recon = model.reconstruct(held.audio, note_features(held, model.config.hop), seed=0)
    metrics = reconstruction_metrics(held.audio, recon, held.sr)
    extra = ckpt.get("extra", {})
    loss = ckpt.get("history", {}).get("loss", [])
    card = {"checkpoint": path.name, "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "model": ckpt["config"].get("model"), "data": ckpt["config"].get("data"),
            "train": ckpt["config"].get("train"), "steps": int(ckpt.get("step", 0)),
            "train_wall_seconds": extra.get("train_wall_seconds"), "feature_seconds": extra.get("feature_seconds"),
            "threads": extra.get("threads"), "device": extra.get("device"), "torch": torch.__version__,
            "loss_by_step": _loss_points(loss),
            "heldout_reconstruction": {"how": "held-out notes (course_lib.train.ddsp.heldout_notes) resynthesised "
                                              "from their own pYIN f0 and loudness, noise seed 0 "
                                              "(course_lib.metrics.ddsp_eval.reconstruction_metrics)", **metrics},
            "timbre_transfer_glide": glide_check(model),
            "rebuild": command}
    return card


def _markdown(card: dict, limitations: str) -> str:
    m, d, t, g = card["model"], card["data"], card["train"], card["timbre_transfer_glide"]
    h = card["heldout_reconstruction"]
    minutes = (card["train_wall_seconds"] or 0) / 60.0
    losses = ", ".join(f"{k}: {v}" for k, v in card["loss_by_step"].items())
    lines = [
        "# DDSP organ (shipped checkpoint `ddsp_organ.pt`)", "",
        "Harmonic-plus-noise DDSP model of Lesson 07 (`course_lib.models.ddsp`), loaded with "
        "`course_lib.models.ddsp.load_pretrained()` and used by `resynthesize(audio, sr)` when no checkpoint is given. "
        "This card is written by `python -m course_lib.metrics.ddsp_card`.", "",
        f"* **Model**: decoder of width {m['hidden']} (f0 and loudness MLPs, GRU, MLP, linear head), "
        f"{m['n_harmonics']} harmonics, {m['n_noise_bands']} noise bands, hop {m['hop']} samples "
        f"({1000 * m['hop'] / m['sr']:.0f} ms) at {m['sr']} Hz, reverb {'none' if not m['reverb_seconds'] else str(m['reverb_seconds']) + ' s'}; "
        f"{card['parameters']:,} parameters; loss: multi-scale spectral distance, FFT sizes {m['fft_sizes']}.",
        f"* **Data**: the organ of the synthetic mini-NSynth (`{d['instrument']}`, data preset `{d['data_preset']}`, seed "
        f"{d['seed']}), {d['notes']} notes of {d['seconds']} s: MIDI {min(d['pitches'])}-{max(d['pitches'])} without the "
        f"held-out pitches, velocities {d['velocities']}; SHA-256 of audio + labels `{d['hash']}`. Features: pYIN f0 "
        f"(refined by YIN) and A-weighted loudness, computed once per note set and cached on disk (about 0.5 s per "
        f"second of audio; {card['feature_seconds']} s in the run that wrote the checkpoint).",
        f"* **Training**: {card['steps']} steps, batch {t['batch_size']} crops of {t['crop_seconds']} s, Adam lr {t['lr']}, "
        f"seed {t['seed']}; {minutes:.1f} min wall time on {card['threads']} CPU thread(s) ({card['device']}) of the "
        f"course's shared 2-core machine, torch {card['torch']}. Training loss (mean of 50 steps) by step: {losses}.",
        f"* **File**: {card['bytes']:,} bytes, SHA-256 `{card['sha256']}`.", "",
        "Rebuild:", "", f"    {card['rebuild']}", "",
        "## Evaluation", "",
        "| measure | value |", "|---|---|",
        f"| held-out notes (MIDI {list(HELDOUT_PITCHES)}, velocities {list(HELDOUT_VELOCITIES)}) | {h['notes']} |",
        f"| median multi-scale spectral distance | {h['median_msd']} |",
        f"| median log-spectral distance (dB, n_fft 512) | {h['median_lsd_db']} |",
        f"| median abs f0 error, reconstruction vs original (cents, pYIN) | {h['median_abs_cents']} |",
        f"| notes within 50 cents | {h['notes_within_50_cents']}/{h['notes']} |",
        f"| timbre transfer of a held-out glide (22.05 kHz, 180-520 Hz): median / 95th percentile abs f0 error (cents) | "
        f"{g['median_abs_cents']} / {g['p95_abs_cents']} |", "",
        "The f0 error is small by construction: DDSP is *given* the f0 it plays (the error measures the pitch "
        "tracker twice and the synthesiser once). `python -m course_lib.metrics.ddsp_eval` compares it with the spectral "
        "autoencoder and Lesson 03's WaveNet autoencoder on the same notes (README, Lesson 07).", ""]
    return "\n".join(lines) + "\n" + limitations


def write_card(path: PathLike, command: str | None = None) -> tuple[Path, Path]:
    """Measure the checkpoint at ``path``; write ``.json`` and ``.md`` beside it (keeping a Limitations section)."""
    return write_model_card(path, build_card(path, command), _markdown)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--command", default=None, help="the command that rebuilds the checkpoint (stored in the card)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = args.command
    if command is None:
        prev = Path(args.checkpoint).with_suffix(".json")
        command = json.loads(prev.read_text())["rebuild"] if prev.is_file() else None
    json_path, md_path = write_card(args.checkpoint, command)
    print(f"{args.checkpoint}: card {json_path}, {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
