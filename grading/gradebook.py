"""Write the trusted loop-quality points into nbgrader's gradebook, never over a TA's override.

The points belong to the manually graded task cell ``loop_quality`` of ``hw2.ipynb`` (its
maximum fixed in the source). The scorer sets that grade's ``manual_score`` and the cell's
comment through nbgrader's Gradebook API, so ``generate_feedback``, formgrader and ``export``
all see it. What the scorer wrote is remembered in ``scores/<student>.ledger.json``; if the
grade in the gradebook no longer equals it, a TA changed it in formgrader, and a re-run leaves
it alone (``--force`` does not override a TA either; only ``--override-ta`` does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grading.course import ASSIGNMENT, NOTEBOOK, db_url


@dataclass
class WriteOutcome:
    student: str
    written: bool
    reason: str


def _ledger(course_dir: Path, student: str) -> Path:
    return Path(course_dir) / "scores" / f"{student}.ledger.json"


def write_quality_score(course_dir: Path, student: str, points: float, comment: str, cell: str,
                        override_ta: bool = False) -> WriteOutcome:
    """Set the task cell's score and comment for ``student`` unless a TA has overridden it."""
    from nbgrader.api import Gradebook, MissingEntry

    ledger_path = _ledger(course_dir, student)
    previous = json.loads(ledger_path.read_text()) if ledger_path.is_file() else None
    with Gradebook(db_url(course_dir), course_id="music-synthesis") as gb:
        try:
            grade = gb.find_grade(cell, NOTEBOOK, ASSIGNMENT, student)
            comment_row = gb.find_comment(cell, NOTEBOOK, ASSIGNMENT, student)
        except MissingEntry:
            return WriteOutcome(student, False, "no autograded notebook in the gradebook (autograde failed or "
                                                "the notebook is missing); the quality points are in the feedback only")
        current = grade.manual_score
        if previous is not None and current is not None and abs(current - previous["points"]) > 1e-9 \
                and not override_ta:
            return WriteOutcome(student, False, f"kept the TA's manual grade {current:g} "
                                                f"(scorer had written {previous['points']:g})")
        if previous is None and current is not None and not override_ta:
            return WriteOutcome(student, False, f"kept the existing manual grade {current:g} (set before the scorer ran)")
        grade.manual_score = float(points)
        grade.needs_manual_grade = False
        comment_row.manual_comment = comment
        gb.db.commit()
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    ledger_path.write_text(json.dumps({"points": float(points), "comment": comment}), encoding="utf-8")
    return WriteOutcome(student, True, "written")


def student_scores(course_dir: Path) -> dict[str, dict[str, float]]:
    """``{student: {"code": autograded points, "quality": task points, "written": manual, "total": ...}}``."""
    from nbgrader.api import Gradebook, MissingEntry

    out: dict[str, dict[str, float]] = {}
    with Gradebook(db_url(course_dir), course_id="music-synthesis") as gb:
        assignment = gb.find_assignment(ASSIGNMENT)
        max_score = float(assignment.max_score)
        for student in gb.students:
            try:
                sub = gb.find_submission(ASSIGNMENT, student.id)
            except MissingEntry:
                out[student.id] = {"code": 0.0, "quality": 0.0, "written": 0.0, "total": 0.0, "max": max_score}
                continue
            code = quality = written = 0.0
            for nb in sub.notebooks:
                for grade in nb.grades:
                    score = float(grade.score or 0.0)
                    if grade.cell.name == "loop_quality":
                        quality += score
                    elif grade.cell_type == "markdown" or grade.auto_score is None:
                        written += score
                    else:
                        code += score
            out[student.id] = {"code": code, "quality": quality, "written": written,
                               "total": code + quality + written, "max": max_score}
    return out
