"""Benchmark: grading a synthetic HW2 class end to end with trusted generation, extrapolated to 200.

1. **Scoring** (measured on the whole synthetic class, default 40 students): the TA pipeline's
   ``run_scoring`` with 2 jobs — per student the scorer checks ``checkpoint.pt``, generates the
   200 graded loops and the 8 preview loops in a limited child process (``generate_loops``, the
   course's vocoder), validates, de-duplicates, runs the memorisation check (with the disguise
   search) against the training set and computes FAD / IS. The class: 30 students with the
   shipped lecture-preset checkpoint (psi 0.7 / 0.85 / 1.0, matching previews), 4 untrained
   generators of the same size, 3 refused checkpoints (absurd config, garbage, missing) and 3
   previews with NaN samples; every student hands in 200 WAVs.
2. **Autograding** (measured on a few students of the demo class, 2 at a time, as the pipeline
   does; skipped with a note if it cannot run here), per student.
3. **Extrapolation to 200 students** on the same machine: scoring wall time x 200 / n, plus
   autograding per student x 200 / 2 jobs. Stated as an extrapolation in the JSON and printout.

    .venv/bin/python benchmarks/bench_grading.py [--quick] [--students 40] [--autograde 4]

Writes ``build/bench/grading.json``. ``--quick``: 4 students of 16 loops on the fast loop set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_S = 3600.0  # a class of 200 graded end to end in under an hour on 2 cores


def _write_loops(folder: Path, clips: np.ndarray, n: int, sr: int = 16000) -> None:
    """``n`` WAVs: the given clips first (the preview), then hard links to them (cheap on disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"loop_{i:03d}.wav"
        if i < len(clips):
            sf.write(str(path), clips[i], sr, subtype="FLOAT" if not np.isfinite(clips[i]).all() else "PCM_16")
        else:
            os.link(folder / f"loop_{i % len(clips):03d}.wav", path)


def build_class(course: Path, n_students: int, n_loops: int) -> list[str]:
    """Write ``course/submitted/<student>/hw2/`` for a synthetic class; returns the student ids."""
    from course_lib.hw2 import generate_loops
    from course_lib.models.stylegan2 import GENERATOR_ASSET
    from grading.calibrate import untrained_checkpoint

    work = course / "_inputs"
    work.mkdir(parents=True, exist_ok=True)
    previews = {}
    for psi in (0.7, 0.85, 1.0):
        blob = torch.load(GENERATOR_ASSET, weights_only=True)
        blob["meta"]["truncation_psi"] = psi
        path = work / f"lecture_psi{psi}.pt"
        torch.save(blob, path)
        previews[psi] = (path, generate_loops(path, 8, seed=0, truncation_psi=psi).numpy())
    untrained = untrained_checkpoint(work / "untrained.pt")
    untrained_preview = generate_loops(untrained, 8, seed=0).numpy()
    absurd = torch.load(GENERATOR_ASSET, weights_only=True)
    absurd["config"]["channels"] = [100000] + list(absurd["config"]["channels"][1:])
    torch.save(absurd, work / "absurd.pt")
    nan_preview = np.array(previews[1.0][1])
    nan_preview[:, ::50] = np.nan
    kinds = (["honest"] * 30 + ["untrained"] * 4 + ["absurd", "garbage", "missing"] + ["nan_preview"] * 3)
    kinds = [kinds[i * len(kinds) // n_students] for i in range(n_students)]
    students = []
    for i, kind in enumerate(kinds):
        sid = f"s{i:03d}_{kind}"
        hw2 = course / "submitted" / sid / "hw2"
        hw2.mkdir(parents=True, exist_ok=True)
        if kind == "honest":
            path, clips = previews[(0.7, 0.85, 1.0)[i % 3]]
        elif kind == "untrained":
            path, clips = untrained, untrained_preview
        elif kind == "nan_preview":
            path, clips = previews[1.0][0], nan_preview
        else:
            path, clips = (work / "absurd.pt" if kind == "absurd" else None), previews[1.0][1]
        if kind == "garbage":
            (hw2 / "checkpoint.pt").write_bytes(b"not a checkpoint" * 1000)
        elif path is not None:
            os.link(path, hw2 / "checkpoint.pt")
        _write_loops(hw2 / "loops", clips, n_loops)
        students.append(sid)
    return students


def bench_scoring(course: Path, n_students: int, n_loops: int, jobs: int) -> dict:
    from grading.pipeline import run_scoring

    t = time.perf_counter()
    students = build_class(course, n_students, n_loops)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    reports = run_scoring(course, students, force=True, jobs=jobs)
    wall = time.perf_counter() - t
    per = [r.seconds for r in reports.values()]
    gen = [r.checkpoint.get("generation_seconds") for r in reports.values() if r.checkpoint]
    summary = {s: {"points": r.points, "seconds": r.seconds, "error": r.error, "refused": r.checkpoint_problem[:80],
                   "preview": f"{r.reproduction.get('reproduced', 0)}/{r.reproduction.get('compared', 0)}"}
               for s, r in reports.items()}
    errors = [s for s, r in reports.items() if r.error]
    print(f"\n== scoring {n_students} students x {n_loops} loops with trusted generation, {jobs} jobs")
    print(f"class written in {t_build:.1f} s; scoring wall time {wall:.1f} s = {wall / n_students:.1f} s per student")
    print(f"per student (one process): median {statistics.median(per):.1f} s, max {max(per):.1f} s; "
          f"generation median {statistics.median(gen):.1f} s")
    print(f"errors: {errors or 'none'}")
    return {"students": n_students, "n_loops": n_loops, "jobs": jobs, "seconds_wall": wall,
            "seconds_per_student_wall": wall / n_students, "seconds_per_student_median": statistics.median(per),
            "seconds_per_student_max": max(per), "seconds_generation_median": statistics.median(gen),
            "errors": errors, "reports": summary}


def bench_autograde(tmp: Path, n: int, jobs: int, preset: str) -> dict:
    """Autograde ``n`` demo students (instructor solutions) as the pipeline does; None if it cannot run here."""
    try:
        import inspect

        from grading import course as course_mod
        from grading.collect import collect
        from grading.demo import build_demo_class
        from grading.pipeline import ensure_course, run_autograde

        demo = build_demo_class(tmp / "lms", 16, preset, include_slow=False)
        course_dir = ensure_course(tmp / "course")
        collect(demo.download, course_dir)
        students = [s for s in course_mod.students_submitted(course_dir)
                    if s in ("ref_solution", "ref_real", "copycat", "collapse", "cheater")][:n]
        course_mod.ensure_students(course_dir, students)
        kwargs = {}
        if "sandbox" in inspect.signature(run_autograde).parameters:
            from grading import sandbox
            kwargs["sandbox"] = sandbox.available()
        t = time.perf_counter()
        messages = run_autograde(course_dir, students, force=True, jobs=jobs, **kwargs)
        wall = time.perf_counter() - t
    except Exception as exc:  # the autograder is another engineer's moving part: report, do not fail
        print(f"\n== autograding not measured here: {type(exc).__name__}: {exc}")
        return {"students": 0, "error": f"{type(exc).__name__}: {exc}"}
    print(f"\n== autograding {len(students)} students, {jobs} jobs: {wall:.1f} s = {wall / len(students):.1f} s "
          f"per student (wall, {jobs} at a time); messages: {messages}")
    return {"students": len(students), "jobs": jobs, "seconds_wall": wall,
            "seconds_per_student_wall": wall / len(students), "messages": messages, **kwargs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 students of 16 loops, fast loop set")
    ap.add_argument("--students", type=int, default=40)
    ap.add_argument("--autograde", type=int, default=4, help="students autograded (0: skip)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    import tempfile

    out_dir = ROOT / "build" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    n_students, n_loops = (4, 16) if args.quick else (args.students, 200)
    with tempfile.TemporaryDirectory(prefix="bench-grading-", dir=out_dir) as tmp:
        tmp = Path(tmp)
        if args.quick:
            thresholds = (ROOT / "grading" / "thresholds.toml").read_text().replace("n_loops = 200", "n_loops = 16")
            (tmp / "thresholds.toml").write_text(thresholds.replace("min_usable = 50", "min_usable = 4"))
            os.environ.update({"HW2_THRESHOLDS": str(tmp / "thresholds.toml"), "HW2_DATA_PRESET": "fast"})
        preset = os.environ.get("HW2_DATA_PRESET", "lecture")
        scoring = bench_scoring(tmp / "class", n_students, n_loops, args.jobs)
        autograde = bench_autograde(tmp / "autograde", args.autograde, args.jobs, "fast") if args.autograde else \
            {"students": 0}
    per_student_ag = autograde.get("seconds_per_student_wall")
    extrap_score = scoring["seconds_per_student_wall"] * 200
    extrap_ag = per_student_ag * 200 if per_student_ag else None  # already 2 at a time (wall per student)
    total = extrap_score + (extrap_ag or 0.0)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    result = {"quick": args.quick, "data_preset": preset, "cpus": os.cpu_count(), "load_average": load,
              "scoring": scoring, "autograde": autograde,
              "extrapolated_200": {"note": f"EXTRAPOLATED from {n_students} scored and {autograde.get('students', 0)} "
                                           f"autograded students on this machine, not measured on 200",
                                   "seconds_scoring": extrap_score, "seconds_autograde": extrap_ag,
                                   "seconds_total": total, "goal_seconds": GOAL_S,
                                   "goal_met": (total < GOAL_S) if extrap_ag is not None else None}}
    print(f"\n== a class of 200, EXTRAPOLATED: scoring {extrap_score / 60:.1f} min + autograding "
          f"{'%.1f min' % (extrap_ag / 60) if extrap_ag else 'not measured'} = {total / 60:.1f} min "
          f"(goal < {GOAL_S / 60:.0f} min; load average {load})")
    (out_dir / "grading.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out_dir / 'grading.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
