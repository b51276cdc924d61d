"""Lesson 07's reconstruction table: DDSP, the spectral autoencoder and Lesson 03's WaveNet autoencoder
on the same held-out organ notes: :func:`course_lib.train.ddsp.heldout_notes` (pitches no model trained
on) and :func:`~course_lib.train.ddsp.heldout_velocity_notes` (pitches they all trained on, at velocities
none did: the fair set for a model that knows only its training pitches).

Per note: the multi-scale spectral distance (DDSP's loss, :func:`course_lib.spectral.multiscale_spectral_distance`),
the log-spectral distance in dB (as in Lesson 03's card, n_fft 512) and the pitch error: pYIN f0 of the
original and of the reconstruction, frame by frame on the frames voiced in both, in cents. A model
summary is the median over notes; a note whose reconstruction has no voiced frame counts as "no pitch".

    python -m course_lib.metrics.ddsp_eval --out course_lib/assets/ddsp_comparison.json

trains DDSP's ``lecture`` preset, then the spectral autoencoder and the RAVE-style VAE
(:mod:`course_lib.models.rave_lite`) for the same wall time each, loads the shipped
DDSP and WaveNet autoencoder, measures all of them (and Griffin-Lim from the true magnitude, the phase
artefacts alone) and writes the table (JSON, and Markdown on stdout).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Sequence

import torch

from course_lib import DEFAULT_SR
from course_lib.models import wavenet as wn
from course_lib.models.ddsp import load_pretrained
from course_lib.models.ddsp_features import pitch_pyin
from course_lib.train.ddsp import (get_preset, heldout_notes, heldout_velocity_notes, note_features, train_ddsp,
                                          training_notes)
from course_lib.models.gansynth_repr import log_spectral_distance
from course_lib.models.rave_lite import train_rave_lite
from course_lib.models.spectral_ae import oracle_griffin_lim, train_spectral_ae
from course_lib.runtime.device import set_threads
from course_lib.spectral import multiscale_spectral_distance


def pitch_error_cents(reference: torch.Tensor, estimate: torch.Tensor, sr: int = DEFAULT_SR,
                      hop: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Median |cents| between the pYIN f0 of ``estimate`` and ``reference`` (each ``(batch, samples)``) over the
    frames voiced in both -> ``(errors (batch,), voiced fraction of the estimate (batch,))``; nan = no shared voiced frame."""
    f_ref, v_ref = pitch_pyin(reference, sr, hop)
    f_est, v_est = pitch_pyin(estimate, sr, hop)
    errors = []
    for fr, vr, fe, ve in zip(f_ref, v_ref, f_est, v_est):
        both = vr & ve & torch.isfinite(fr) & torch.isfinite(fe)
        errors.append(float((1200 * torch.log2(fe[both] / fr[both])).abs().median()) if bool(both.any()) else math.nan)
    return torch.tensor(errors), v_est.float().mean(dim=1)


def reconstruction_metrics(original: torch.Tensor, reconstruction: torch.Tensor, sr: int = DEFAULT_SR) -> dict:
    """Per-note and median figures of ``reconstruction`` against ``original`` (both ``(notes, samples)``); JSON-able."""
    x = original.detach().cpu().float()
    y = reconstruction.detach().cpu().float()
    if x.shape != y.shape:
        raise ValueError(f"original {tuple(x.shape)} and reconstruction {tuple(y.shape)} shapes differ")
    msd = multiscale_spectral_distance(x, y)
    lsd = log_spectral_distance(x, y, n_fft=512, hop=128)
    cents, voiced = pitch_error_cents(x, y, sr)
    finite = cents[torch.isfinite(cents)]
    return {"notes": int(x.shape[0]),
            "median_msd": round(float(msd.median()), 3),
            "median_lsd_db": round(float(lsd.median()), 2),
            "median_abs_cents": round(float(finite.median()), 1) if finite.numel() else None,
            "notes_within_50_cents": int((finite <= 50).sum()),
            "notes_without_pitch": int((~torch.isfinite(cents)).sum()),
            "per_note": [{"msd": round(float(a), 3), "lsd_db": round(float(b), 2),
                          "abs_cents": round(float(c), 1) if math.isfinite(float(c)) else None,
                          "voiced_fraction": round(float(v), 3)}
                         for a, b, c, v in zip(msd, lsd, cents, voiced)]}


def markdown_table(rows: Sequence[dict]) -> str:
    """The comparison as a Markdown table (one row per model: name, training CPU minutes, the medians)."""
    out = ["| model | training (CPU min) | multi-scale spectral distance | log-spectral distance (dB) | "
           "median abs f0 error (cents) | notes within 50 cents |", "|---|---|---|---|---|---|"]
    for r in rows:
        cents = "no pitch" if r["median_abs_cents"] is None else f"{r['median_abs_cents']:.1f}"
        minutes = "-" if r.get("train_minutes") is None else f"{r['train_minutes']:.1f}"
        out.append(f"| {r['model']} | {minutes} | {r['median_msd']:.2f} | {r['median_lsd_db']:.1f} | {cents} | "
                   f"{r['notes_within_50_cents']}/{r['notes']} |")
    return "\n".join(out)


def wavenet_reconstruction(notes: torch.Tensor, pitches: Sequence[int], seed: int = 0,
                           progress: bool = False) -> tuple[torch.Tensor, float | None]:
    """Lesson 03's shipped WaveNet autoencoder on ``notes (N, samples)`` (pitch-conditioned decoding, temperature 1)
    -> (audio, its training minutes from the card)."""
    model = wn.load_pretrained("autoencoder")
    card = model.card
    with torch.no_grad():
        z = model.encode(notes.to(model.device))
        audio = model.decode(z, pitch=torch.as_tensor(list(pitches)), n_samples=notes.shape[-1], temperature=1.0,
                             seed=seed, progress=progress).cpu()
    seconds = card.get("train_wall_seconds")
    return audio, (seconds / 60.0 if seconds else None)


