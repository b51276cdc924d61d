"""Benchmark: full evaluation of a HW2-sized submission, and the Fréchet step against scipy.

1. Wall time to evaluate N generated 2 s loops (default 1,000) against cached reference
   statistics (``.npz``) on the CPU: embedding + FAD, IS, NDB/K, JSD, PRDC. Goal: < 30 s on 2 cores.
2. The Fréchet distance alone on 512-d and 2048-d embeddings: ours (two symmetric eigen-
   decompositions in float64) against the classic ``scipy.linalg.sqrtm(S1 @ S2)`` baseline, measured
   in the same run, with the relative difference of the two results.

    .venv/bin/python benchmarks/bench_metrics.py [--quick]

Writes ``build/bench/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_lib.metrics.evaluate import build_reference, evaluate  # noqa: E402
from course_lib.metrics.frechet import frechet_distance, gaussian_stats  # noqa: E402


def _classifier():
    from course_lib.models.classifiers import (LOOP_CLASSIFIER_PATH, ShortChunkCNN, ShortChunkConfig,
                                               load_loop_classifier)
    if LOOP_CLASSIFIER_PATH.is_file():
        return load_loop_classifier(), "shipped loop classifier"
    return ShortChunkCNN(ShortChunkConfig(n_classes=11)).eval(), "untrained ShortChunkCNN (no shipped checkpoint)"


def _loops(n: int, seed: int) -> torch.Tensor:
    from course_lib.data.synthetic_loops import LOOP_CLASSES, generate_loops
    per_class = -(-n // len(LOOP_CLASSES))
    audio, _, _ = generate_loops(per_class, seed=seed)
    return audio[torch.randperm(audio.shape[0], generator=torch.Generator().manual_seed(seed))[:n]]


def bench_evaluation(n_gen: int, n_ref: int, out_dir: Path) -> dict:
    clf, clf_name = _classifier()
    t = time.perf_counter()
    real, gen = _loops(n_ref, seed=11), _loops(n_gen, seed=12)
    t_data = time.perf_counter() - t
    ref_path = out_dir / "reference_loops.npz"
    t = time.perf_counter()
    build_reference(real, clf).save(ref_path)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    res = evaluate(gen, ref_path, classifier=clf, device="cpu")
    t_eval = time.perf_counter() - t
    # embedding alone, for the split of the time
    from course_lib.metrics.evaluate import _embed_and_proba
    t = time.perf_counter()
    _embed_and_proba(gen, clf, 16_000, 64, torch.device("cpu"))
    t_embed = time.perf_counter() - t
    print(f"\n== evaluation of {n_gen} generated 2 s loops vs cached reference ({n_ref} loops), {clf_name}")
    print(f"{'stage':<40}{'seconds':>10}")
    for name, v in [("(data generation, not timed in eval)", t_data), ("reference embedding + .npz (once)", t_ref),
                    ("full evaluation (load .npz, embed, metrics)", t_eval), ("  of which embedding", t_embed),
                    ("  of which metrics + loading", t_eval - t_embed)]:
        print(f"{name:<40}{v:>10.2f}")
    print(f"goal < 30 s: {'met' if t_eval < 30 else 'NOT met'} ({t_eval / 30:.2f} of the budget)")
    print(res)
    return {"n_generated": n_gen, "n_reference": n_ref, "classifier": clf_name, "seconds_eval": t_eval,
            "seconds_embed": t_embed, "seconds_metrics": t_eval - t_embed, "seconds_reference": t_ref,
            "budget_fraction": t_eval / 30.0, "metrics": {k: v for k, v in res.as_dict().items() if k != "settings"}}


def _scipy_frechet(mu1, s1, mu2, s2) -> float:
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def bench_frechet(dims: list[int], repeats: int) -> list[dict]:
    rows = []
    print(f"\n== Fréchet distance alone (float64), best of {repeats}")
    print(f"{'dim':>6}{'ours (s)':>12}{'scipy sqrtm (s)':>18}{'speed-up':>10}{'rel. diff':>12}")
    for d in dims:
        rng = np.random.default_rng(d)
        mix = rng.standard_normal((d, d)) / np.sqrt(d)
        a = gaussian_stats(rng.standard_normal((2 * d + 100, d)) @ mix)
        b = gaussian_stats(rng.standard_normal((2 * d + 100, d)) @ mix * 1.1 + 0.05)
        t_ours, t_ref = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            ours = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            ref = _scipy_frechet(a.mu, a.sigma, b.mu, b.sigma)
            t_ref.append(time.perf_counter() - t)
        row = {"dim": d, "seconds_ours": min(t_ours), "seconds_scipy": min(t_ref),
               "speedup": min(t_ref) / min(t_ours), "value_ours": ours, "value_scipy": ref,
               "rel_diff": abs(ours - ref) / abs(ref)}
        rows.append(row)
        print(f"{d:>6}{row['seconds_ours']:>12.3f}{row['seconds_scipy']:>18.3f}{row['speedup']:>9.1f}x{row['rel_diff']:>12.1e}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (100 loops, 64/256-d)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out_dir = ROOT / "build" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    n_gen, n_ref = (100, 100) if args.quick else (1000, 1000)
    dims, repeats = ([64, 256], 1) if args.quick else ([512, 2048], 2)
    result = {"quick": args.quick, "threads": torch.get_num_threads(),
              "evaluation": bench_evaluation(n_gen, n_ref, out_dir), "frechet": bench_frechet(dims, repeats)}
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    print(f"\nwrote {out_dir / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
