"""WaveNet generation speed on this machine: naive vs fast (queued) generation, samples per second.

    python benchmarks/bench_wavenet.py            # lecture model (RF 511) and an RF-1,024 model, batch 1 and 16
    python benchmarks/bench_wavenet.py --quick    # tiny smoke run

Models (random weights, seeded; speed does not depend on training): the lecture preset (2 cycles
of dilations 1..128, receptive field 511) and the same width with one cycle of dilations 1..512
(the WaveNet paper's block: receptive field 1,024). Every figure is the median of ``--repeats``
timed runs after a warm-up.
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

import statistics
import sys
from dataclasses import replace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import load_note, machine  # noqa: E402

from course_lib import DEFAULT_SR
from course_lib.models.wavenet import WaveNet, count_parameters, generate_tokens
from course_lib.models.wavenet_presets import wavenet_preset

NSYNTH_CPU_ANCHOR = 18.0  # samples/s, the original NSynth WaveNet on a CPU (lecture slide)


def samples_per_second(model: WaveNet, method: str, batch: int, n: int, repeats: int, threads: int = 1) -> float:
    """Median over ``repeats`` of generated samples per second per clip (wall clock), after a warm-up."""
    pitch = torch.full((batch,), 60) if model.config.n_pitches else None
    prime = torch.full((batch, model.receptive_field), model.config.n_classes // 2)  # steady state for naive
    generate_tokens(model, 4, batch=batch, pitch=pitch, method=method, prime=prime if method == "naive" else None,
                    threads=threads)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate_tokens(model, n, batch=batch, pitch=pitch, method=method, prime=prime if method == "naive" else None,
                        seed=0, threads=threads)
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model and few samples (smoke run)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1 is fastest for these tiny per-sample matmuls)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per figure (median reported)")
    ap.add_argument("--out", default="build/bench/wavenet.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    preset = "fast" if args.quick else "lecture"
    torch.manual_seed(0)
    base = wavenet_preset(preset, n_pitches=128)
    configs = {"lecture (2 x 1..128)" if not args.quick else "fast preset": base}
    # the shipped Lesson 03 recipe: the same network with a pitch excitation of 4 harmonics (a 1x1 projection of 8
    # channels more per gate and sample); compared with the row above in the same run
    configs[("lecture" if not args.quick else "fast") + " + pitch excitation"] = replace(
        base, pitch_sigma=1.0, excitation_harmonics=4)
    if not args.quick:
        configs["lecture width, 1 x 1..512"] = replace(base, layers_per_cycle=10, cycles=1)
    n_fast, n_naive = (200, 20) if args.quick else (2000, 100)
    repeats = args.repeats or (1 if args.quick else 3)
    rows = []
    for label, cfg in configs.items():
        torch.manual_seed(0)
        model = WaveNet(cfg).eval()
        for batch in (1, 16):
            naive = samples_per_second(model, "naive", batch, n_naive, repeats, args.threads)
            fast = samples_per_second(model, "fast", batch, n_fast, repeats, args.threads)
            rows.append({"model": label, "receptive_field": model.receptive_field,
                         "layers": len(cfg.layer_dilations), "parameters": count_parameters(model),
                         "batch": batch, "naive_samples_per_s": naive, "fast_samples_per_s": fast,
                         "speedup_fast_over_naive": fast / naive,
                         "fast_over_nsynth_anchor": fast / NSYNTH_CPU_ANCHOR,
                         "seconds_per_second_of_audio_fast": DEFAULT_SR / fast,
                         "seconds_per_second_of_audio_naive": DEFAULT_SR / naive,
                         "clip_seconds_per_wall_second_fast": batch * fast / DEFAULT_SR})
            print(f"{label} RF {model.receptive_field} batch {batch}: naive {naive:.1f}, fast {fast:.1f} samples/s, "
                  f"{fast / naive:.1f}x", flush=True)
    print(f"WaveNets, threads={args.threads}, median of {repeats}; {load_note()}")
    print(f"{'model':<28}{'RF':>6} {'batch':>5} {'naive smp/s':>12} {'fast smp/s':>11} {'fast/naive':>10} "
          f"{'s per 1 s audio':>16} {'fast/NSynth-anchor':>19}")
    for r in rows:
        print(f"{r['model']:<28}{r['receptive_field']:>6} {r['batch']:>5} {r['naive_samples_per_s']:>12.1f} "
              f"{r['fast_samples_per_s']:>11.1f} {r['speedup_fast_over_naive']:>10.1f} "
              f"{r['seconds_per_second_of_audio_fast']:>16.2f} {r['fast_over_nsynth_anchor']:>19.1f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    goal = rows[0]["seconds_per_second_of_audio_fast"] < 10.0
    print(f"goal (1 s of {DEFAULT_SR} Hz audio in < 10 s at batch 1, lecture model): {'met' if goal else 'NOT met'}")
    rf1024 = [r for r in rows if r["receptive_field"] == 1024 and r["batch"] == 1]
    if rf1024:
        ok = rf1024[0]["speedup_fast_over_naive"] >= 50
        print(f"goal (fast >= 50x naive at receptive field 1,024, batch 1): {'met' if ok else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"topic": "wavenet", "preset": preset, "quick": args.quick, "threads": args.threads,
                               "repeats": repeats, "receptive_field": rows[0]["receptive_field"],
                               "parameters": rows[0]["parameters"], "layers": rows[0]["layers"],
                               "nsynth_cpu_anchor_samples_per_s": NSYNTH_CPU_ANCHOR, "goal_met": goal,
                               "load_average_1min": load, "cpu_count": os.cpu_count(),
                               "machine": platform.processor() or platform.machine(), "machine_info": machine(),
                               "torch": torch.__version__, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
