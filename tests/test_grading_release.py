"""The committed student release hw2/ is exactly what nbgrader generates from the instructor source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grading.course import REPO, init_course

LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "reference_modconv",
                "course_lib.models.stylegan2 import modulated_conv2d")


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory) -> Path:
    course_dir = init_course(tmp_path_factory.mktemp("course"))
    return course_dir / "release" / "hw2"


def cells(path: Path) -> list[tuple[str, str, dict]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(c["cell_type"], "".join(c["source"]), c["metadata"].get("nbgrader", {})) for c in nb["cells"]]


def test_committed_release_equals_a_fresh_generation(fresh_release):
    committed = REPO / "hw2"
    fresh_files = sorted(p.relative_to(fresh_release) for p in fresh_release.rglob("*") if p.is_file())
    committed_files = sorted(p.relative_to(committed) for p in committed.rglob("*")
                             if p.is_file() and p.parts[len(committed.parts)] not in ("loops", "regenerated")
                             and p.name != "checkpoint.pt")
    assert committed_files == fresh_files, "run `python -m grading release` and commit hw2/"
    for rel in fresh_files:
        if rel.suffix == ".ipynb":
            assert cells(committed / rel) == cells(fresh_release / rel), f"{rel} differs from a fresh release"
        else:
            assert (committed / rel).read_bytes() == (fresh_release / rel).read_bytes(), rel


def test_release_leaks_no_solution_or_hidden_test(fresh_release):
    source = cells(REPO / "grading" / "source" / "hw2" / "hw2.ipynb")
    released = cells(REPO / "hw2" / "hw2.ipynb")
    assert [m.get("grade_id") for _, _, m in source] == [m.get("grade_id") for _, _, m in released]
    for kind, text, meta in released:
        for marker in LEAK_MARKERS:
            assert marker not in text, f"{meta.get('grade_id')}: '{marker}' leaked into the release"
    stubs = [m["grade_id"] for k, t, m in released if "YOUR CODE HERE" in t or "YOUR ANSWER HERE" in t]
    assert stubs == ["modconv", "mapping", "r1", "export", "written"]
    points = {m["grade_id"]: m.get("points", 0) for _, _, m in released if m.get("grade") or m.get("task")}
    assert sum(points.values()) == 100 and points["loop_quality"] == 40
