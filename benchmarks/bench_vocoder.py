"""Vocoders on real held-out loop mels: the shipped iSTFT vocoder vs Griffin-Lim (32 iterations) vs MelGAN.

    python benchmarks/bench_vocoder.py            # 200 held-out loops (the data card's measurement)
    python benchmarks/bench_vocoder.py --quick    # 16 loops (smoke run; FAD of 16 clips is biased upwards)
    python benchmarks/bench_vocoder.py --threads 2

Measured in one run on the same mels (`course_lib.metrics.vocoder_card.measure`): FAD and IS against
the grader's reference statistics, log-mel L1 and MR-STFT loss to the real audio, and vocoding
speed in loops/s, next to the real audio's FAD / IS. Writes ``build/bench/vocoder.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.metrics.vocoder_card import measure  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="16 loops instead of 200")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "vocoder.json"))
    args = ap.parse_args(argv)
    n = 16 if args.quick else 200
    try:
        fig = measure(n=n, threads=args.threads)
    except FileNotFoundError as exc:  # no shipped vocoder / reference statistics
        fig = {"error": str(exc)}
        print(fig["error"])
    else:
        print(f"{'vocoder':<14}{'FAD':>8}{'IS':>7}{'mel L1':>9}{'MR-STFT':>9}{'loops/s':>9}")
        for name, r in fig["rows"].items():
            sp = "" if r["loops_per_s"] is None else f"{r['loops_per_s']:.1f}"
            print(f"{name:<14}{r['fad']:>8.2f}{r['is']:>7.2f}{r['mel_l1']:>9.3f}{r['mrstft']:>9.3f}{sp:>9}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fig, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