WAVENET_ROW = "WaveNet autoencoder (Lesson 03, shipped)"


def _add_wavenet_rows(sets: dict, add) -> None:
    """Decode both note sets with the shipped WaveNet autoencoder and add its rows."""
    decoded = {k: wavenet_reconstruction(n.audio, n.pitch.tolist(), progress=True) for k, n in sets.items()}
    add(WAVENET_ROW, lambda k, n: decoded[k][0], decoded["heldout_pitches"][1],
        "course_lib/assets/wavenet_ae_lecture.pt, pitch-conditioned decoding at temperature 1")


def _update_wavenet_rows(out: Path, sets: dict, rows: list, add, command: str) -> int:
    """``--wavenet-only``: replace the WaveNet autoencoder's rows of the tables in ``out``, keep the rest."""
    if not out.is_file():
        raise SystemExit(f"{out}: no tables to update; run without --wavenet-only first")
    result = json.loads(out.read_text(encoding="utf-8"))
    _add_wavenet_rows(sets, add)
    result["rows"] = [r for r in result["rows"] if r["model"] != WAVENET_ROW] + rows
    result["wavenet_command"] = command
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for key in sets:
        print(f"\n{NOTE_SETS[key]}\n\n" + markdown_table([r for r in result["rows"] if r["notes_set"] == key]))
    return 0


NOTE_SETS = {
    "heldout_pitches": "held-out pitches (MIDI 50, 56, ..., 80) at held-out velocities (64, 112)",
    "heldout_velocities": "pitches the WaveNet autoencoder trained on (MIDI 53, 59, ..., 83) at held-out velocities",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train DDSP (lecture), then the baselines on the same budget; measure every model on both
    note sets (:data:`NOTE_SETS`); write JSON and print the Markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="JSON file for the tables")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-wavenet", action="store_true")
    ap.add_argument("--wavenet-only", action="store_true",
                    help="re-measure only the WaveNet autoencoder's rows of the existing --out file (after it is "
                         "retrained); the other rows and their command stay as they were")
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)
    sets = {"heldout_pitches": heldout_notes(), "heldout_velocities": heldout_velocity_notes()}
    rows = []
    command = "python -m course_lib.metrics.ddsp_eval " + " ".join(argv if argv is not None else [])

    def add(name: str, reconstruct, minutes: float | None, note: str) -> None:
        for key, notes in sets.items():
            m = reconstruction_metrics(notes.audio, reconstruct(key, notes), notes.sr)
            rows.append({"model": name, "notes_set": key, "train_minutes": None if minutes is None else round(minutes, 1),
                         "how": note, **m})
            print(key, markdown_table(rows[-1:]).splitlines()[-1], flush=True)

    if args.wavenet_only:
        return _update_wavenet_rows(Path(args.out), sets, rows, add, command)
    feats = {k: note_features(v, 64) for k, v in sets.items()}
    data = training_notes("lecture")
    train_feats = note_features(data, 64, progress=True)
    start = time.perf_counter()
    ddsp, hist = train_ddsp("lecture", data=data, features=train_feats, seed=args.seed, progress=True)
    ddsp_minutes = (time.perf_counter() - start) / 60.0
    add("DDSP, lecture preset", lambda k, n: ddsp.reconstruct(n.audio, feats[k], seed=0), ddsp_minutes,
        f"{hist.step} steps of {get_preset('lecture').batch_size} crops, trained by this tool")
    start = time.perf_counter()
    sae, sae_hist = train_spectral_ae(data.audio, 100_000, seed=args.seed, max_seconds=ddsp_minutes * 60.0)
    add("spectral autoencoder + Griffin-Lim (64 it.), same budget", lambda k, n: sae.reconstruct(n.audio),
        (time.perf_counter() - start) / 60.0, f"{sae_hist.step} steps of 8 crops, stopped at DDSP's training time")
    start = time.perf_counter()
    rave, rave_hist = train_rave_lite(data.audio, 100_000, seed=args.seed, max_seconds=ddsp_minutes * 60.0)
    add("RAVE-style VAE (PQMF 16 bands, first stage only), same budget", lambda k, n: rave.reconstruct(n.audio),
        (time.perf_counter() - start) / 60.0, f"{rave_hist.step} steps of 8 crops, stopped at DDSP's training time")
    add("Griffin-Lim from the true magnitude (64 it.)", lambda k, n: oracle_griffin_lim(n.audio), 0.0,
        "no model: the phase-reconstruction floor of the spectral autoencoder")
    shipped = load_pretrained()
    minutes = shipped.card.get("train_wall_seconds")
    add("DDSP, shipped (full preset)", lambda k, n: shipped.reconstruct(n.audio, feats[k], seed=0),
        minutes / 60.0 if minutes else None, f"course_lib/assets/ddsp_organ.pt, {shipped.card.get('steps')} steps")
    if not args.skip_wavenet:
        _add_wavenet_rows(sets, add)
    result = {"note_sets": {k: {"what": NOTE_SETS[k], **sets[k].description} for k in sets}, "threads": threads,
              "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
              "command": command, "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for key in sets:
        print(f"\n{NOTE_SETS[key]}\n\n" + markdown_table([r for r in rows if r["notes_set"] == key]))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
