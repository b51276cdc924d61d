"""Benchmark of course_lib.data: generation throughput of the synthetic notes and loops (CPU).

    python benchmarks/bench_data.py           # the default presets (the HW2 loop set: 11 x 100 loops)
    python benchmarks/bench_data.py --quick   # tiny smoke run

Measured in the same run, with ratios against a baseline:

* loops: the batched generator (``generate_loops``: kit hits rendered once, pitched notes in
  batches) vs rendering the same MIDI loops one by one with ``course_lib.synth.midi.render_midi``
  (the general MIDI renderer, a voice call per note group) on a subset;
* notes: ``generate_notes`` (all notes of an instrument in one batch) vs ``render_note`` one note at
  a time on a subset;
* quality of the loop set: near-duplicate rate and the logistic-regression baseline of the data card.

Wall time and process CPU time are both reported (the CPU time divided by the core count is what
the wall time would be on an idle machine). Writes ``build/bench/data.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.data.card import baseline_accuracy  # noqa: E402
from course_lib.data.config import COURSE_MEL, derive_seed  # noqa: E402
from course_lib.data.duplicates import duplicate_stats  # noqa: E402
from course_lib.data.patterns import loop_midi  # noqa: E402
from course_lib.data.presets import get_preset  # noqa: E402
from course_lib.data.synthetic_loops import LOOP_CLASSES, generate_loops, loop_samples  # noqa: E402
from course_lib.data.synthetic_notes import generate_notes, instrument_pitches, make_instruments, render_note  # noqa: E402
from course_lib.spectral import log_mel  # noqa: E402


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--skip-notes", action="store_true")
    args = ap.parse_args()
    cores = torch.get_num_threads()
    preset = get_preset("fast" if args.quick else "lecture")
    n_loops = 3 if args.quick else preset.loops_per_class
    res: dict = {"preset": preset.name, "torch_threads": cores, "cpu_count": os.cpu_count(),
                 "load_avg_start": os.getloadavg()[0]}

    # ---- loops
    (audio, labels, names), w, c = timed(lambda: generate_loops(n_loops, seed=0))
    n = audio.shape[0]
    res["loops"] = {"n": n, "wall_s": w, "cpu_s": c, "loops_per_s_wall": n / w, "loops_per_s_cpu": n * cores / c,
                    "audio_s_per_wall_s": n * 2.0 / w}
    from course_lib.synth.midi import render_midi

    k = 1 if args.quick else 3
    subset = [loop_midi(cl, derive_seed(0, cl, i))[0] for cl in LOOP_CLASSES for i in range(k)]
    with warnings.catch_warnings():  # render_midi's kit has no rim / shaker voices: it skips them, and says so
        warnings.simplefilter("ignore")
        _, bw, bc = timed(lambda: [render_midi(pm, 16000, backend="dsp") for pm in subset])
    res["loops"]["baseline_render_midi"] = {"n": len(subset), "wall_s": bw, "cpu_s": bc,
                                            "loops_per_s_wall": len(subset) / bw}
    res["loops"]["speedup_vs_render_midi"] = (n / w) / (len(subset) / bw)

    mels = torch.cat([log_mel(audio[i:i + 128], COURSE_MEL) for i in range(0, n, 128)])
    res["loops"]["quality"] = {"duplicates": duplicate_stats(audio), "baseline": baseline_accuracy(mels, labels),
                               "samples_per_loop": loop_samples(16000)}

    # ---- notes
    if not args.skip_notes:
        (naudio, examples), w, c = timed(lambda: generate_notes(preset, seed=0))
        m = naudio.shape[0]
        res["notes"] = {"n": m, "note_seconds": preset.note_seconds, "wall_s": w, "cpu_s": c,
                        "notes_per_s_wall": m / w, "notes_per_s_cpu": m * cores / c,
                        "audio_s_per_wall_s": m * preset.note_seconds / w}
        insts = make_instruments(preset, 0)
        one_by_one = [(inst, p, v) for inst in insts for p in instrument_pitches(inst, preset.pitch_step)[:1]
                      for v in preset.velocities[:2]]
        _, bw, bc = timed(lambda: [render_note(i, p, v, note_length=preset.note_seconds) for i, p, v in one_by_one])
        res["notes"]["baseline_one_by_one"] = {"n": len(one_by_one), "wall_s": bw, "cpu_s": bc,
                                               "notes_per_s_wall": len(one_by_one) / bw}
        res["notes"]["speedup_vs_one_by_one"] = (m / w) / (len(one_by_one) / bw)
    res["load_avg_end"] = os.getloadavg()[0]

    lp = res["loops"]
    print(f"\ncourse_lib.data generation, preset {preset.name!r}, {cores} torch threads, "
          f"load average {res['load_avg_start']:.1f} -> {res['load_avg_end']:.1f}")
    print(f"{'what':38s} {'n':>6s} {'wall s':>8s} {'cpu s':>8s} {'per s (wall)':>13s} {'ratio':>8s}")
    print(f"{'loops: generate_loops':38s} {lp['n']:6d} {lp['wall_s']:8.1f} {lp['cpu_s']:8.1f} "
          f"{lp['loops_per_s_wall']:13.2f} {lp['speedup_vs_render_midi']:7.1f}x")
    b = lp["baseline_render_midi"]
    print(f"{'loops: render_midi one by one (base)':38s} {b['n']:6d} {b['wall_s']:8.1f} {b['cpu_s']:8.1f} "
          f"{b['loops_per_s_wall']:13.2f} {1.0:7.1f}x")
    if "notes" in res:
        nt = res["notes"]
        print(f"{'notes: generate_notes':38s} {nt['n']:6d} {nt['wall_s']:8.1f} {nt['cpu_s']:8.1f} "
              f"{nt['notes_per_s_wall']:13.2f} {nt['speedup_vs_one_by_one']:7.1f}x")
        b = nt["baseline_one_by_one"]
        print(f"{'notes: render_note one by one (base)':38s} {b['n']:6d} {b['wall_s']:8.1f} {b['cpu_s']:8.1f} "
              f"{b['notes_per_s_wall']:13.2f} {1.0:7.1f}x")
    q = lp["quality"]
    print(f"loop set quality: near-duplicates {100 * q['duplicates']['item_rate']:.2f} % of loops "
          f"(the grader's definition), nearest earlier loop median |NCC| {q['duplicates']['nn_median_ncc']:.2f}, "
          f"distance {q['duplicates']['nn_median_distance']:.3f} nats; "
          f"mel-stats logistic regression {100 * q['baseline']['accuracy']:.1f} % "
          f"(chance {100 * q['baseline']['chance']:.1f} %)")
    out = ROOT / "build" / "bench" / "data.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
