"""Measure a trained StyleGAN2 loop generator the way HW2 grades loops, and write its data card.

    python tools/loop_model_card.py build/runs/sg_lecture --out course_lib/assets/stylegan2_loops \\
        --command "python -m course_lib.train stylegan2 --preset lecture --out build/runs/sg_lecture"

Reads ``RUN/generator.pt`` (and every ``RUN/generator_<step>.pt`` exported on the way, the points of
the quality-versus-compute curve) and writes ``OUT.json`` + ``OUT.md``:

* the graded figures: 200 loops made exactly as the grader makes them (:func:`course_lib.hw2.generate_loops`,
  the course's default vocoder, the grading policy's latent seed), scored with the course metrics against the grader's reference
  statistics (``grading/assets/loops_reference.npz``: held-out real loops embedded by the shipped loop
  classifier): FAD with a bootstrap 95 % interval, IS, NDB/K, JSD; beside the same figures for held-out real
  loops (seed 2) and for those real loops passed through the vocoder (the ceiling a generator can reach);
* the curve: FAD / IS / NDB/K of each exported generator against its training minutes;
* the run: steps, batch, training wall time (from the run's history), machine, training-data hash.

This tool only *measures*: nothing here trains, selects or tunes a model (the recipe was chosen on the
training split and a validation split of its own; see the card).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_LOOPS = 200
HELD_OUT_SEED = 2  # the calibration's held-out real loops: neither the training (0) nor the reference (1) draw


def audio_hash(audio: torch.Tensor) -> str:
    """SHA-256 of float32 audio ``(n, samples)`` (the training data's fingerprint)."""
    return hashlib.sha256(audio.float().contiguous().numpy().tobytes()).hexdigest()


def score(audio: torch.Tensor, reference, classifier) -> dict:
    """FAD [95 % CI], IS, NDB/K, JSD of loops ``(n, samples)`` against the grader's reference statistics."""
    from course_lib.metrics.evaluate import evaluate

    r = evaluate(audio, reference, classifier=classifier, is_splits=4, fad_boot=50, seed=0, device="cpu")
    return {"fad": round(r.fad, 2), "fad_ci": [round(r.fad_ci[0], 2), round(r.fad_ci[1], 2)],
            "is": round(r.is_mean, 2), "ndb_k": round(r.ndb_k, 3), "jsd": round(r.jsd, 4),
            "precision": round(r.precision, 3), "recall": round(r.recall, 3)}


def exported_generators(run: Path) -> list[Path]:
    """``generator_<step>.pt`` files of a run, by step."""
    return sorted(run.glob("generator_[0-9]*.pt"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))


def measure(run: Path, n: int = N_LOOPS, vocoder: Path | None = None, idle_step_seconds: float | None = None) -> dict:
    """Every figure of the card (see the module docstring). ``vocoder``: None = the grader's (the default of
    :func:`course_lib.hw2.loop_vocoder`); the ceiling row always uses the grader's vocoder.
    ``idle_step_seconds``: seconds per training step measured on the quiet reference machine (both cores;
    ``benchmarks/bench_stylegan2.py``); the curve then also states ``idle_minutes = steps * it / 60``."""
    from course_lib.data.datasets import LoopDataset
    from course_lib.hw2 import generate_loops
    from course_lib.metrics.evaluate import ReferenceSet
    from course_lib.models.classifiers import load_loop_classifier
    from course_lib.models.istft_vocoder import ISTFT_VOCODER_ASSET
    from course_lib.models.stylegan2 import load_stylegan2
    from grading.calibrate import through_grading_vocoder
    from grading.reference import REFERENCE_FILE

    from grading.policy import load_policy

    seed = load_policy().generation.seed
    clf = load_loop_classifier(device="cpu")
    reference = ReferenceSet.load(REFERENCE_FILE)
    final = run / "generator.pt"
    G = load_stylegan2(final)
    meta = dict(getattr(G, "meta", {}))
    t0 = time.perf_counter()
    fake = generate_loops(final, n, seed=seed, vocoder=vocoder)
    gen_seconds = time.perf_counter() - t0
    real = LoopDataset(split="all", preset="lecture", seed=HELD_OUT_SEED, precompute_mel=False).audio
    real = real[torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(0))[:n]]
    through_vocoder = through_grading_vocoder(real)
    table = {"real loops (held out)": score(real, reference, clf),
             "real mels through the vocoder (ceiling)": score(through_vocoder, reference, clf),
             "this generator + vocoder": score(fake, reference, clf)}
    curve = []
    for path in exported_generators(run) + [final]:
        g = load_stylegan2(path)
        m = dict(getattr(g, "meta", {}))
        s = table["this generator + vocoder"] if path == final else \
            score(generate_loops(path, n, seed=seed, vocoder=vocoder), reference, clf)
        row = {"file": path.name, "steps": m.get("steps"), "minutes": round(m.get("seconds", 0) / 60, 1)}
        if idle_step_seconds:
            row["idle_minutes"] = round(m.get("steps", 0) * idle_step_seconds / 60, 1)
        curve.append({**row, **s})
    train = LoopDataset(split="train", preset="lecture", seed=0, precompute_mel=False).audio
    return {
        "checkpoint": {"file": final.name, "bytes": final.stat().st_size,
                       "sha256": hashlib.sha256(final.read_bytes()).hexdigest(), "meta": meta,
                       "architecture": G.config.to_dict()},
        "training_data": {"what": "synthetic HW2 loop set, preset 'lecture', seed 0, split 'train'",
                          "n_loops": int(train.shape[0]), "sha256_audio": audio_hash(train)},
        "evaluation": {"n_loops": n, "seed": seed, "how": "course_lib.hw2.generate_loops(checkpoint, 200, seed=<policy seed>), the course "
                       "vocoder; course_lib.metrics.evaluate against grading/assets/loops_reference.npz "
                       "(is_splits=4, fad_boot=50)", "vocoder": str(vocoder) if vocoder is not None else
                       (ISTFT_VOCODER_ASSET.name if ISTFT_VOCODER_ASSET.is_file() else "Griffin-Lim (no iSTFT vocoder)"), "generation_seconds": round(gen_seconds, 1)},
        "table": table, "curve": curve, "idle_step_seconds": idle_step_seconds,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }


