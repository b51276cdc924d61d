"""WaveNet generation speed on this machine: naive vs fast (queued) generation, samples per second.

    python benchmarks/bench_wavenet.py            # lecture model, batch 1 and 16
    python benchmarks/bench_wavenet.py --quick    # tiny smoke run

The baseline is naive generation (the whole network re-run over one receptive field per sample),
measured in the same run; the lecture's anchor is ~18 samples/s for the original NSynth WaveNet
on a CPU. The goal: the lecture model generates one second of 16 kHz audio in under 10 s.
Writes build/bench/wavenet.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from course_lib import DEFAULT_SR
from course_lib.models.wavenet import WaveNet, count_parameters, generate_tokens
from course_lib.models.wavenet_presets import wavenet_preset

NSYNTH_CPU_ANCHOR = 18.0  # samples/s, the original NSynth WaveNet on a CPU (lecture slide)


def samples_per_second(model: WaveNet, method: str, batch: int, n: int, repeats: int, threads: int = 1) -> float:
    """Best-of-``repeats`` generated samples per second per clip (wall clock), after a short warm-up."""
    pitch = torch.full((batch,), 60) if model.config.n_pitches else None
    prime = torch.full((batch, model.receptive_field), model.config.n_classes // 2)  # steady state for naive
    generate_tokens(model, 4, batch=batch, pitch=pitch, method=method, prime=prime if method == "naive" else None,
                    threads=threads)
    best = float("inf")
    for _ in range(repeats):
        if method == "naive":
            t0 = time.perf_counter()
            generate_tokens(model, n, batch=batch, pitch=pitch, method=method, prime=prime, seed=0, threads=threads)
            dt = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            generate_tokens(model, n, batch=batch, pitch=pitch, method=method, seed=0, threads=threads)
            dt = time.perf_counter() - t0
        best = min(best, dt)
    return n / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model and few samples (smoke run)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1 is fastest for these tiny per-sample matmuls)")
    ap.add_argument("--out", default="build/bench/wavenet.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    preset = "fast" if args.quick else "lecture"
    torch.manual_seed(0)
    model = WaveNet(wavenet_preset(preset, n_pitches=128)).eval()
    n_fast, n_naive, repeats = (200, 20, 1) if args.quick else (2000, 100, 2)
    rows = []
    for batch in (1, 16):
        naive = samples_per_second(model, "naive", batch, n_naive, repeats, args.threads)
        fast = samples_per_second(model, "fast", batch, n_fast, repeats, args.threads)
        rows.append({"batch": batch, "naive_samples_per_s": naive, "fast_samples_per_s": fast,
                     "speedup_fast_over_naive": fast / naive,
                     "fast_over_nsynth_anchor": fast / NSYNTH_CPU_ANCHOR,
                     "seconds_per_second_of_audio_fast": DEFAULT_SR / fast,
                     "seconds_per_second_of_audio_naive": DEFAULT_SR / naive,
                     "clip_seconds_per_wall_second_fast": batch * fast / DEFAULT_SR})
    print(f"WaveNet preset={preset}: {len(model.config.layer_dilations)} layers, receptive field "
          f"{model.receptive_field} samples, {count_parameters(model) / 1e3:.0f} k parameters, threads={args.threads}")
    print(f"{'batch':>5} {'naive smp/s':>12} {'fast smp/s':>11} {'fast/naive':>10} {'s per 1 s audio':>16} "
          f"{'fast/NSynth-anchor':>19}")
    for r in rows:
        print(f"{r['batch']:>5} {r['naive_samples_per_s']:>12.1f} {r['fast_samples_per_s']:>11.1f} "
              f"{r['speedup_fast_over_naive']:>10.1f} {r['seconds_per_second_of_audio_fast']:>16.2f} "
              f"{r['fast_over_nsynth_anchor']:>19.1f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU cores: {os.cpu_count()}, 1-min load average: {load:.1f} (timings scale with how busy the machine is)")
    goal = rows[0]["seconds_per_second_of_audio_fast"] < 10.0
    print(f"goal (1 s of {DEFAULT_SR} Hz audio in < 10 s at batch 1): {'met' if goal else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"topic": "wavenet", "preset": preset, "quick": args.quick, "threads": args.threads,
                               "receptive_field": model.receptive_field, "parameters": count_parameters(model),
                               "layers": len(model.config.layer_dilations), "nsynth_cpu_anchor_samples_per_s":
                               NSYNTH_CPU_ANCHOR, "goal_met": goal, "load_average_1min": load, "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
                               "torch": torch.__version__, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
