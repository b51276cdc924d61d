"""``autograde``: nbgrader on one submission at a time, with a wall-clock and a memory limit.

Each student runs in its own ``nbgrader autograde`` process (and so its own kernel) with
``RLIMIT_AS`` set, so nothing a notebook does reaches another student. nbgrader restores locked
and test cells from the gradebook, so edited or deleted test cells do not change a grade.

Policy, deterministic whatever the timing: a cell that runs past the per-cell time-out scores 0
and the notebook goes on; a notebook that exhausts the memory limit scores 0 for **all** its code
cells (whether its kernel died or survived a ``MemoryError`` depends on timing, the grade must not),
with the reason in its feedback. A notebook that replaces the kernel's error reporting
(``set_custom_exc``, ``sys.excepthook``, ``showtraceback``, ``sys.stderr``: nbgrader would then see
no failing test) also scores 0 for all code cells, naming the cell, for a TA to review. Loop quality
is scored from the WAVs either way.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from grading.course import ASSIGNMENT, nbgrader

MEMORY_MB = int(os.environ.get("HW2_MEMORY_MB", "8192"))
STUDENT_TIMEOUT_S = int(os.environ.get("HW2_STUDENT_TIMEOUT", "900"))


@dataclass
class AutogradeResult:
    """What happened when one submission was autograded."""

    student: str
    ok: bool
    seconds: float
    message: str = ""


def _limit_memory(megabytes: int):
    def apply() -> None:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def autograde_student(course_dir: Path, student: str, force: bool = False, memory_mb: int = MEMORY_MB,
                      timeout_s: int = STUDENT_TIMEOUT_S) -> AutogradeResult:
    """Autograde one student's HW2 with nbgrader; never raises for a student's fault."""
    import time

    start = time.perf_counter()
    args = ["autograde", ASSIGNMENT, "--student", student, "--create"]
    if force:
        args.append("--force")
    try:
        result = nbgrader(args, course_dir, timeout=timeout_s, preexec_fn=_limit_memory(memory_mb))
    except subprocess.TimeoutExpired:
        return AutogradeResult(student, False, time.perf_counter() - start,
                               f"autograding stopped after {timeout_s} s (time limit); unfinished cells score 0")
    log = (result.stdout + result.stderr)[-4000:]
    notebook = Path(course_dir) / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    ok = result.returncode == 0 and notebook.exists()
    message = "" if ok else _explain_failure(log, memory_mb)
    if ok:
        culprit = _memory_error_cell(notebook)
        tampered = tampering_cell(notebook)
        if culprit is not None:
            zero_code_cells(course_dir, student)
            ok, message = False, (f"the notebook exhausted the memory limit ({memory_mb} MB) in cell "
                                  f"'{culprit}'; all code cells score 0")
        elif tampered is not None:
            zero_code_cells(course_dir, student)
            ok, message = False, (f"cell '{tampered[0]}' changes how the kernel reports errors ({tampered[1]}), "
                                  "so failing tests could pass unseen; all code cells score 0 until a TA reviews it")
    return AutogradeResult(student, ok, time.perf_counter() - start, message)


TAMPERING = {
    "set_custom_exc": re.compile(r"\bset_custom_exc\b"),
    "sys.excepthook": re.compile(r"\bexcepthook\b"),
    "showtraceback": re.compile(r"\b_?showtraceback\b"),
    "sys.stderr": re.compile(r"\bsys\s*\.\s*stderr\s*=|\bsetattr\s*\(\s*sys\s*,\s*['\"]stderr"),
    "redirect_stderr": re.compile(r"\bredirect_stderr\b"),
}
"""What a HW2 notebook has no reason to contain: ways to hide a failing test's error from nbgrader."""


def tampering_cell(notebook: Path) -> tuple[str, str] | None:
    """``(cell id, what)`` of the first code cell that replaces the kernel's error reporting, or None."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        for what, pattern in TAMPERING.items():
            if pattern.search(source):
                return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"#{i}", what
    return None


def _memory_error_cell(notebook: Path) -> str | None:
    """The id of the first cell whose output is a MemoryError, if any."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") == "MemoryError":
                return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"#{i}"
    return None


def zero_code_cells(course_dir: Path, student: str) -> None:
    """Set every autograded cell of ``student``'s notebook to 0 points in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    from grading.course import NOTEBOOK, db_url

    with Gradebook(db_url(course_dir), course_id="music-synthesis") as gb:
        try:
            nb = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
        except MissingEntry:
            return
        for grade in nb.grades:
            if grade.auto_score is not None:
                grade.auto_score = 0.0
        gb.db.commit()


def _explain_failure(log: str, memory_mb: int) -> str:
    lowered = log.lower()
    if "memoryerror" in lowered or "cannot allocate memory" in lowered or "kernel died" in lowered \
            or "deadkernel" in lowered:
        return f"the notebook's kernel died (memory limit {memory_mb} MB or a crash); unfinished cells score 0"
    if "missing" in lowered and "cell" in lowered:
        return "the notebook is missing graded cells (deleted?); they score 0"
    if "no submitted file" in lowered or "no notebooks found" in lowered:
        return "no hw2.ipynb in the submission; code cells score 0"
    tail = [line for line in log.strip().splitlines() if line.strip()][-3:]
    return "nbgrader could not autograde this submission: " + " | ".join(tail)


def already_autograded(course_dir: Path, student: str) -> bool:
    """True once a student has been through autograding (successfully or not): re-runs skip them."""
    return (Path(course_dir) / "logs" / "autograde" / f"{student}.json").is_file()


def save_result(course_dir: Path, result: AutogradeResult) -> None:
    path = Path(course_dir) / "logs" / "autograde" / f"{result.student}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")


def load_result(course_dir: Path, student: str) -> AutogradeResult | None:
    path = Path(course_dir) / "logs" / "autograde" / f"{student}.json"
    if not path.is_file():
        return None
    return AutogradeResult(**json.loads(path.read_text(encoding="utf-8")))
