"""``calibrate``: the table the HW2 thresholds are chosen from, and checks that they separate it.

Graded loops are made by the scorer from a checkpoint with ``course_lib.hw2.generate_loops``
(StyleGAN2 mels -> the course's grading vocoder), so the conditions are made the same way:

* **ceiling**: held-out real loops through the grading vocoder (their log-mel as a generator
  image, clamped like generated images, vocoded by ``course_lib.hw2.loop_vocoder`` and
  peak-normalised like ``generate_loops``): what a perfect generator gets -> must reach 40/40;
* **reference solution**: the shipped lecture-preset checkpoint through ``generate_loops`` at the
  policy's seed -> must reach at least ``REFERENCE_MIN_POINTS``;
* **expected 0**: an untrained generator of the lecture architecture, white noise, silence,
  one loop repeated, training loops copied (gain, noise, shift), through the vocoder, and in
  disguise (inverted polarity, low-pass); copies 3 % faster / slower are checked to be at least
  half removed (the memorisation check catches only part of them; CALIBRATION.md);
* for information: the raw real loops (no vocoder), which show what the vocoder costs.

The reference statistics stay *real* audio (they measure realness; see
``grading/assets/loops_reference.md``); the thresholds are anchored on real-through-vocoder.
Every condition is exactly ``n_loops`` loops (FAD depends on the count), scored twice: by the
raw metrics (FAD with a bootstrap 95 % interval, IS ± std) and by the whole trusted scoring
(validation, de-duplication, memorisation, thresholds -> points; :func:`grading.score.score_audio`).
Writes ``calibration.json``, ``calibration.md`` and ``calibration.png`` into the output folder.
One command re-runs it all: ``python -m grading calibrate``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from grading.demo import HELD_OUT_SEED, shuffled
from grading.policy import Policy, load_policy
from grading.reference import TRAINING_SEED, data_preset, load_reference_assets, through_grading_vocoder

REFERENCE_MIN_POINTS = 30.0   # the reference solution (shipped lecture checkpoint) must reach this
CEILING = "real loops through the grading vocoder"
RAW_REAL = "real loops, raw (no vocoder; information only)"
UNTRAINED = "untrained generator (lecture architecture)"
SPEED_COPIES = ("training loops copied, 3 % faster", "training loops copied, 3 % slower")
EXPECTED_ZERO_PREFIXES = ("white noise", "silence", "one loop repeated", "training loops copied", UNTRAINED)
SPEED_MIN_FOUND = 0.5  # speed-changed copies: the known weak spot of the memorisation check (CALIBRATION.md)


def untrained_checkpoint(path: Path, seed: int = 0) -> Path:
    """An untrained generator of the lecture preset's architecture, saved as a checkpoint."""
    from course_lib.models.stylegan2 import Generator, MelImageSpec, StyleGAN2Config, save_generator
    from course_lib.train.gan import PRESETS

    torch.manual_seed(seed)
    spec = MelImageSpec()
    gen = Generator(StyleGAN2Config(image_size=spec.size, **PRESETS["stylegan2"]["lecture"]["arch"]))
    return save_generator(gen, spec, path, meta={"note": "untrained (calibration)"})


def _conditions(n: int, preset: str, checkpoints: dict[str, Path], policy: Policy,
                workdir: Path) -> dict[str, torch.Tensor]:
    from course_lib.data.datasets import LoopDataset
    from course_lib.hw2 import generate_loops
    from course_lib.metrics.calibration import calibration_conditions
    from grading import disguises

    real = shuffled(LoopDataset(split="all", preset=preset, seed=HELD_OUT_SEED, precompute_mel=False).audio)
    training = shuffled(LoopDataset(split="all", preset=preset, seed=TRAINING_SEED, precompute_mel=False).audio)
    if real.shape[0] < n or training.shape[0] < n:
        raise ValueError(f"data preset {preset!r} has fewer than {n} loops; use a bigger preset")
    real, training = real[:n], training[:n]
    gen = policy.generation
    ceiling = through_grading_vocoder(real)
    out = {CEILING: ceiling, RAW_REAL: real}
    for name, path in checkpoints.items():
        out[f"reference solution: {name}"] = generate_loops(path, n, seed=gen.seed, batch_size=gen.batch_size)
    out[UNTRAINED] = generate_loops(untrained_checkpoint(workdir / "untrained.pt"), n, seed=gen.seed,
                                    batch_size=gen.batch_size)
    broken = calibration_conditions(ceiling, seed=0)   # white noise, silence, one loop repeated
    out.update({name: audio for name, audio in broken.items() if not name.startswith("real")})
    g = torch.Generator().manual_seed(0)
    copies = (torch.roll(training, 3000, dims=1) * 0.7 + 0.001 * torch.randn(training.shape, generator=g)).clamp(-1, 1)
    out["training loops copied (gain, noise, shift)"] = copies
    out["training loops copied through the grading vocoder"] = through_grading_vocoder(training)
    out["training loops copied, polarity inverted"] = torch.from_numpy(disguises.invert(training))
    out["training loops copied, low-pass 3 kHz"] = torch.from_numpy(disguises.lowpass(training, 3000))
    out["training loops copied, 3 % faster"] = torch.from_numpy(disguises.speed(training, 1.03))
    out["training loops copied, 3 % slower"] = torch.from_numpy(disguises.speed(training, 0.97))
    return out


