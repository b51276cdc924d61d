"""``--no-sandbox``: checksums that show student code changed nothing it must not.

Without bubblewrap a student's kernel can write wherever the TA's account can. So before the
autograde stage :func:`take` records SHA-256 checksums of the trusted code (``course_lib/``,
``grading/``), the data (the generated-dataset cache the scorer reads), the grading folder's
configuration, source and release, every student's submitted and autograded files, and every
student's rows in the gradebook. After each student :func:`verify` compares everything except
that student's own autograded folder and gradebook rows, and raises :class:`IntegrityError`
naming what changed (grading stops before any scoring).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from grading.course import ASSIGNMENT, GRADING, NOTEBOOK, REPO, db_url

SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


class IntegrityError(RuntimeError):
    """Trusted code, data or another student's files changed while a student's code ran."""


def _data_dir() -> Path:
    env = os.environ.get("COURSE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "course_lib"


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree(root: Path) -> dict[str, str]:
    """``{path: sha256}`` of every file under ``root`` (symlinks by their target text)."""
    root = Path(root)
    out: dict[str, str] = {}
    if root.is_file():
        return {str(root): _hash(root)}
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_PARTS)
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.endswith(".pyc"):
                continue
            out[str(p)] = "link:" + os.readlink(p) if p.is_symlink() else _hash(p)
    return out


def _gradebook_rows(course_dir: Path) -> dict[str, dict]:
    """``{student: {cell: (auto_score, manual_score)}}`` from the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    rows: dict[str, dict] = {}
    if not (Path(course_dir) / "gradebook.db").is_file():
        return rows
    with Gradebook(db_url(course_dir), course_id="music-synthesis") as gb:
        for student in gb.students:
            try:
                nb = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student.id)
            except MissingEntry:
                continue
            rows[student.id] = {g.name: (g.auto_score, g.manual_score) for g in nb.grades}
    return rows


@dataclass
class Snapshot:
    """Checksums of the trusted files and of every student's files and grades."""

    trusted: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    students: dict[str, dict[str, str]] = field(default_factory=dict)
    grades: dict[str, dict] = field(default_factory=dict)


def _student_files(course_dir: Path, student: str) -> dict[str, str]:
    files = tree(Path(course_dir) / "submitted" / student)
    files.update(tree(Path(course_dir) / "autograded" / student))
    return files


def take(course_dir: Path, data: bool = True) -> Snapshot:
    """Checksum everything a student's code must not change (``data``: include the dataset cache)."""
    course_dir = Path(course_dir)
    trusted: dict[str, str] = {}
    for root in (REPO / "course_lib", GRADING, course_dir / "nbgrader_config.py", course_dir / "source",
                 course_dir / "release", course_dir / ".probe_secret"):
        trusted.update(tree(root))
    students = {}
    for kind in ("submitted", "autograded"):
        folder = course_dir / kind
        if folder.is_dir():
            for p in folder.iterdir():
                students.setdefault(p.name, {})
    for student in students:
        students[student] = _student_files(course_dir, student)
    return Snapshot(trusted, tree(_data_dir()) if data else {}, students, _gradebook_rows(course_dir))


def _diff(before: dict, after: dict) -> list[str]:
    changed = [k for k in before if after.get(k) != before[k]]
    return sorted(changed + [k for k in after if k not in before])


def verify(course_dir: Path, before: Snapshot, student: str, data: bool = False) -> Snapshot:
    """Check that autograding ``student`` changed nothing but its own autograded folder and grades
    (``data``: also the dataset cache, against ``before.data``; it is big, so checked once at the end).

    Returns the new snapshot (the baseline for the next student, keeping ``before.data``);
    raises :class:`IntegrityError`.
    """
    after = take(course_dir, data=data)
    problems = [f"trusted file {p}" for p in _diff(before.trusted, after.trusted)]
    if data:
        problems += [f"data file {p}" for p in _diff(before.data, after.data)]
    after.data = before.data
    for other in sorted(set(before.students) | set(after.students)):
        if other == student:
            own_submitted = {k: v for k, v in before.students.get(other, {}).items() if "/submitted/" in k}
            now = {k: v for k, v in after.students.get(other, {}).items() if "/submitted/" in k}
            problems += [f"{other}'s submitted file {p}" for p in _diff(own_submitted, now)]
            continue
        problems += [f"{other}'s file {p}" for p in _diff(before.students.get(other, {}), after.students.get(other, {}))]
    for other in sorted(set(before.grades) | set(after.grades)):
        if other != student and before.grades.get(other) != after.grades.get(other):
            problems.append(f"{other}'s grades in gradebook.db")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise IntegrityError(f"grading stopped: while autograding '{student}' without a sandbox, these changed: "
                             f"{shown}. Restore them (git checkout, a fresh grading folder), install bubblewrap "
                             "and grade again with the sandbox.")
    return after
