"""Command line for the course's GAN training: ``python -m course_lib.train {stylegan2,melgan} ...``.

Examples::

    python -m course_lib.train stylegan2 --preset fast --out runs/sg_fast
    python -m course_lib.train melgan --preset lecture --out runs/melgan --max-minutes 10
    torchrun --nproc_per_node 2 -m course_lib.train stylegan2 --preset lecture --out runs/sg_ddp
    python -m course_lib.train stylegan2 --preset fast --set r1_gamma=0 --set arch.z_dim=16

Re-running with the same ``--out`` resumes from its checkpoint (``--no-resume`` starts over).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from typing import Sequence

from course_lib.train import ddp
from course_lib.train.gan import MODELS, PRESET_NAMES, get_config, train_gan


def _parse_sets(items: Sequence[str]) -> dict:
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if key.startswith("arch."):
            out.setdefault("arch", {})[key[5:]] = value
        else:
            out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, train, print the last logged losses; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__.split("\n")[0])
    p.add_argument("model", choices=MODELS)
    p.add_argument("--preset", choices=PRESET_NAMES, default="fast")
    p.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="batch per process")
    p.add_argument("--out", help="output folder (checkpoint, history.json, generator.pt, snapshots/)")
    p.add_argument("--seed", type=int, help="random seed of the run (default: the config's, 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: automatic; under torchrun one GPU per process)")
    p.add_argument("--data-preset", choices=("fast", "lecture", "full", "default"), help="synthetic loop set size")
    p.add_argument("--max-minutes", type=float, help="stop after this much wall time")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any GANConfig field (arch.<name> for architecture fields)")
    a = p.parse_args(argv)
    over = _parse_sets(a.set)
    for key, value in (("steps", a.steps), ("batch_size", a.batch_size), ("out_dir", a.out), ("device", a.device),
                       ("data_preset", a.data_preset)):
        if value is not None:
            over[key] = value
    if a.seed is not None:
        if "seed" in over and over["seed"] != a.seed:
            p.error(f"--seed {a.seed} and --set seed={over['seed']} disagree: give the seed once")
        over["seed"] = a.seed
    over["resume"] = not a.no_resume
    over["progress"] = not a.no_progress
    if a.max_minutes is not None:
        over["max_seconds"] = a.max_minutes * 60.0
    try:
        cfg = get_config(a.model, a.preset, **over)
    except (TypeError, ValueError) as exc:
        p.error(str(exc))
    result = train_gan(cfg)
    if ddp.init_distributed(cfg.device).is_main:
        last = result.history[-1] if result.history else {}
        print(json.dumps({"model": cfg.model, "preset": cfg.preset, "steps": result.steps_done,
                          "seconds": round(result.seconds, 1), "last": last,
                          "out": str(result.out_dir) if result.out_dir else None}))
    ddp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
