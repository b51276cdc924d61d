"""The sandbox every piece of student code runs in: bubblewrap (``bwrap``).

What a sandboxed process sees (:func:`bwrap_args`): the whole system and the checkout **read-only**,
a private empty ``/tmp``, no network (all namespaces unshared: net, pid, ipc, uts), the grading
folder hidden (an empty tmpfs over it: no gradebook, no other student, no secret), the instructor
source ``grading/source/`` (solutions) hidden, and write access only to the folders named
(the student's own ``autograded/<student>/hw2`` and, for the kernel, its connection-file folder).
The trusted probe (:mod:`grading.trusted_tests`) also hides the course library, so a solution cannot
hand in the reference implementation.

nbgrader stays outside (it writes the gradebook); only its kernel is sandboxed:
:func:`write_kernel_spec` writes a kernel spec whose ``argv`` starts with ``bwrap``, and the kernel
talks to nbgrader over ZMQ ``ipc`` sockets (files in the bound runtime folder), since it has no
network to reach TCP ports.

Install: ``sudo apt-get install bubblewrap`` (Debian / Ubuntu), ``dnf install bubblewrap``
(Fedora). Without it, :func:`require` refuses to autograde unless the TA passes ``--no-sandbox``.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable

from grading.course import GRADING

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install bubblewrap`)"
KERNEL_NAME = "hw2-sandbox"


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces on this machine."""


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    """The ``bwrap`` executable, if installed and able to start a sandbox here (checked once)."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    try:
        ok = subprocess.run([path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
                             "--proc", "/proc", "--", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return path if ok else None


def available() -> bool:
    """True when student code can be sandboxed on this machine."""
    return bwrap_path() is not None


def require(sandbox: bool) -> bool:
    """``sandbox`` if bubblewrap works; raises :class:`SandboxUnavailable` when it is asked for and missing."""
    if sandbox and not available():
        raise SandboxUnavailable("bubblewrap (bwrap) is not available, so student code cannot be sandboxed: "
                                 f"{INSTALL_HINT}, or pass --no-sandbox (then the trusted code, data and "
                                 "every student's files are checksummed and verified before scoring)")
    return sandbox


def library_dirs() -> list[Path]:
    """Where ``course_lib`` is imported from (hidden from the probe)."""
    import importlib.util

    spec = importlib.util.find_spec("course_lib")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p).resolve() for p in spec.submodule_search_locations]


def _data_dir() -> str:
    env = os.environ.get("COURSE_DATA_DIR")
    return str(Path(env).expanduser() if env else Path.home() / ".cache" / "course_lib")


def _needed_under_tmp() -> list[str]:
    """The checkout, the Python environment and the data cache when they live under ``/tmp``, which the
    sandbox replaces by an empty private tmpfs (outermost first, so that nested binds come later)."""
    tmp = Path("/tmp").resolve()
    candidates = [GRADING.parent, Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent,
                  Path(_data_dir())]
    out: list[str] = []
    for c in candidates:
        r = c.resolve()
        if r != tmp and tmp in r.parents and r.exists() and str(r) not in out:
            out.append(str(r))
    return sorted(out, key=lambda p: p.count("/"))


def bwrap_args(writable: Iterable[Path] = (), readonly: Iterable[Path] = (), hide: Iterable[Path] = (),
               hide_library: bool = False, chdir: Path | None = None) -> list[str]:
    """The ``bwrap ... --`` prefix of a sandboxed command (see the module docstring)."""
    path = bwrap_path()
    if path is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not available: {INSTALL_HINT}")
    args = [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp"]
    for p in _needed_under_tmp():  # a checkout or venv under /tmp (a CI clone) stays visible, read-only
        args += ["--ro-bind", p, p]
    hidden = [GRADING / "source", *hide] + (library_dirs() if hide_library else [])
    for p in hidden:
        if Path(p).exists():
            args += ["--tmpfs", str(Path(p).resolve())]
    for p in readonly:
        args += ["--ro-bind", str(Path(p).resolve()), str(Path(p).resolve())]
    for p in writable:
        args += ["--bind", str(Path(p).resolve()), str(Path(p).resolve())]
    for p in hidden:  # after the binds inside them: hidden folders are empty *and* read-only
        if Path(p).exists():
            args += ["--remount-ro", str(Path(p).resolve())]
    env = {"HOME": "/tmp", "IPYTHONDIR": "/tmp/.ipython", "MPLCONFIGDIR": "/tmp/.matplotlib",
           "NUMBA_CACHE_DIR": "/tmp/.numba", "XDG_CACHE_HOME": "/tmp/.cache", "COURSE_DATA_DIR": _data_dir(),
           "JUPYTER_RUNTIME_DIR": os.environ.get("JUPYTER_RUNTIME_DIR", "/tmp/.jupyter")}
    for k, v in env.items():
        args += ["--setenv", k, v]
    if chdir is not None:
        args += ["--chdir", str(Path(chdir).resolve())]
    return args + ["--"]


def sandboxed(cmd: list[str], **kwargs) -> list[str]:
    """``cmd`` run under bubblewrap with :func:`bwrap_args` ``(**kwargs)``."""
    return bwrap_args(**kwargs) + list(cmd)


def limits(memory_mb: int | None = None, file_mb: int = 512) -> Callable[[], None]:
    """A ``preexec_fn`` setting the address-space limit (``memory_mb``) and the largest file a process may write."""
    def apply() -> None:
        if memory_mb:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))
    return apply


def write_kernel_spec(folder: Path, writable: Iterable[Path], hide: Iterable[Path]) -> dict[str, str]:
    """A sandboxed IPython kernel spec under ``folder``; returns the environment that makes Jupyter use it.

    ``folder/runtime`` (the connection file and the ipc sockets) is bound writable into the sandbox.
    Pass :func:`nbgrader_args` ``(folder)`` to nbgrader.
    """
    folder = Path(folder).resolve()
    runtime = folder / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    spec_dir = folder / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    prefix = bwrap_args(writable=[*writable, runtime], hide=hide)
    prefix[prefix.index("JUPYTER_RUNTIME_DIR") + 1] = str(runtime)
    # the kernel is pid 1 of its own pid namespace: no parent to poll (bwrap kills it with its parent)
    prefix[-1:-1] = ["--as-pid-1", "--unsetenv", "JPY_PARENT_PID"]
    spec = {"argv": prefix + [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "HW2 (sandboxed)", "language": "python", "interrupt_mode": "signal"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return {"JUPYTER_PATH": str(folder / "jupyter"), "JUPYTER_RUNTIME_DIR": str(runtime)}


def nbgrader_args(folder: Path) -> list[str]:
    """nbgrader options that run the kernel of :func:`write_kernel_spec` ``(folder)`` over ipc sockets."""
    runtime = Path(folder).resolve() / "runtime"
    return [f"--Execute.kernel_name={KERNEL_NAME}", "--KernelManager.transport=ipc",
            f"--KernelManager.connection_file={runtime / 'kernel.json'}"]
