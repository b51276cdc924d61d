"""``calibrate``: the table the HW2 thresholds are chosen from, and a check that they separate it.

Every condition is a set of exactly ``n_loops`` loops (FAD depends on the count), scored twice:
by the raw metrics (FAD with a bootstrap 95 % interval, IS ± std over splits, against the
shipped reference statistics) and by the whole grading policy (validation, de-duplication,
memorisation check, thresholds -> points). Conditions: held-out real loops, the course's
generator checkpoints (the reference solution at whatever budgets are given), white noise,
silence, one loop repeated, and training loops copied with gain, noise and a time shift.
Writes ``calibration.json``, ``calibration.md`` and ``calibration.png`` into the output folder.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from grading.policy import Policy, load_policy
from grading.demo import HELD_OUT_SEED, shuffled
from grading.reference import TRAINING_SEED, data_preset, load_reference_assets



def _conditions(n: int, preset: str, checkpoints: dict[str, Path]) -> dict[str, torch.Tensor]:
    from course_lib.data.datasets import LoopDataset
    from course_lib.hw2 import generate_loops
    from course_lib.metrics.calibration import calibration_conditions

    real = shuffled(LoopDataset(split="all", preset=preset, seed=HELD_OUT_SEED, precompute_mel=False).audio)
    training = shuffled(LoopDataset(split="all", preset=preset, seed=TRAINING_SEED, precompute_mel=False).audio)
    if real.shape[0] < n or training.shape[0] < n:
        raise ValueError(f"data preset {preset!r} has fewer than {n} loops; use a bigger preset")
    real = real[:n]
    out = {"real loops (held out)": real}
    for name, path in checkpoints.items():
        out[f"generator: {name}"] = generate_loops(path, n, seed=0)
    broken = calibration_conditions(real, seed=0)   # white noise, silence, one loop repeated
    out.update({name: audio for name, audio in broken.items() if not name.startswith("real")})
    g = torch.Generator().manual_seed(0)
    copies = torch.roll(training[:n], 3000, dims=1) * 0.7 + 0.001 * torch.randn(real.shape, generator=g)
    out["training loops copied"] = copies.clamp(-1, 1)
    return out


def _graded(audio: torch.Tensor, policy: Policy, assets) -> dict:
    from course_lib.audio import save
    from grading.score import score_loops

    with tempfile.TemporaryDirectory() as tmp:
        for i, clip in enumerate(audio):
            save(Path(tmp) / f"loop_{i:03d}.wav", clip, policy.submission.sample_rate)
        rep = score_loops(Path(tmp), policy, assets)
    return {"points": rep.points, "usable": rep.n_usable, "duplicates": len(rep.duplicates),
            "memorised": len(rep.memorised), "fad": rep.fad, "is": rep.inception_score}


def calibrate(out_dir: Path, checkpoints: dict[str, Path] | None = None, policy: Policy | None = None,
              preset: str | None = None) -> Path:
    """Build the calibration table; returns the path of the markdown summary."""
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
    for name, audio in _conditions(policy.submission.n_loops, preset, checkpoints).items():
        raw = evaluate(audio, assets.reference, classifier=assets.classifier, fad_boot=50, device="cpu")
        rows.append({"condition": name, "fad": raw.fad, "fad_ci": list(raw.fad_ci), "is": raw.is_mean,
                     "is_std": raw.is_std, "graded": _graded(audio, policy, assets)})
    top_fad = min(limit for limit, _ in policy.fad_rows)
    real = rows[0]
    checks = {
        "real loops reach the best FAD band (upper CI below it)": real["fad_ci"][1] <= top_fad,
        "real loops get full quality points": real["graded"]["points"] == policy.quality_max,
        "noise, silence, collapse and copies get 0 points": all(
            r["graded"]["points"] == 0 for r in rows if not r["condition"].startswith(("real", "generator"))),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "calibration.json").write_text(json.dumps({"n_loops": policy.submission.n_loops, "preset": preset,
                                                          "rows": rows, "checks": checks}, indent=2))
    lines = [f"# HW2 calibration ({policy.submission.n_loops} loops per condition, data preset {preset})", "",
             "| condition | FAD [95 % CI] | IS ± std | graded points | usable |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['condition']} | {r['fad']:.2f} [{r['fad_ci'][0]:.2f}, {r['fad_ci'][1]:.2f}] | "
                     f"{r['is']:.2f} ± {r['is_std']:.2f} | {r['graded']['points']:g} | {r['graded']['usable']} |")
    lines += ["", "Checks:"] + [f"- [{'x' if ok else ' '}] {name}" for name, ok in checks.items()]
    (out_dir / "calibration.md").write_text("\n".join(lines) + "\n")
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
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
