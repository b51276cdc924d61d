"""Execute the lessons headless and write executed notebooks + HTML to a build folder.

    python tools/run_lessons.py --mode lecture --out build/lessons     # what `make demo` runs
    python tools/run_lessons.py --mode fast --only 01                  # one lesson, FAST presets

Prints one line per lesson with its run time; exits non-zero if any lesson fails (the
others still run). Committed notebooks are never modified.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"


def lesson_paths(only: list[str] | None = None) -> list[Path]:
    """Lesson notebooks in order, optionally those whose name starts with one of ``only``."""
    paths = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    return paths


def execute(path: Path, fast: bool, timeout: int = 900, nb: nbformat.NotebookNode | None = None) -> nbformat.NotebookNode:
    """Run a notebook in its own folder with COURSE_FAST set accordingly; returns the executed copy.

    ``nb``: the notebook read from ``path``, executed in place (so a caller keeps the outputs up to a failing cell).
    """
    nb = nb if nb is not None else nbformat.read(path, as_version=4)
    os.environ["COURSE_FAST"] = "1" if fast else "0"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["lecture", "fast"], default="lecture")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "lessons")
    ap.add_argument("--only", nargs="*", help="lesson prefixes, e.g. 01 03")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = ap.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    total = time.perf_counter()
    for path in lesson_paths(args.only):
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        try:
            execute(path, fast=args.mode == "fast", timeout=args.timeout, nb=nb)
            status = "ok"
        except CellExecutionError as exc:
            status = f"FAILED: {getattr(exc, 'ename', 'error')}: {str(getattr(exc, 'evalue', exc))[:200]}"
            failures += 1
        elapsed = time.perf_counter() - start
        # a failed lesson is written too, with its outputs up to the failing cell (the one worth reading)
        nbformat.write(nb, args.out / path.name)
        html, _ = HTMLExporter(embed_images=True).from_notebook_node(nb)
        (args.out / path.with_suffix(".html").name).write_text(html, encoding="utf-8")
        print(f"{path.name:32s} {args.mode:8s} {elapsed:7.1f} s  {status}", flush=True)
    print(f"{'total':32s} {'':8s} {time.perf_counter() - total:7.1f} s  -> {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
