"""DDSP speed on this machine (Lesson 07): training step time, and synthesis against real time.

    python benchmarks/bench_ddsp.py            # lecture and full model sizes, 10 s of audio
    python benchmarks/bench_ddsp.py --quick    # tiny smoke run

Measured in one run, one torch thread: seconds per training step of the ``lecture`` and ``full`` presets
(8 crops of 0.5 s), and how many times faster than real time DDSP renders audio from given f0 and loudness
(decoder + harmonic + noise synthesis), with the pYIN feature extraction that ``resynthesize`` adds, next to the
spectral autoencoder's Griffin-Lim inversion (64 iterations) of the same length. Writes build/bench/ddsp.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from course_lib import DEFAULT_SR
from course_lib.models.ddsp import DDSP, DDSPConfig
from course_lib.models.ddsp_features import extract_features
from course_lib.train.ddsp import get_preset
from course_lib.models.spectral_ae import SpectralAutoencoder


def best_of(fn, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    seconds, repeats = (1.0, 1) if args.quick else (10.0, 3)
    sr, hop = DEFAULT_SR, 64
    result = {"machine": f"{platform.machine()}, 1 torch thread, torch {torch.__version__}", "audio_seconds": seconds}
    for name in ("lecture", "full"):
        p = get_preset(name)
        model = DDSP(DDSPConfig(hidden=p.hidden))
        opt = torch.optim.Adam(model.parameters(), lr=p.lr)
        crop = int(p.crop_seconds * sr)
        frames = crop // hop + 1
        audio = 0.3 * torch.randn(p.batch_size, crop)
        f0, ld = torch.full((p.batch_size, frames), 220.0), torch.full((p.batch_size, frames), -25.0)

        def step() -> None:
            loss = model.loss(audio, f0, ld)
            opt.zero_grad()
            loss.backward()
            opt.step()

        result[f"train_step_seconds_{name}"] = round(best_of(step, repeats), 3)
        result[f"train_seconds_{name}_preset"] = round(result[f"train_step_seconds_{name}"] * p.steps, 1)
        n = int(seconds * sr)
        fr = n // hop + 1
        f0_long, ld_long = torch.full((1, fr), 220.0), torch.full((1, fr), -25.0)
        model.eval()
        with torch.no_grad():
            t = best_of(lambda: model(f0_long, ld_long, n, seed=0), repeats)
        result[f"synthesis_x_realtime_{name}"] = round(seconds / t, 1)
    clip = 0.3 * torch.sin(2 * torch.pi * 220.0 * torch.arange(int(seconds * sr)) / sr).unsqueeze(0)
    t_feat = best_of(lambda: extract_features(clip, sr, hop), repeats)
    result["features_x_realtime"] = round(seconds / t_feat, 1)
    sae = SpectralAutoencoder().eval()
    t_gl = best_of(lambda: sae.reconstruct(clip, n_iter=64), repeats)
    result["spectral_ae_griffin_lim_x_realtime"] = round(seconds / t_gl, 1)
    out = Path("build/bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ddsp.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