def _graded(audio: torch.Tensor, policy: Policy, assets) -> dict:
    from grading.score import score_audio

    rep = score_audio(audio.numpy(), [f"loop_{i:03d}" for i in range(audio.shape[0])], policy, assets)
    return {"points": rep.points, "usable": rep.n_usable, "duplicates": len(rep.duplicates),
            "memorised": len(rep.memorised), "fad": rep.fad, "is": rep.inception_score}


def checks(rows: list[dict], policy: Policy) -> dict[str, bool]:
    """What the thresholds must do on the calibration table (all must hold before they are shipped)."""
    by = {r["condition"]: r for r in rows}
    top_fad = min(limit for limit, _ in policy.fad_rows)
    ceiling = by[CEILING]
    refs = [r for r in rows if r["condition"].startswith("reference solution")]
    zero = [r for r in rows if r["condition"].startswith(EXPECTED_ZERO_PREFIXES) and r["condition"] not in SPEED_COPIES]
    speed = [r for r in rows if r["condition"] in SPEED_COPIES]
    n = policy.submission.n_loops
    return {
        f"{CEILING} get {policy.quality_max:g}/{policy.quality_max:g}": ceiling["graded"]["points"] == policy.quality_max,
        f"{CEILING}: the whole FAD interval inside the best band (upper CI <= {top_fad:g})":
            ceiling["fad_ci"][1] is not None and ceiling["fad_ci"][1] <= top_fad,
        f"reference solution >= {REFERENCE_MIN_POINTS:g}/{policy.quality_max:g}":
            bool(refs) and all(r["graded"]["points"] >= REFERENCE_MIN_POINTS for r in refs),
        "untrained generator, noise, silence, collapse, copies (as they are, vocoded, inverted, low-passed) get 0":
            all(r["graded"]["points"] == 0 for r in zero),
        f"copies 3 % faster / slower: at least {SPEED_MIN_FOUND:.0%} found by the memorisation check (0 points wanted; "
        f"the speed search is the weak spot)": all(r["graded"]["memorised"] >= SPEED_MIN_FOUND * n for r in speed),
    }


def calibrate(out_dir: Path, checkpoints: dict[str, Path] | None = None, policy: Policy | None = None,
              preset: str | None = None) -> Path:
    """Build the calibration table; returns the path of the markdown summary.

    ``checkpoints``: reference-solution generators by name (default: the shipped lecture checkpoint).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.metrics.evaluate import evaluate
    from course_lib.models.stylegan2 import GENERATOR_ASSET

    policy = policy or load_policy()
    preset = preset or data_preset()
    if checkpoints is None:
        checkpoints = {"shipped lecture checkpoint": GENERATOR_ASSET} if GENERATOR_ASSET.is_file() else {}
    assets = load_reference_assets(preset=preset)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hw2-calibrate-") as tmp:
        conditions = _conditions(policy.submission.n_loops, preset, checkpoints, policy, Path(tmp))
    for name, audio in conditions.items():
        raw = evaluate(audio, assets.reference, classifier=assets.classifier, fad_boot=50, device="cpu")
        rows.append({"condition": name, "fad": raw.fad, "fad_ci": list(raw.fad_ci), "is": raw.is_mean,
                     "is_std": raw.is_std, "graded": _graded(audio, policy, assets)})
    result = checks(rows, policy)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from grading.score import json_safe

    (out_dir / "calibration.json").write_text(json.dumps(json_safe(
        {"n_loops": policy.submission.n_loops, "preset": preset, "seed": policy.generation.seed, "rows": rows,
         "checks": result}), indent=2))
    lines = [f"# HW2 calibration ({policy.submission.n_loops} loops per condition, data preset {preset}, "
             f"generation seed {policy.generation.seed})", "",
             "| condition | FAD [95 % CI] | IS ± std | graded points | usable | memorised |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        g = r["graded"]
        lines.append(f"| {r['condition']} | {r['fad']:.2f} [{r['fad_ci'][0]:.2f}, {r['fad_ci'][1]:.2f}] | "
                     f"{r['is']:.2f} ± {r['is_std']:.2f} | {g['points']:g} | {g['usable']} | {g['memorised']} |")
    lines += ["", "Checks:"] + [f"- [{'x' if ok else ' '}] {name}" for name, ok in result.items()]
    (out_dir / "calibration.md").write_text("\n".join(lines) + "\n")
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5))
    names = [r["condition"] for r in rows]
    y = np.arange(len(rows))
    fad = np.array([r["fad"] for r in rows])
    err = np.clip(np.array([[r["fad"] - r["fad_ci"][0], r["fad_ci"][1] - r["fad"]] for r in rows]).T, 0, None)
    a.barh(y, fad, xerr=err)
    for limit, pts in policy.fad_rows:
        a.axvline(limit, ls="--", c="k", lw=0.8)
        a.text(limit, len(rows) - 0.5, f"{pts:g}", fontsize=7)
    a.set(yticks=y, yticklabels=names, xscale="log", xlabel="FAD (log scale; dashed: thresholds)")
    b.barh(y, [r["is"] for r in rows], xerr=[r["is_std"] for r in rows])
    for limit, pts in policy.is_rows:
        b.axvline(limit, ls="--", c="k", lw=0.8)
    b.set(yticks=y, yticklabels=[], xlabel="IS (dashed: thresholds)")
    fig.tight_layout()
    fig.savefig(out_dir / "calibration.png", dpi=100)
    plt.close(fig)
    return out_dir / "calibration.md"
