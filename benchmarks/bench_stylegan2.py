"""StyleGAN2 + MelGAN loop generation: training speed, generation speed, and quality in a fixed CPU budget.

    python benchmarks/bench_stylegan2.py            # lecture preset, 20 min training budget
    python benchmarks/bench_stylegan2.py --quick    # tiny smoke run (fast preset, seconds)
    python benchmarks/bench_stylegan2.py --budget-min 5 --threads 1

Measured (ratios against baselines measured in the same run):
1. training steps/s of the StyleGAN2 and MelGAN presets vs the ``fast`` preset (CPU; and GPU when present);
2. loops generated per second including vocoding: MelGAN vs Griffin-Lim (32 iterations);
3. quality reached by the StyleGAN2 preset within ``--budget-min`` minutes of training: FAD / IS /
   NDB/K / JSD of its loops (vocoded by the shipped MelGAN if present, else Griffin-Lim) next to the
   metrics module's calibration rows (held-out real loops, white noise, one loop repeated).
Writes ``build/bench/stylegan2.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.data.config import COURSE_MEL  # noqa: E402
from course_lib.models import melgan as mg  # noqa: E402
from course_lib.models import stylegan2 as sg  # noqa: E402
from course_lib.train.gan import build_task, get_config, train_gan, BatchRandom  # noqa: E402
from course_lib.train import ddp  # noqa: E402


def steps_per_second(model: str, preset: str, device: torch.device, steps: int, data: torch.Tensor,
                     **over) -> float:
    """Training steps per second (after 2 warm-up steps) of a preset on ``device``."""
    cfg = get_config(model, preset, steps=steps + 2, progress=False, device=str(device), log_every=10**9,
                     adv_start=0, **over)
    task = build_task(cfg, device)
    info = ddp.DistInfo(device=device)
    batch_data = task.prepare(data[: cfg.batch_size]).to(device)
    t0 = None
    for step in range(steps + 2):
        if step == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        task.opt_d.zero_grad(set_to_none=True)
        task.d_step(task.G, task.D, batch_data, step, BatchRandom(0, step, "d", info, cfg.batch_size))
        task.opt_d.step()
        task.opt_g.zero_grad(set_to_none=True)
        task.g_step(task.G, task.D, batch_data, step, BatchRandom(0, step, "g", info, cfg.batch_size))
        task.opt_g.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def loops_per_second(G: sg.Generator, spec: sg.MelImageSpec, vocoder, n: int) -> float:
    t0 = time.perf_counter()
    audio = sg.generate_audio(G, spec, n, vocoder=vocoder, seed=0, batch_size=n)
    assert audio.shape == (n, spec.loop_samples)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--budget-min", type=float, default=None, help="StyleGAN2 training budget in minutes (default 20)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: COURSE_THREADS or all cores)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "stylegan2.json"))
    args = ap.parse_args(argv)
    from course_lib.train.device import set_threads

    set_threads(args.threads)
    torch.manual_seed(0)
    preset = "fast" if args.quick else "lecture"
    data_preset = "fast" if args.quick else "default"
    budget = args.budget_min if args.budget_min is not None else (0.1 if args.quick else 20.0)
    timing_steps = 2 if args.quick else 10
    from course_lib.data.datasets import LoopDataset

    train = LoopDataset(split="train", preset=data_preset, precompute_mel=False).audio
    held = torch.cat([LoopDataset(split=s, preset=data_preset, precompute_mel=False).audio for s in ("valid", "test")])
    results: dict = {"preset": preset, "data_preset": data_preset, "threads": torch.get_num_threads(),
                     "device": "cpu", "speed": {}, "generation": {}, "quality": {}}

    # 1. training speed (CPU, and GPU when present), ratio to the fast preset
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"{'model':<10}{'preset':<9}{'device':<7}{'steps/s':>9}{'x fast':>8}")
    for model in ("stylegan2", "melgan"):
        for dev in devices:
            base = steps_per_second(model, "fast", dev, timing_steps, train)
            rate = steps_per_second(model, preset, dev, timing_steps, train) if preset != "fast" else base
            results["speed"][f"{model}/{dev.type}"] = {"preset": preset, "steps_per_s": rate, "fast_steps_per_s": base,
                                                       "ratio_to_fast": rate / base}
            print(f"{model:<10}{preset:<9}{dev.type:<7}{rate:>9.2f}{rate / base:>8.3f}")

    # 2. loops per second including vocoding: MelGAN vs Griffin-Lim (baseline)
    cfg_sg = get_config("stylegan2", preset)
    G = build_task(cfg_sg, torch.device("cpu")).G.eval()
    spec = sg.MelImageSpec(mel=COURSE_MEL)
    voc_cfg = get_config("melgan", preset)
    vocoder = mg.MelGANGenerator(mg.MelGANConfig(**voc_cfg.arch)).eval()
    n_gen = 4 if args.quick else 16
    gl_rate = loops_per_second(G, spec, None, n_gen)
    mel_rate = loops_per_second(G, spec, vocoder, n_gen)
    results["generation"] = {"loops": n_gen, "griffin_lim_loops_per_s": gl_rate, "melgan_loops_per_s": mel_rate,
                             "melgan_speedup_vs_griffin_lim": mel_rate / gl_rate}
    print(f"\ngeneration incl. vocoding ({n_gen} loops): Griffin-Lim {gl_rate:.2f} loops/s, MelGAN {mel_rate:.2f} "
          f"loops/s ({mel_rate / gl_rate:.1f}x)")

    # 3. quality within a fixed training budget
    run = train_gan(get_config("stylegan2", preset, steps=10**7, max_seconds=budget * 60, progress=True,
                               log_every=50, data_preset=data_preset), data=train)
    try:
        vocoder, _ = mg.load_vocoder()
        voc_name = "shipped MelGAN"
    except FileNotFoundError:
        vocoder, voc_name = None, "Griffin-Lim"
    n_eval = min(64, held.shape[0]) if not args.quick else 16
    fake = sg.generate_audio(run.best_generator, run.spec, n_eval, vocoder=vocoder, seed=1)
    q = {"budget_min": budget, "steps": run.steps_done, "vocoder": voc_name, "n_generated": n_eval,
         "n_reference": int(held.shape[0])}
    try:
        from course_lib.metrics.calibration import calibration_conditions
        from course_lib.metrics.evaluate import build_reference, evaluate
        from course_lib.models.classifiers import load_loop_classifier

        clf = load_loop_classifier()
        half = held.shape[0] // 2
        ref = build_reference(held[:half], clf)
        rows = {"StyleGAN2 (" + voc_name + ")": fake}
        rows.update(calibration_conditions(held[half:2 * half], seed=0))
        print(f"\nquality after {run.steps_done} steps ({budget:g} min): reference = {half} held-out real loops")
        print(f"{'condition':<28}{'FAD':>9}{'IS':>8}{'NDB/K':>8}{'JSD':>8}")
        table = {}
        for name, audio in rows.items():
            r = evaluate(audio, ref, classifier=clf, is_splits=4)
            table[name] = {"fad": r.fad, "is": r.is_mean, "ndb_k": r.ndb_k, "jsd": r.jsd}
            print(f"{name:<28}{r.fad:>9.3f}{r.is_mean:>8.2f}{r.ndb_k:>8.2f}{r.jsd:>8.3f}")
        q["table"] = table
        real = table["real (disjoint split)"]["fad"]
        q["fad_ratio_to_real"] = table["StyleGAN2 (" + voc_name + ")"]["fad"] / max(real, 1e-9)
    except (FileNotFoundError, ImportError, ValueError) as exc:
        q["error"] = f"metrics unavailable: {exc}"
        print(q["error"])
    results["quality"] = q
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
