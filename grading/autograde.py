"""``autograde``: nbgrader on one submission at a time, sandboxed, with a wall-clock and a memory limit.

Each student runs in its own ``nbgrader autograde`` process with ``RLIMIT_AS`` set; its kernel runs
in the bubblewrap sandbox (:mod:`grading.sandbox`: read-only system and checkout, no network, the
grading folder hidden, write access only to ``autograded/<student>/hw2``), talking to nbgrader over
ZMQ ``ipc`` sockets. nbgrader restores locked and test cells from the gradebook, runs the notebook
(feedback with the test outputs, the regenerated loops) and writes the gradebook.

**The points of the test cells are not nbgrader's**: a notebook controls its kernel and can hide a
failing test. :mod:`grading.trusted_tests` runs the student's code once more in the sandbox (the
probe, with the course library hidden), records what the four functions return, and decides each
part in this (trusted) process against the course's reference; those decisions overwrite the test
cells' ``auto_score``.

Policy, deterministic whatever the timing: a cell that runs past the per-cell time-out fails its
part and the notebook goes on; a notebook that exhausts the memory limit scores 0 for **all** its code
cells, with the reason in its feedback. Code that replaces the kernel's error reporting is named
in the feedback for a TA (it can no longer change a grade). Loop quality is scored from the WAVs.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grading import sandbox as sandboxing
from grading import trusted_tests
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
    tests: dict = field(default_factory=dict)  # part -> {"passed", "reason"}: the trusted decisions
    nbgrader_scores: dict = field(default_factory=dict)  # test cell -> what nbgrader's kernel run gave


def _limit_memory(megabytes: int):
    def apply() -> None:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def autograde_student(course_dir: Path, student: str, force: bool = False, memory_mb: int = MEMORY_MB,
                      timeout_s: int = STUDENT_TIMEOUT_S, sandbox: bool = True) -> AutogradeResult:
    """Autograde one student's HW2 (nbgrader, then the trusted tests); never raises for a student's fault.

    ``sandbox``: run the kernel and the probe under bubblewrap (False only with ``--no-sandbox``).
    """
    import time

    start = time.perf_counter()
    course_dir = Path(course_dir).resolve()
    args = ["autograde", ASSIGNMENT, "--student", student, "--create"]
    if force:
        args.append("--force")
    env = None
    if sandbox:
        own = course_dir / "autograded" / student / ASSIGNMENT
        folder = course_dir / ".sandbox" / student
        env = sandboxing.write_kernel_spec(folder, writable=[own], hide=[course_dir])
        args += sandboxing.nbgrader_args(folder)
    try:
        result = nbgrader(args, course_dir, timeout=timeout_s, preexec_fn=_limit_memory(memory_mb), env=env)
    except subprocess.TimeoutExpired:
        result = None
    notebook = course_dir / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    if result is None:
        ok, message = False, f"autograding stopped after {timeout_s} s (time limit); unfinished cells score 0"
    else:
        ok = result.returncode == 0 and notebook.exists()
        message = "" if ok else _explain_failure((result.stdout + result.stderr)[-4000:], memory_mb)
    nbgrader_scores = _test_scores(course_dir, student)
    tests, probe_memory = _trusted_tests(course_dir, student, sandbox, memory_mb, timeout_s)
    culprit = (_memory_error_cell(notebook) if notebook.exists() else None) or probe_memory
    tampered = tampering_cell(notebook) if notebook.exists() else None
    if culprit is not None:
        zero_code_cells(course_dir, student)
        ok, message = False, (f"the notebook exhausted the memory limit ({memory_mb} MB) in cell "
                              f"'{culprit}'; all code cells score 0")
    elif tests:
        line = trusted_tests.summary(tests)
        if not all(r.passed for r in tests.values()):
            message = f"{message}; {line}" if message else line
    if tampered is not None and culprit is None:
        message = (f"{message}; " if message else "") + (
            f"cell '{tampered[0]}' changes how the kernel reports errors ({tampered[1]}): a TA may want to look "
            "(it cannot change the points, which are decided outside the notebook)")
    return AutogradeResult(student, ok, time.perf_counter() - start, message,
                           {k: asdict(v) for k, v in tests.items()}, nbgrader_scores)


def _test_scores(course_dir: Path, student: str) -> dict[str, float]:
    """nbgrader's own ``auto_score`` of each test cell (kept for the record: the kernel could fake it)."""
    from nbgrader.api import Gradebook, MissingEntry

    from grading.course import NOTEBOOK, db_url

    out = {}
    with Gradebook(db_url(course_dir), course_id="music-synthesis") as gb:
        for _, test_id in trusted_tests.PARTS.values():
            try:
                grade = gb.find_grade(test_id, NOTEBOOK, ASSIGNMENT, student)
            except MissingEntry:
                continue
            if grade.auto_score is not None:
                out[test_id] = float(grade.auto_score)
    return out


def _trusted_tests(course_dir: Path, student: str, sandbox: bool, memory_mb: int,
                   timeout_s: int) -> tuple[dict[str, trusted_tests.PartResult], str | None]:
    """Probe the submitted notebook, decide every part, write the decisions into the gradebook.

    Returns the decisions (empty when there is no notebook) and the cell that ran out of memory, if any.
    """
    submitted = course_dir / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    if not submitted.is_file():
        return {}, None
    work = course_dir / "probe" / student
    try:
        tests = trusted_tests.trusted_grade(submitted, work, trusted_tests.probe_seed(course_dir, student), sandbox,
                                            timeout_s=timeout_s, memory_mb=memory_mb, hide=[course_dir])
    except ValueError as exc:  # an unreadable notebook: every part fails, with the reason
        tests = {p: trusted_tests.PartResult(p, False, str(exc)[:300]) for p in trusted_tests.PARTS}
    trusted_tests.save_decisions(course_dir / "logs" / "trusted" / f"{student}.json", tests)
    trusted_tests.apply_decisions(course_dir, student, tests)
    return tests, trusted_tests.memory_error_cell(work / "out")


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
