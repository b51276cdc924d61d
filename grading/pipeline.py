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


def run_autograde(course_dir: Path, students: list[str], force: bool = False, jobs: int = 2) -> dict[str, str]:
    """Autograde every student not yet done; returns a message per student ('' when all is well)."""
    todo = [s for s in students if force or not autograde.already_autograded(course_dir, s)]
    messages = {}
    for s in students:
        if s not in todo:
            previous = autograde.load_result(course_dir, s)
            messages[s] = previous.message if previous else ""
    if not todo:
        return messages
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        # force=True for nbgrader: a student in `todo` must be (re)graded even if an older submission
        # left an autograded/ folder behind (a newer one was collected)
        futures = {pool.submit(autograde.autograde_student, course_dir, s, True): s for s in todo}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="autograde", unit="student"):
            student = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # never let one student stop the batch
                result = autograde.AutogradeResult(student, False, 0.0, f"autograde crashed: {exc}")
            autograde.save_result(course_dir, result)
            messages[student] = result.message
    return messages


def run_scoring(course_dir: Path, students: list[str], force: bool = False) -> dict[str, ScoreReport]:
    """Score in one separate trusted process every student not yet scored; returns every report."""
    todo = [s for s in students if force or not score_path(course_dir, s).is_file()]
    if todo:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "grading.score", "--course-dir", str(course_dir), "--students", *todo]
        log_path = Path(course_dir) / "logs" / "score.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as log:  # the scorer's own output, kept for the TA
            try:
                subprocess.run(cmd, cwd=REPO, env=env, timeout=SCORE_TIMEOUT_PER_STUDENT_S * len(todo) + 120,
                               check=False, stdout=log, stderr=subprocess.STDOUT, text=True)
            except subprocess.TimeoutExpired:
                log.write("scorer stopped at its time limit\n")  # students without a report get one below
    policy = load_policy()
    reports = {}
    for s in students:
        path = score_path(course_dir, s)
        if path.is_file():
            reports[s] = ScoreReport.from_json(path.read_text(encoding="utf-8"))
        else:
            reports[s] = ScoreReport(student=s, max_points=policy.quality_max,
                                     error="the scorer did not finish for this submission (see logs/score.log)")
    return reports


def export_csv(course_dir: Path, out: Path | None = None) -> Path:
    """Gradebook totals as CSV for the LMS: student, code, written, quality, total, max."""
    course_dir = Path(course_dir)
    out = Path(out) if out else course_dir / "grades.csv"
    scores = gradebook.student_scores(course_dir)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "code", "written", "loop_quality", "total", "max"])
        for student in sorted(scores):
            row = scores[student]
            writer.writerow([student, f"{row['code']:g}", f"{row['written']:g}", f"{row['quality']:g}",
                             f"{row['total']:g}", f"{row['max']:g}"])
    return out


def run_all(course_dir: Path, download: Path | None = None, force: bool = False, jobs: int = 2,
            override_ta: bool = False) -> list[StudentOutcome]:
    """Every step for every submission; safe to re-run (see module docstring)."""
    from grading.collect import collect

    start = time.perf_counter()
    course_dir = ensure_course(course_dir)
    if download is not None:
        log = collect(download, course_dir)
        for line in log.refused:
            print("collect refused:", line)
    students = course.students_submitted(course_dir)
    course.ensure_students(course_dir, students)
    messages = run_autograde(course_dir, students, force, jobs)
    reports = run_scoring(course_dir, students, force)
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
