"""The bubblewrap sandbox of student code: what it blocks, and what happens without it.

The attacker (:data:`grading.fake_students.ATTACK`) runs exactly as in a student kernel (cwd = its own
``autograded/<student>/hw2``) under :func:`grading.sandbox.sandboxed` with the arguments the
autograder uses; every write outside its folder and every connection must fail. Skipped (with
the reason) where bubblewrap is not installed: there the autograder refuses to run without
``--no-sandbox`` (tested here everywhere).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from grading import fake_students, sandbox
from grading.course import REPO

needs_bwrap = pytest.mark.skipif(not sandbox.available(), reason="bubblewrap (bwrap) is not installed or cannot "
                                 "create namespaces here: `sudo apt-get install bubblewrap`")


def _course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    for kind in ("submitted", "autograded"):
        for sid in ("victim", "attacker"):
            (course / kind / sid / "hw2").mkdir(parents=True)
            (course / kind / sid / "hw2" / "hw2.ipynb").write_text("{}")
    db = sqlite3.connect(course / "gradebook.db")
    db.execute("CREATE TABLE grade (id TEXT, auto_score REAL)")
    db.execute("INSERT INTO grade VALUES ('victim', 12.0)")
    db.commit()
    db.close()
    (course / ".probe_secret").write_text("s3cret")
    return course


@needs_bwrap
def test_the_sandbox_blocks_writes_outside_the_own_folder_and_the_network(tmp_path):
    course = _course(tmp_path)
    own = course / "autograded" / "attacker" / "hw2"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    cmd = sandbox.sandboxed([sys.executable, "-c", fake_students.ATTACK], writable=[own], hide=[course], chdir=own)
    before = sorted(p.relative_to(REPO) for p in (REPO / "course_lib").rglob("*.py"))
    proc = subprocess.run(cmd, cwd=own, env={**os.environ, "HW2_CANARY_PORT": str(port)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    attempts = json.loads((own / "attempts.json").read_text())
    assert attempts.pop("own_folder") == "done" and (own / "own_file.txt").read_text() == "mine"
    assert all(result != "done" for result in attempts.values()), attempts
    assert attempts["checkout"] == "OSError"  # read-only file system
    assert attempts["secret"] == "FileNotFoundError"  # the grading folder is hidden
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected
    listener.close()
    assert sorted(p.relative_to(REPO) for p in (REPO / "course_lib").rglob("*.py")) == before
    assert not list(course.rglob("attacker_was_here.txt"))
    assert sqlite3.connect(course / "gradebook.db").execute("SELECT auto_score FROM grade").fetchall() == [(12.0,)]


@needs_bwrap
def test_the_sandbox_hides_the_solutions_and_keeps_tmp_private(tmp_path):
    code = ("import os, pathlib; open('/tmp/x', 'w').write('x');"
            "print(sorted(os.listdir(pathlib.Path(r'%s'))))" % (REPO / "grading" / "source"))
    out = subprocess.run(sandbox.sandboxed([sys.executable, "-c", code]), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out
    assert not Path("/tmp/x").exists() or Path("/tmp/x").read_text() != "x"


def test_the_kernel_spec_runs_ipykernel_in_bwrap_over_ipc(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: "/usr/bin/bwrap")
    own = tmp_path / "course" / "autograded" / "s" / "hw2"
    env = sandbox.write_kernel_spec(tmp_path / "k", writable=[own], hide=[tmp_path / "course"])
    spec = json.loads((Path(env["JUPYTER_PATH"]) / "kernels" / sandbox.KERNEL_NAME / "kernel.json").read_text())
    argv = spec["argv"]
    assert argv[0] == "/usr/bin/bwrap" and "--unshare-all" in argv and argv[-4:-2] == ["-m", "ipykernel_launcher"]
    assert ["--bind", str(own.resolve()), str(own.resolve())] == argv[argv.index(str(own.resolve())) - 1:][:3]
    assert "--KernelManager.transport=ipc" in sandbox.nbgrader_args(tmp_path / "k")


def test_without_bubblewrap_autograding_is_refused_unless_no_sandbox(monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap.*--no-sandbox"):
        sandbox.require(True)
    assert sandbox.require(False) is False


def test_a_checkout_under_tmp_stays_visible_in_the_sandbox(tmp_path, monkeypatch):
    """The sandbox's private /tmp must not hide a checkout or venv that lives under /tmp (a CI clone)."""
    from grading import sandbox

    repo = tmp_path / "clone" / "grading"
    repo.mkdir(parents=True)
    monkeypatch.setattr(sandbox, "GRADING", repo)
    needed = sandbox._needed_under_tmp()
    assert str(repo.parent.resolve()) in needed
    assert all(p != "/tmp" and p.startswith("/tmp/") for p in needed)
    assert needed == sorted(needed, key=lambda p: p.count("/"))  # outer folders are bound first
