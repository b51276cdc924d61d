"""Notes per second: GANSynth (one forward pass + spectral inversion) vs the WaveNet decoder (one sample at a time).

The lecture quotes GANSynth as ~54,000x faster than WaveNet at generating NSynth notes. Here both
models are the course's own, untrained (speed does not depend on the weights), generating the
same batch of notes of the same length on the same device in the same run:

* GANSynth ``lecture`` preset (IF +H, 256 x 64 images for 0.5 s notes: the shipped checkpoints'
  architecture), once more with the pitch clock of the shipped checkpoints (a ratio in the same run) and, for
  scale, the
  paper-sized ``full`` generator (+H, 1024 x 128 images for 4 s notes; reported per note);
* WaveNet: Lesson 03's shipped pitch-conditioned decoder (``course_lib/assets/wavenet_lecture_pitch.pt``;
  the default ``WaveNetConfig`` if it is missing) with fast (queued) generation, the same note
  length and batch.

Usage: ``python benchmarks/bench_gansynth.py [--quick] [--device cpu|cuda] [--batch 16]``.
Writes ``build/bench/gansynth.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.models.gansynth import GANSynth  # noqa: E402
from course_lib.train.gansynth import get_preset  # noqa: E402
from course_lib.models.wavenet import WaveNet, WaveNetConfig, generate, load_wavenet  # noqa: E402
from course_lib.train.device import pick_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, repeats: int, device: torch.device, warmup=None) -> float:
    """Median wall time of ``fn()`` in seconds (after one warm-up call of ``warmup or fn``)."""
    (warmup or fn)()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


WAVENET_ASSET = ROOT / "course_lib" / "assets" / "wavenet_lecture_pitch.pt"


def bench_gansynth(preset: str, batch: int, device: torch.device, repeats: int, high_res: bool = True,
                   pitch_clock: bool = False) -> dict:
    p = get_preset(preset)
    model = GANSynth(p.model_config("if", high_res=high_res, pitch_clock=pitch_clock), seed=0).to(device).eval()
    midi = [24 + (i * 7) % 61 for i in range(batch)]
    z = model.sample_latents(batch, seed=0, device=device)
    t_img = _time(lambda: model.generate_images(midi, z=z), repeats, device)
    t_all = _time(lambda: model.generate(midi, z=z), repeats, device)
    spec = model.spec
    return {"model": f"GANSynth {preset}{' +H' if high_res else ''}{' clock' if pitch_clock else ''}", "image": f"{spec.n_freq}x{spec.n_frames}",
            "note_s": spec.samples / spec.sr, "batch": batch, "seconds_images": t_img, "seconds": t_all,
            "notes_per_s": batch / t_all, "audio_s_per_s": batch * spec.samples / spec.sr / t_all}


def bench_wavenet(samples: int, batch: int, device: torch.device, repeats: int, sr: int,
                  measured_samples: int | None = None) -> dict:
    """Time the WaveNet for a note of ``samples``; with ``measured_samples`` only that many are generated
    and the time is scaled linearly (fast generation costs the same for every sample)."""
    if WAVENET_ASSET.is_file():  # Lesson 03's shipped pitch-conditioned decoder
        model = load_wavenet(WAVENET_ASSET, device=device)
        name = "WaveNet (Lesson 03 ckpt)"
    else:
        model, name = WaveNet(WaveNetConfig(n_pitches=128), device=device).eval(), "WaveNet (default cfg)"
    cfg = model.config
    midi = torch.tensor([24 + (i * 7) % 61 for i in range(batch)], device=device)
    n = min(samples, measured_samples or samples)
    t = _time(lambda: generate(model, n, pitch=midi, seed=0, method="fast"), repeats, device,
              warmup=lambda: generate(model, 32, pitch=midi, seed=0, method="fast"))
    t *= samples / n
    return {"model": name + (" *" if n < samples else ""), "layers": len(cfg.layer_dilations),
            "receptive_field": cfg.receptive_field, "note_s": samples / sr, "batch": batch, "seconds": t,
            "notes_per_s": batch / t, "audio_s_per_s": batch * samples / sr / t, "measured_samples": n,
            "ms_per_sample_step": 1e3 * t / samples,
            "extrapolated": n < samples}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (fast preset, few repeats)")
    ap.add_argument("--device", default=None, help="cpu / cuda (default: best available)")
    ap.add_argument("--batch", type=int, default=None, help="notes per call (default 16; quick: 4)")
    ap.add_argument("--wavenet-samples", type=int, default=2048,
                    help="WaveNet samples actually generated, scaled linearly to the note (0 = the whole note)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "gansynth.json"))
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch or (4 if args.quick else 16)
    repeats = 1 if args.quick else 3
    preset = "fast" if args.quick else "lecture"

    rows = [bench_gansynth(preset, batch, device, repeats)]
    # the shipped checkpoints' configuration: the pitch clock is added back before inversion (Lesson 04)
    rows.append(bench_gansynth(preset, batch, device, repeats, pitch_clock=True))
    if not args.quick:
        rows.append(bench_gansynth("full", max(1, batch // 4), device, 1))
    gs = rows[0]
    sr = get_preset(preset).spec().sr
    samples = int(round(gs["note_s"] * sr))  # the GANSynth row's note length
    # same note length and batch as the GANSynth row (WaveNet: --wavenet-samples timed, scaled to the note)
    wn = bench_wavenet(samples, batch, device, 1, sr, measured_samples=256 if args.quick else (args.wavenet_samples or None))
    rows.append(wn)
    ratio = gs["notes_per_s"] / wn["notes_per_s"]

    print(f"device: {device} ({torch.get_num_threads()} threads), batch {batch}, note {samples / sr:.3f} s at {sr} Hz")
    print(f"{'model':<28} {'note (s)':>8} {'batch':>5} {'time (s)':>10} {'notes/s':>10} {'audio s/s':>10}")
    for r in rows:
        print(f"{r['model']:<28} {r['note_s']:>8.3f} {r['batch']:>5d} {r['seconds']:>10.4f} "
              f"{r['notes_per_s']:>10.2f} {r['audio_s_per_s']:>10.2f}")
    if wn["extrapolated"]:
        print(f"* WaveNet timed on {wn['measured_samples']} samples and scaled linearly to the note length")
    print(f"GANSynth / WaveNet speed-up (same note length, batch, device): {ratio:,.0f}x  (lecture: ~54,000x)")
    clock_cost = rows[1]["seconds"] / gs["seconds"]
    print(f"GANSynth with the pitch clock / without (same run): {clock_cost:.2f}x the time per batch")

    result = {"device": str(device), "threads": torch.get_num_threads(), "quick": args.quick, "batch": batch,
              "rows": rows, "speedup_gansynth_over_wavenet": ratio, "pitch_clock_time_ratio": clock_cost,
              "paper_speedup": 54_000}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
