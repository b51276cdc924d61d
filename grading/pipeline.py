"""The TA's whole HW2 run: collect -> autograde -> score -> gradebook -> feedback -> export.

Resumable: a student already autograded / scored is skipped unless ``force``; the gradebook
keeps a TA's manual override whatever happens. One failing submission never stops the batch:
its failure becomes a line of its feedback. Autograding runs ``jobs`` students at a time (each
in its own nbgrader process and kernel); scoring runs in one separate trusted process.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from grading import autograde, course, gradebook
from grading.course import ASSIGNMENT, REPO
from grading.feedback import write_report
from grading.policy import load_policy
from grading.score import ScoreReport, score_path

SCORE_TIMEOUT_PER_STUDENT_S = 120


@dataclass
class StudentOutcome:
    student: str
    autograde: str
    quality: str


def ensure_course(course_dir: Path) -> Path:
    """Initialise the grading folder once (the gradebook records the assignment)."""
    course_dir = Path(course_dir).resolve()
    if not (course_dir / "gradebook.db").exists() or not (course_dir / "release" / ASSIGNMENT).exists():
        course.init_course(course_dir)
    return course_dir


def run_autograde(course_dir: Path, students: list[str], force: bool = False, jobs: int = 2,
                  sandbox: bool = True) -> dict[str, str]:
    """Autograde every student not yet done; returns a message per student ('' when all is well).

    ``sandbox=False`` (the TA's ``--no-sandbox``, for machines without bubblewrap): one student at a
    time, and after each one the checksums of :mod:`grading.integrity` must be unchanged, else
    :class:`grading.integrity.IntegrityError` stops grading before any scoring.
    """
    from grading import integrity, sandbox as sandboxing, trusted_tests

    sandboxing.require(sandbox)
    todo = [s for s in students if force or not autograde.already_autograded(course_dir, s)]
    messages = {}
    for s in students:
        if s not in todo:
            previous = autograde.load_result(course_dir, s)
            messages[s] = previous.message if previous else ""
    if not todo:
        return messages
    snapshot = None
    if not sandbox:
        trusted_tests.probe_seed(course_dir, "")  # the secret exists before the checksums are taken
        snapshot, jobs = integrity.take(course_dir, data=True), 1
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        # force=True for nbgrader: a student in `todo` must be (re)graded even if an older submission
        # left an autograded/ folder behind (a newer one was collected)
        futures = {pool.submit(autograde.autograde_student, course_dir, s, True, sandbox=sandbox): s for s in todo}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="autograde", unit="student"):
            student = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # never let one student stop the batch
                result = autograde.AutogradeResult(student, False, 0.0, f"autograde crashed: {exc}")
            autograde.save_result(course_dir, result)
            messages[student] = result.message
            if snapshot is not None:
                snapshot = integrity.verify(course_dir, snapshot, student)
    if snapshot is not None:
        integrity.verify(course_dir, snapshot, "", data=True)  # the dataset cache, once (it is big)
    return messages


def run_scoring(course_dir: Path, students: list[str], force: bool = False, jobs: int = 2) -> dict[str, ScoreReport]:
    """Score every student not yet scored in ``jobs`` separate trusted processes; returns every report.

    Students are dealt round-robin to the processes; each process has a time limit of the policy's
    generation limit plus scoring time per student (a student over it gets a report saying so).
    """
    todo = [s for s in students if force or not score_path(course_dir, s).is_file()]
    if todo:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        per_student = load_policy().checkpoint.time_limit_s + SCORE_TIMEOUT_PER_STUDENT_S
        chunks = [todo[i::max(1, jobs)] for i in range(max(1, jobs))]
        log_path = Path(course_dir) / "logs" / "score.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as log:  # the scorers' own output, kept for the TA
            procs = [(subprocess.Popen([sys.executable, "-m", "grading.score", "--course-dir", str(course_dir),
                                        "--students", *chunk], cwd=REPO, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, text=True), per_student * len(chunk) + 120)
                     for chunk in chunks if chunk]
            start = time.perf_counter()
            for proc, limit in procs:
                try:
                    proc.wait(timeout=max(1.0, limit - (time.perf_counter() - start)))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    log.write("a scorer stopped at its time limit\n")  # students without a report get one below
    policy = load_policy()
    reports = {}
    for s in students:
        path = score_path(course_dir, s)
        try:
            reports[s] = ScoreReport.from_json(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (ValueError, TypeError, OSError) as exc:
            reports[s] = ScoreReport(student=s, max_points=policy.quality_max,
                                     error=f"unreadable score report {path.name} ({type(exc).__name__})")
        if reports[s] is None:
            reports[s] = ScoreReport(student=s, max_points=policy.quality_max,
                                     error="the scorer did not finish for this submission (see logs/score.log)")
    return reports


def _ta_flags(course_dir: Path, student: str) -> list[str]:
    """What the scorer flagged for a TA (preview mismatch, refused checkpoint, psi clamped)."""
    try:
        return ScoreReport.from_json(score_path(course_dir, student).read_text(encoding="utf-8")).ta_flags
    except (OSError, ValueError, TypeError):
        return []


def export_csv(course_dir: Path, out: Path | None = None) -> Path:
    """Gradebook totals as CSV for the LMS: student, code, written, quality, total, max, ta_review (scorer flags)."""
    course_dir = Path(course_dir)
    out = Path(out) if out else course_dir / "grades.csv"
    scores = gradebook.student_scores(course_dir)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "code", "written", "loop_quality", "total", "max", "ta_review"])
        for student in sorted(scores):
            row = scores[student]
            writer.writerow([student, f"{row['code']:g}", f"{row['written']:g}", f"{row['quality']:g}",
                             f"{row['total']:g}", f"{row['max']:g}", "; ".join(_ta_flags(course_dir, student))])
    return out


def run_all(course_dir: Path, download: Path | None = None, force: bool = False, jobs: int = 2,
            override_ta: bool = False, sandbox: bool = True) -> list[StudentOutcome]:
    """Every step for every submission; safe to re-run (see module docstring).

    ``sandbox=False`` only with the TA's ``--no-sandbox`` (see :func:`run_autograde`)."""
    from grading.collect import collect

    start = time.perf_counter()
    course_dir = ensure_course(course_dir)
    if download is not None:
        log = collect(download, course_dir)
        for line in log.refused:
            print("collect refused:", line)
    students = course.students_submitted(course_dir)
    course.ensure_students(course_dir, students)
    messages = run_autograde(course_dir, students, force, jobs, sandbox=sandbox)
    reports = run_scoring(course_dir, students, force, jobs)
    policy = load_policy()
    writes = {s: gradebook.write_quality_score(course_dir, s, reports[s].points, reports[s].summary(),
                                               policy.quality_cell, override_ta=override_ta) for s in students}
    # nbgrader's own feedback (each notebook with its test outputs), all students in one process
    course.nbgrader(["generate_feedback", ASSIGNMENT, "--force"], course_dir, timeout=60 + 30 * len(students))
    outcomes = []
    for student in tqdm(students, desc="feedback", unit="student"):
        report, write = reports[student], writes[student]
        write_report(course_dir, student, report, policy, messages.get(student, ""))
        outcomes.append(StudentOutcome(student, messages.get(student, "") or "ok",
                                       f"{report.points:g} ({write.reason})"))
    export_csv(course_dir)
    (course_dir / "logs").mkdir(exist_ok=True)
    (course_dir / "logs" / "last_run.json").write_text(json.dumps(
        {"students": len(students), "seconds": round(time.perf_counter() - start, 1)}), encoding="utf-8")
    return outcomes
