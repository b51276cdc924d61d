"""Shared test setup: one math thread per test process.

``make test`` runs two pytest workers on two cores; tiny tensors are fastest on one thread and
oversubscribed cores make torch many times slower.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _private_numba_cache() -> None:
    """Give each pytest-xdist worker its own numba cache.

    librosa compiles numba functions with ``cache=True``; two workers filling one fresh cache
    directory at the same time can read a half-written file and crash (a segfault seen on a
    fresh virtual environment). Set before any test module imports librosa.
    """
    import os
    import tempfile

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "NUMBA_CACHE_DIR" not in os.environ:
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"course-numba-cache-{worker}")


_private_numba_cache()


@pytest.fixture
def torch_reference(monkeypatch):
    """``torch_reference(fn)``: ``fn()`` with the compiled kernels switched off (``COURSE_NO_NUMBA=1``), i.e.
    through the torch reference path; the kernels are switched back on afterwards."""
    from course_lib.synth import kernels

    def run(fn):
        monkeypatch.setenv("COURSE_NO_NUMBA", "1")
        try:
            assert not kernels.available()
            return fn()
        finally:
            monkeypatch.delenv("COURSE_NO_NUMBA")

    return run