def card_markdown(card: dict, title: str, command: str, notes: str = "") -> str:
    """The human-readable card."""
    t, m, ck = card["table"], card["checkpoint"]["meta"], card["checkpoint"]
    rows = "\n".join(f"| {name} | {v['fad']:.1f} [{v['fad_ci'][0]:.1f}, {v['fad_ci'][1]:.1f}] | {v['is']:.2f} | "
                     f"{v['ndb_k']:.2f} | {v['jsd']:.3f} |" for name, v in t.items())
    curve = "\n".join(f"| {c.get('idle_minutes', '-')} | {c['minutes']:.1f} | {c['steps']} | {c['fad']:.1f} | "
                      f"{c['is']:.2f} | {c['ndb_k']:.2f} |" for c in card["curve"])
    k = card["checkpoint"]["architecture"].get("n_classes", 0)
    kind = (f"a class-conditional StyleGAN2 ({k} loop styles: {', '.join(m.get('class_names', []))}; graded loops "
            f"play every style in turn)" if k else "an unconditional StyleGAN2")
    return f"""# Data card: `{ck['file'] if title is None else title}`

- **What**: the EMA generator of {kind} trained on log-mel images of the course's one-bar loops
  ({card['training_data']['what']}, {card['training_data']['n_loops']} loops, SHA-256 of the audio
  `{card['training_data']['sha256_audio'][:16]}...`). Architecture: `{json.dumps(card['checkpoint']['architecture'])}`.
- **Rebuild**: `{command}` ({m.get('steps')} steps of batch {m.get('batch_size')}, {m.get('seconds', 0) / 60:.1f} min
  of training wall time with {m.get('threads')} torch threads; machine: {card['machine']['cpus']} CPU cores, no GPU).
- **File**: {ck['bytes'] / 1e6:.1f} MB, SHA-256 `{ck['sha256'][:16]}...`.
- **Measured** ({card['evaluation']['how']}; vocoder: {card['evaluation']['vocoder']}):

| {card['evaluation']['n_loops']} loops | FAD ↓ [95 % CI] | IS ↑ | NDB/K ↓ | JSD ↓ |
|---|---|---|---|---|
{rows}

- **Quality versus compute** (the generators exported on the way, same measurement):

| minutes on 2 idle cores ({card.get('idle_step_seconds')} s/step) | wall minutes of this run | steps | FAD ↓ | IS ↑ | NDB/K ↓ |
|---|---|---|---|---|---|
{curve}

{notes}
Regenerate this card: `python tools/loop_model_card.py RUN_DIR --out course_lib/assets/<name> --command "..." --notes tools/card_notes/<name>.md --idle-step-seconds <s/step>`
(the hand-written notes above live in `tools/card_notes/`).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="training folder holding generator.pt (and generator_<step>.pt)")
    ap.add_argument("--out", type=Path, required=True, help="card path without suffix (.json and .md written)")
    ap.add_argument("--command", required=True, help="the command that trained the run (goes into the card)")
    ap.add_argument("--notes", type=Path, help="a Markdown file of hand-written notes kept in the card")
    ap.add_argument("--n", type=int, default=N_LOOPS)
    ap.add_argument("--idle-step-seconds", type=float, help="s/step on the quiet machine (bench_stylegan2.py)")
    a = ap.parse_args(argv)
    if not (a.run / "generator.pt").is_file():
        ap.error(f"{a.run}: no generator.pt there (train first: {a.command})")
    card = measure(a.run, a.n, idle_step_seconds=a.idle_step_seconds)
    card["command"] = a.command
    notes = a.notes.read_text() if a.notes else ""
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    a.out.with_suffix(".md").write_text(card_markdown(card, a.out.with_suffix(".pt").name, a.command, notes))
    print(json.dumps(card["table"], indent=1))
    print(json.dumps(card["curve"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
