"""Command line of course_lib.data.

    python -m course_lib.data describe loops  [--preset fast|default|full] [--seed 0] [--backend dsp]
                                              [--root LOOP_FOLDER] [--out build/data_card] [--no-figures]
    python -m course_lib.data describe nsynth [--preset fast] [--root NSYNTH_FOLDER] [--out build/data_card]
    python -m course_lib.data export loops|nsynth --out DIR [--preset fast] [--seed 0]

``describe`` prints the data card (Markdown) and writes ``card.md``, ``card.json`` and figures to
``<out>/<kind>-<preset>/``. ``export`` writes the synthetic set as files: a loop folder
(``<class>/*.wav`` + ``metadata.csv``) or an NSynth folder (``examples.json`` + ``audio/``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from course_lib.data.card import card_markdown, describe_loops, describe_nsynth
from course_lib.data.presets import get_preset
from course_lib.data.synthetic_loops import generate_loops, write_loop_folder
from course_lib.data.synthetic_notes import write_synthetic_nsynth


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the sub-command; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m course_lib.data", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", help="print and write a data card")
    d.add_argument("kind", choices=["loops", "nsynth"])
    d.add_argument("--preset", default="fast", choices=["fast", "lecture", "full", "default"])
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--backend", default="dsp", choices=["dsp", "fluidsynth"], help="loops only")
    d.add_argument("--root", default=None, help="a real loop / NSynth folder instead of the synthetic set")
    d.add_argument("--out", default="build/data_card")
    d.add_argument("--no-figures", action="store_true")
    e = sub.add_parser("export", help="write the synthetic set as audio files")
    e.add_argument("kind", choices=["loops", "nsynth"])
    e.add_argument("--out", required=True)
    e.add_argument("--preset", default="fast", choices=["fast", "lecture", "full", "default"])
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--backend", default="dsp", choices=["dsp", "fluidsynth"])
    args = ap.parse_args(argv)

    start = time.perf_counter()
    if args.command == "describe":
        name = f"{args.kind}-{args.preset}" if args.root is None else f"{args.kind}-{Path(args.root).name}"
        out = Path(args.out) / name
        if args.kind == "loops":
            card = describe_loops(args.preset, args.seed, args.backend, args.root, out, not args.no_figures)
        else:
            card = describe_nsynth(args.preset, args.seed, args.root, out, not args.no_figures)
        print(card_markdown(card))
        print(f"written to {out}/ in {time.perf_counter() - start:.1f} s")
    else:
        if args.kind == "loops":
            audio, labels, names = generate_loops(get_preset(args.preset).loops_per_class, seed=args.seed,
                                                  backend=args.backend, progress=True)
            path = write_loop_folder(args.out, audio, labels.tolist(), names)
        else:
            path = write_synthetic_nsynth(args.out, args.preset, args.seed, progress=True)
        print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
