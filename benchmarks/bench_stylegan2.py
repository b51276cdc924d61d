"""StyleGAN2 + MelGAN loop generation: training speed, generation speed, and quality versus training time.

    python benchmarks/bench_stylegan2.py            # lecture preset, 30 min of training measured at 5/10/20/30
    python benchmarks/bench_stylegan2.py --quick    # tiny smoke run (fast preset, seconds)
    python benchmarks/bench_stylegan2.py --curve-min 5,10 --threads 1

Measured (ratios against baselines measured in the same run):
1. training steps/s of the StyleGAN2 and MelGAN presets vs the ``fast`` preset (CPU; and GPU when present), and
   of the StyleGAN2 preset without its variety floor and with the projected discriminator (``d_encoder="shipped"``,
   alone and with the residual one) against the preset itself;
2. loops generated per second including vocoding: MelGAN vs Griffin-Lim (32 iterations);
3. quality versus compute: one lecture-preset run measured after 5, 10, 20 and 30 minutes of training
   (``--curve-min``): FAD / IS / NDB/K of 200 loops made and scored as HW2 grades them
   (:func:`course_lib.hw2.generate_loops`, the grader's reference statistics).
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
from course_lib.models.loop_encoder import ENCODER_ASSET  # noqa: E402
from course_lib.train.gan import build_task, get_config, train_gan, BatchRandom  # noqa: E402
from course_lib.train import ddp  # noqa: E402


def steps_per_second(model: str, preset: str, device: torch.device, steps: int, data: torch.Tensor,
                     labels: torch.Tensor, **over) -> float:
    """Training steps per second (after 2 warm-up steps) of a preset on ``device`` (``labels`` ``(N,)``
    are used by a class-conditional preset)."""
    cfg = get_config(model, preset, steps=steps + 2, progress=False, device=str(device), log_every=10**9,
                     adv_start=0, **over)
    task = build_task(cfg, device)
    info = ddp.DistInfo(device=device)
    batch_data = task.prepare(data[: cfg.batch_size]).to(device)
    if model == "stylegan2" and task.conditional:
        task.set_labels(labels)
        task.set_real_variety(task.prepare(data).to(device))  # the variety floor's real distances (if on)
        batch_data = (batch_data, task.class_labels[: cfg.batch_size])
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
    ap.add_argument("--curve-min", default=None,
                    help="comma-separated training minutes at which to measure quality (default 5,10,20,30)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: COURSE_THREADS or all cores)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "stylegan2.json"))
    args = ap.parse_args(argv)
    from course_lib.train.device import set_threads

    set_threads(args.threads)
    torch.manual_seed(0)
    preset = "fast" if args.quick else "lecture"
    data_preset = "fast" if args.quick else "lecture"
    timing_steps = 2 if args.quick else 10
    from course_lib.data.datasets import LoopDataset

    train_set = LoopDataset(split="train", preset=data_preset, precompute_mel=False)
    train, train_labels = train_set.audio, train_set.labels
    results: dict = {"preset": preset, "data_preset": data_preset, "threads": torch.get_num_threads(),
                     "device": "cpu", "speed": {}, "generation": {}, "quality": {}}

    # 1. training speed (CPU, and GPU when present), ratio to the fast preset
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"{'model':<10}{'preset':<9}{'device':<7}{'steps/s':>9}{'x fast':>8}")
    for model in ("stylegan2", "melgan"):
        for dev in devices:
            base = steps_per_second(model, "fast", dev, timing_steps, train, train_labels)
            rate = steps_per_second(model, preset, dev, timing_steps, train, train_labels) if preset != "fast" else base
            results["speed"][f"{model}/{dev.type}"] = {"preset": preset, "steps_per_s": rate, "fast_steps_per_s": base,
                                                       "ratio_to_fast": rate / base}
            print(f"{model:<10}{preset:<9}{dev.type:<7}{rate:>9.2f}{rate / base:>8.3f}")
            if model == "stylegan2":  # what the variety floor costs; the projected discriminator's cost, same preset
                alternatives = [("without the variety floor", dict(variety_floor=0.0))]
                if ENCODER_ASSET.is_file():
                    alternatives += [("projected", dict(d_encoder="shipped")),
                                     ("projected+residual", dict(d_encoder="shipped", d_residual=True))]
                for name, over in alternatives:
                    alt = steps_per_second(model, preset, dev, timing_steps, train, train_labels, **over)
                    results["speed"][f"{model}/{dev.type}/{name}"] = {"preset": preset, "override": over,
                                                                      "steps_per_s": alt, "ratio_to_preset": alt / rate}
                    print(f"  {name:<26}{alt:>9.2f} steps/s, {alt / rate:.3f} x the preset's rate")

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

    # 3. what more compute buys: one lecture-preset run, stopped and measured after each budget mark
    marks = [float(m) for m in args.curve_min.split(",")] if args.curve_min else ([0.05, 0.1] if args.quick else
                                                                                  [5.0, 10.0, 20.0, 30.0])
    run_dir = ROOT / "build" / "bench" / "stylegan2_curve"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    sys.path.insert(0, str(ROOT / "tools"))
    from loop_model_card import score  # noqa: E402  (the card's measurement: graded like HW2)
    from course_lib.hw2 import generate_loops
    from course_lib.metrics.evaluate import ReferenceSet
    from course_lib.models.classifiers import load_loop_classifier
    from grading.reference import REFERENCE_FILE

    from grading.policy import load_policy

    clf, reference = load_loop_classifier(device="cpu"), ReferenceSet.load(REFERENCE_FILE)
    policy_seed = load_policy().generation.seed
    n_eval = 16 if args.quick else 200
    q = {"preset": preset, "threads": torch.get_num_threads(), "n_loops": n_eval, "curve": [],
         "how": "generate_loops (grading vocoder, the policy's seed) scored against grading/assets/loops_reference.npz"}
    elapsed, steps = 0.0, 0
    print(f"\nquality versus training time ({preset} preset, {n_eval} loops each, graded like HW2)")
    print(f"{'minutes':>8}{'steps':>7}{'FAD':>9}{'IS':>7}{'NDB/K':>7}")
    for mark in marks:
        run = train_gan(get_config("stylegan2", preset, steps=10**7, max_seconds=max(1.0, mark * 60 - elapsed),
                                   progress=False, out_dir=str(run_dir), data_preset=data_preset,
                                   snapshot_every=0, export_steps=()), data=train, labels=train_labels)
        elapsed, steps = elapsed + run.seconds, run.steps_done
        row = {"minutes": round(elapsed / 60, 2), "steps": steps,
               **score(generate_loops(run_dir / "generator.pt", n_eval, seed=policy_seed), reference, clf)}
        q["curve"].append(row)
        print(f"{row['minutes']:>8.1f}{steps:>7}{row['fad']:>9.1f}{row['is']:>7.2f}{row['ndb_k']:>7.2f}", flush=True)
    results["quality"] = q
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
