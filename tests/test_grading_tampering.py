"""The autograder's scan for notebooks that hide failing tests from nbgrader (error reporting replaced)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grading.autograde import tampering_cell

ROOT = Path(__file__).resolve().parents[1]


def _notebook(tmp_path: Path, *sources: str) -> Path:
    cells = [{"cell_type": "code", "source": src, "metadata": {"nbgrader": {"grade_id": f"cell-{i}"}},
              "outputs": [], "execution_count": None} for i, src in enumerate(sources)]
    path = tmp_path / "hw2.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    return path


@pytest.mark.parametrize("source, what", [
    ("get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)", "set_custom_exc"),
    ("import sys\nsys.excepthook = lambda *a: None", "sys.excepthook"),
    ("ip = get_ipython()\nip.showtraceback = lambda *a, **k: None", "showtraceback"),
    ("import sys, io\nsys.stderr = io.StringIO()", "sys.stderr"),
    ("import sys, io\nsetattr(sys, 'stderr', io.StringIO())", "sys.stderr"),
    ("from contextlib import redirect_stderr", "redirect_stderr"),
])
def test_hiding_errors_is_found_and_named(tmp_path, source, what):
    nb = _notebook(tmp_path, "import numpy as np", source)
    assert tampering_cell(nb) == ("cell-1", what)


def test_ordinary_code_and_the_released_notebooks_pass():
    for path in (ROOT / "hw2" / "hw2.ipynb", ROOT / "grading" / "source" / "hw2" / "hw2.ipynb"):
        assert tampering_cell(path) is None, path


def test_writing_to_stderr_is_not_tampering(tmp_path):
    nb = _notebook(tmp_path, "import sys\nprint('training...', file=sys.stderr)\nx = sys.stderr.isatty()")
    assert tampering_cell(nb) is None
