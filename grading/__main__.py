"""``python -m grading ...``: the TA's and the students' command line for HW2.

    python -m grading all --download lms.zip --course-dir ~/hw2-grading   # everything, resumable
    python -m grading collect lms.zip --course-dir D                      # one step at a time ...
    python -m grading autograde --course-dir D [--force] [--jobs 2]
    python -m grading score --course-dir D [--force]
    python -m grading feedback --course-dir D
    python -m grading export --course-dir D [--out grades.csv]
    python -m grading check hw2/                                          # students, before submitting
    python -m grading build-reference                                     # instructors: reference stats
    python -m grading calibrate [--out build/calibration]                 # instructors: threshold table
    python -m grading release                                             # instructors: regenerate hw2/
    python -m grading demo                                                # grade a demo class (make demo)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def _course(p: str) -> Path:
    return Path(p).expanduser().resolve()


def cmd_all(args) -> int:
    from grading.pipeline import run_all

    from grading.gradebook import student_scores

    course_dir = _course(args.course_dir)
    outcomes = run_all(course_dir, Path(args.download) if args.download else None, args.force,
                       args.jobs, args.override_ta, sandbox=not args.no_sandbox)
    scores = student_scores(course_dir)
    print(f"\n{'student':20s} {'code':>5s} {'quality':>8s} {'written':>8s} {'total':>6s}  notes")
    for o in outcomes:
        s = scores.get(o.student, {})
        note = "" if o.autograde == "ok" else o.autograde[:60]
        print(f"{o.student:20s} {s.get('code', 0):5g} {s.get('quality', 0):8g} {s.get('written', 0):8g} "
              f"{s.get('total', 0):6g}  {note}")
    print("(written answers wait for a TA in formgrader)")
    print(f"grades: {course_dir / 'grades.csv'}; feedback: {course_dir / 'feedback'}/<student>/hw2/report.html")
    return 0


def cmd_collect(args) -> int:
    from grading.collect import collect
    from grading.pipeline import ensure_course

    course_dir = ensure_course(_course(args.course_dir))
    log = collect(Path(args.download), course_dir)
    print("\n".join(log.lines()))
    return 0


def cmd_autograde(args) -> int:
    from grading import course
    from grading.pipeline import ensure_course, run_autograde

    course_dir = ensure_course(_course(args.course_dir))
    students = course.students_submitted(course_dir)
    course.ensure_students(course_dir, students)
    for student, message in sorted(run_autograde(course_dir, students, args.force, args.jobs,
                                                 sandbox=not args.no_sandbox).items()):
        print(f"{student:24s} {message or 'ok'}")
    return 0


def cmd_score(args) -> int:
    from grading import course
    from grading.pipeline import run_scoring

    course_dir = _course(args.course_dir)
    for student, report in sorted(run_scoring(course_dir, course.students_submitted(course_dir), args.force).items()):
        print(f"{student:24s} {report.summary()}")
    return 0


def cmd_feedback(args) -> int:
    from grading import autograde, course, gradebook
    from grading.feedback import write_report
    from grading.policy import load_policy
    from grading.score import ScoreReport, score_path

    course_dir = _course(args.course_dir)
    policy = load_policy()
    students = course.students_submitted(course_dir)
    reports = {}
    for student in students:
        path = score_path(course_dir, student)
        reports[student] = ScoreReport.from_json(path.read_text()) if path.is_file() else None
        if reports[student] is not None:
            gradebook.write_quality_score(course_dir, student, reports[student].points, reports[student].summary(),
                                          policy.quality_cell, override_ta=args.override_ta)
    course.nbgrader(["generate_feedback", "hw2", "--force"], course_dir)
    for student in students:
        report = reports[student]
        result = autograde.load_result(course_dir, student)
        print(write_report(course_dir, student, report, policy, result.message if result else ""))
    return 0


def cmd_export(args) -> int:
    from grading.pipeline import export_csv

    print(export_csv(_course(args.course_dir), Path(args.out) if args.out else None))
    return 0


def _default_hw2_folder(cwd: Path | None = None) -> Path:
    """``check`` without a folder: ``./hw2`` from the folder that holds it, else the current folder (run inside hw2/)."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    return cwd / "hw2" if (cwd / "hw2" / "hw2.ipynb").is_file() else cwd


def cmd_check(args) -> int:
    """Students: what the grader computes for your hw2/ folder (code parts; loops generated from checkpoint.pt)."""
    from grading.policy import load_policy
    from grading.reference import load_reference_assets
    from grading.score import score_submission

    folder = Path(args.folder) if args.folder else _default_hw2_folder()
    hw2 = folder.parent if folder.name == "loops" else folder
    if (hw2 / "hw2.ipynb").is_file():  # the code parts, decided as the grader decides them
        from grading.trusted_tests import check_lines

        print("\n".join(check_lines(hw2 / "hw2.ipynb")))
    policy = load_policy()
    report = score_submission(hw2, policy, load_reference_assets(), "you")
    for line in report.handed_in.get("problems", []):
        print("handed-in loops/ (preview, no points):", line)
    for line in report.problems:
        print("problem:", line)
    for d in report.duplicates:
        print(f"near-duplicate: {d['loop']} repeats {d['same_as']}")
    for m in report.memorised:
        print(f"copy of training data: {m['loop']} ~ {m['training_loop']}")
    for flag in report.ta_flags:
        print("a TA would see:", flag)
    print(report.summary())
    return 0


