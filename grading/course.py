"""A TA's grading folder: an nbgrader course directory made from the committed instructor source.

``init_course(course_dir)`` copies ``grading/nbgrader_config.py`` and ``grading/source/`` into
``course_dir`` and runs ``nbgrader generate_assignment hw2`` there, which records the
assignment's cells and points in ``course_dir/gradebook.db``. Everything a grading run writes
(``submitted/``, ``autograded/``, ``feedback/``, ``logs/``, ``scores/``, the gradebook) lives in
that folder, never in the repository.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

GRADING = Path(__file__).resolve().parent
REPO = GRADING.parent
SOURCE = GRADING / "source"
ASSIGNMENT = "hw2"
NOTEBOOK = "hw2"

# nbgrader's gradebook runs the `alembic` command: make this interpreter's scripts findable
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


def nbgrader(args: list[str], course_dir: Path, timeout: float | None = None,
             env: dict[str, str] | None = None, preexec_fn=None) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``course_dir`` (with this Python), capturing its output."""
    full_env = {**os.environ, **(env or {})}
    # one numba cache per worker thread: parallel kernels filling one fresh cache can crash
    # (librosa compiles with cache=True); a thread runs one nbgrader at a time
    full_env.setdefault("NUMBA_CACHE_DIR", str(Path(course_dir) / ".cache" / f"numba-{threading.get_ident()}"))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "nbgrader", *args]
    # its own session, so that a timeout kills nbgrader *and* the kernel it started
    proc = subprocess.Popen(cmd, cwd=course_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, preexec_fn=preexec_fn, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def init_course(course_dir: Path, force: bool = False) -> Path:
    """Create (or refresh the source of) a grading folder and generate the assignment in its gradebook."""
    course_dir = Path(course_dir).resolve()
    course_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(GRADING / "nbgrader_config.py", course_dir / "nbgrader_config.py")
    dest = course_dir / "source"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(SOURCE, dest, ignore=shutil.ignore_patterns("loops", "*.pt", ".ipynb_checkpoints", "__pycache__"))
    args = ["generate_assignment", ASSIGNMENT, "--force"]
    result = nbgrader(args, course_dir)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment failed in {course_dir}:\n{result.stdout}\n{result.stderr}")
    return course_dir


def students_submitted(course_dir: Path) -> list[str]:
    """Student ids with a submission folder for HW2, sorted."""
    root = Path(course_dir) / "submitted"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / ASSIGNMENT).is_dir())


def ensure_students(course_dir: Path, students: list[str]) -> None:
    """Make sure every student id exists in the gradebook (nbgrader needs them before autograde)."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url(course_dir), course_id="music-synthesis") as gb:
        for sid in students:
            gb.update_or_create_student(sid)


def db_url(course_dir: Path) -> str:
    return "sqlite:///" + str(Path(course_dir).resolve() / "gradebook.db")
