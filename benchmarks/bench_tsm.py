"""Speed of course_lib.tsm against librosa and pytsmod, timed in the same run (Lesson 02).

    .venv/bin/python benchmarks/bench_tsm.py            # 30 s at 22.05 kHz, stretch to 1.5x length
    .venv/bin/python benchmarks/bench_tsm.py --quick    # 3 s smoke run

Figures: real-time factor (seconds of input audio processed per second of wall time, "x real
time") of every method on one mono signal, the ratio to ``librosa.effects.time_stretch`` and to the
same method in ``pytsmod`` (installed by ``make bench``: the ``bench`` extra), and for batches of short
loops the time per loop batched against one at a time. Ours and pytsmod are timed interleaved
(ours, pytsmod, ours, ...) ``--repeats`` times; the table gives the median times and the median of
the per-pair ratios (and its minimum, the worst pair). Results go to ``build/bench/tsm.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import load_note, machine, paired_times  # noqa: E402

from course_lib.synth import drums  # noqa: E402
from course_lib.synth.additive import harmonic_tone  # noqa: E402
from course_lib.tsm import F0Track, estimate_f0, time_stretch  # noqa: E402

SR = 22_050
STRETCH = 1.5  # output 1.5x as long as the input (pytsmod's alpha = 1.5, our rate = 1 / 1.5)


def test_signal(seconds: float, sr: int = SR) -> torch.Tensor:
    """A melody of harmonic notes (0.25 s each) over a kick/hat pattern: mono ``(1, samples)``."""
    notes = int(round(seconds / 0.25))
    midi = torch.tensor([57, 60, 64, 67, 69, 67, 64, 60], dtype=torch.float32)
    f0 = 440.0 * 2 ** ((midi[torch.arange(notes) % 8] - 69) / 12)
    tones = harmonic_tone(f0, 0.25, sr, n_harmonics=8, rolloff=1.5)
    melody = tones.reshape(1, -1)
    kick = drums.kick(0.25, sr, seed=0)[0]
    hat = drums.hihat(0.05, sr, seed=1)[0]
    beat = torch.zeros_like(melody[0])
    step = int(0.25 * sr)
    for i in range(notes):
        v = kick if i % 2 == 0 else 0.4 * hat
        beat[i * step:i * step + v.shape[0]] += v[: max(0, beat.shape[0] - i * step)]
    x = 0.5 * melody + 0.3 * beat
    return (0.9 * x / x.abs().max()).to(torch.float32)


def timed(fn, repeats: int) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 s signal, one repeat (smoke run)")
    ap.add_argument("--no-batch", action="store_true", help="skip the batched-loops table")
    ap.add_argument("--seconds", type=float, default=None, help="signal length in seconds (default 30)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: like the single-threaded NumPy baselines)")
    args = ap.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 30.0)
    repeats = args.repeats or (1 if args.quick else 5)
    torch.set_num_threads(args.threads)
    rate = 1.0 / STRETCH

    x = test_signal(seconds)
    xn = x[0].numpy()
    duration = x.shape[-1] / SR
    # one f0 track for both TD-PSOLAs (pytsmod needs one; hop 20 ms as in its defaults)
    track = estimate_f0(x, SR, hop=441)
    track_np = track.f0[0].numpy().astype(np.float64)

    ours = {
        "ola": lambda: time_stretch(x, SR, rate, method="ola"),
        "wsola": lambda: time_stretch(x, SR, rate, method="wsola"),
        "tdpsola (f0 given)": lambda: time_stretch(x, SR, rate, method="tdpsola", track=track),
        "tdpsola (+ own f0)": lambda: time_stretch(x, SR, rate, method="tdpsola"),
        "phase_vocoder": lambda: time_stretch(x, SR, rate, method="phase_vocoder"),
        "phase_vocoder locked": lambda: time_stretch(x, SR, rate, method="phase_vocoder", phase_locking=True),
        "hptsm": lambda: time_stretch(x, SR, rate, method="hptsm"),
    }
    import librosa

    baseline = timed(lambda: librosa.effects.time_stretch(xn, rate=rate), repeats)
    try:
        import pytsmod

        xd = xn.astype(np.float64)
        theirs = {
            "ola": lambda: pytsmod.ola(xd, STRETCH),
            "wsola": lambda: pytsmod.wsola(xd, STRETCH),
            "tdpsola (f0 given)": lambda: pytsmod.tdpsola(xd, SR, track_np, alpha=STRETCH, p_hop_size=441,
                                                          p_win_size=1470),
            "phase_vocoder": lambda: pytsmod.phase_vocoder(xd, STRETCH),
            "phase_vocoder locked": lambda: pytsmod.phase_vocoder(xd, STRETCH, phase_lock=True),
            "hptsm": lambda: pytsmod.hptsm(xd, STRETCH),
        }
        pytsmod_note = f"pytsmod {getattr(pytsmod, '__version__', '?')}"
    except ImportError as exc:
        theirs = {}
        pytsmod_note = f"pytsmod not installed ({exc}); its columns are skipped"

    rows = []
    load_before = machine()["load_average"]
    print(f"{seconds:.0f} s mono at {SR} Hz, output {STRETCH}x as long, {torch.get_num_threads()} threads, "
          f"median of {repeats} (a run under 0.2 s is repeated within each timing); {pytsmod_note}; {load_note()}")
    print(f"librosa.effects.time_stretch: {duration / baseline:8.1f}x real time")
    print(f"{'method':<22}{'ours xRT':>10}{'pytsmod xRT':>13}{'ours/pytsmod':>14}{'worst pair':>11}{'ours/librosa':>14}")
    for name, fn in ours.items():
        if name in theirs:
            pair = paired_times(fn, theirs[name], repeats)
            t, t_ref = pair["ours_s"], pair["theirs_s"]
        else:
            pair, t_ref = None, None
            t = timed(fn, repeats)
        row = {"method": name, "seconds": t, "xrt": duration / t, "vs_librosa": baseline / t,
               "pytsmod_seconds": t_ref, "pytsmod_xrt": duration / t_ref if t_ref else None,
               "vs_pytsmod": pair["median_ratio"] if pair else None,
               "vs_pytsmod_ratio_of_medians": pair["ratio_of_medians"] if pair else None,
               "vs_pytsmod_worst_pair": pair["min_ratio"] if pair else None,
               "times": pair["ours_times"] if pair else None, "pytsmod_times": pair["theirs_times"] if pair else None}
        rows.append(row)
        ref = (f"{row['pytsmod_xrt']:13.1f}{row['vs_pytsmod']:14.2f}{row['vs_pytsmod_worst_pair']:11.2f}"
               if t_ref else f"{'-':>13}{'-':>14}{'-':>11}")
        print(f"{name:<22}{row['xrt']:10.1f}{ref}{row['vs_librosa']:14.2f}", flush=True)

    # many short loops: one batched call against a Python loop over the items
    n_loops = 0 if args.no_batch else 4 if args.quick else 32
    batch_rows = []
    if n_loops:
        loops = torch.stack([test_signal(2.0)[0].roll(int(i * 1103)) for i in range(n_loops)])
        print(f"\n{n_loops} loops of 2 s: time per loop, batched vs one at a time")
        print(f"{'method':<22}{'batched ms':>12}{'one-by-one ms':>15}{'speed-up':>10}")
        for name in ("ola", "wsola", "tdpsola", "phase_vocoder", "hptsm"):
            t_batch = timed(lambda: time_stretch(loops, SR, rate, method=name), repeats) / n_loops
            t_single = timed(lambda: [time_stretch(l, SR, rate, method=name) for l in loops], repeats) / n_loops
            batch_rows.append({"method": name, "batched_ms": 1e3 * t_batch, "single_ms": 1e3 * t_single,
                               "speedup": t_single / t_batch})
            print(f"{name:<22}{1e3 * t_batch:12.2f}{1e3 * t_single:15.2f}{t_single / t_batch:10.2f}")

    out = ROOT / "build" / "bench" / "tsm.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "signal_seconds": seconds, "sr": SR, "stretch": STRETCH, "threads": torch.get_num_threads(),
        "repeats": repeats, "librosa_seconds": baseline, "librosa_xrt": duration / baseline,
        "pytsmod": pytsmod_note, "load_average_before": load_before, "machine": machine(), "methods": rows, "batched_loops": {"n_loops": n_loops, "rows": batch_rows},
    }, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