def cmd_build_reference(args) -> int:
    from grading.reference import REFERENCE_FILE, build_reference

    print(build_reference(Path(args.out) if args.out else REFERENCE_FILE))
    return 0


def cmd_calibrate(args) -> int:
    from grading.calibrate import calibrate

    print(calibrate(Path(args.out)))
    return 0


def cmd_demo(args) -> int:
    """Grade a demo class (reference solution + baselines made on the fly) and print the table."""
    from course_lib.models.stylegan2 import GENERATOR_ASSET
    from grading.demo import build_demo_class
    from grading.policy import load_policy
    from grading.reference import data_preset

    out = _course(args.out)
    policy = load_policy()
    from grading import sandbox

    if not args.no_sandbox and not sandbox.available():  # fake students only: run, but say so
        print(f"note: bubblewrap is missing, so the demo class is graded with --no-sandbox (without its attacker); "
              f"{sandbox.INSTALL_HINT}")
        args.no_sandbox = True
    demo = build_demo_class(out / "lms", policy.submission.n_loops, data_preset(),
                            checkpoint=GENERATOR_ASSET if GENERATOR_ASSET.is_file() else None,
                            include_slow=not args.skip_slow, attacker=not args.no_sandbox)
    args.course_dir, args.download, args.force, args.override_ta = str(out / "course"), str(demo.download), True, False
    return cmd_all(args)


def cmd_release(args) -> int:
    """Regenerate the student release ``hw2/`` from ``grading/source/hw2`` with nbgrader."""
    from grading.course import REPO, init_course

    with tempfile.TemporaryDirectory() as tmp:
        course_dir = init_course(Path(tmp) / "course")
        release = course_dir / "release" / "hw2"
        dest = REPO / "hw2"
        for item in release.iterdir():
            target = dest / item.name
            if item.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(item, target)
            else:
                dest.mkdir(exist_ok=True)
                shutil.copy2(item, target)
    print(f"released into {dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grading", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    def course_arg(p):
        p.add_argument("--course-dir", default="build/hw2-grading", help="the TA's grading folder")

    def no_sandbox_arg(p):
        p.add_argument("--no-sandbox", action="store_true",
                       help="run student code without bubblewrap (one student at a time; trusted code, data and "
                            "every student's files are checksummed and verified before scoring)")

    p = sub.add_parser("all", help="every step, resumable")
    course_arg(p)
    p.add_argument("--download", help="LMS bulk download (zip)")
    p.add_argument("--force", action="store_true", help="redo autograding and scoring of every submission")
    p.add_argument("--override-ta", action="store_true", help="overwrite TAs' manual loop-quality grades")
    p.add_argument("--jobs", type=int, default=2)
    no_sandbox_arg(p)
    p.set_defaults(func=cmd_all)
    p = sub.add_parser("collect")
    p.add_argument("download")
    course_arg(p)
    p.set_defaults(func=cmd_collect)
    p = sub.add_parser("autograde")
    course_arg(p)
    p.add_argument("--force", action="store_true")
    p.add_argument("--jobs", type=int, default=2)
    no_sandbox_arg(p)
    p.set_defaults(func=cmd_autograde)
    p = sub.add_parser("score")
    course_arg(p)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("feedback")
    course_arg(p)
    p.add_argument("--override-ta", action="store_true")
    p.set_defaults(func=cmd_feedback)
    p = sub.add_parser("export")
    course_arg(p)
    p.add_argument("--out")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("check", help="students: check your hw2/ folder before submitting")
    p.add_argument("folder", nargs="?", default=None,
                   help="your hw2/ folder (default: ./hw2 if it exists, else the current folder)")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("build-reference")
    p.add_argument("--out")
    p.set_defaults(func=cmd_build_reference)
    p = sub.add_parser("calibrate")
    p.add_argument("--out", default="build/calibration")
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser("demo", help="grade a demo class of fake students")
    p.add_argument("--out", default="build/hw2-demo")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--skip-slow", action="store_true", help="leave out the student whose cells time out")
    no_sandbox_arg(p)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("release")
    p.set_defaults(func=cmd_release)
    args = ap.parse_args(argv)
    from grading.integrity import IntegrityError
    from grading.sandbox import SandboxUnavailable

    try:
        return args.func(args)
    except (SandboxUnavailable, IntegrityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
