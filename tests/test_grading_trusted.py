"""Test cells are decided outside the student's kernel: hiding a failure or borrowing the library earns nothing.

Each fake student (:mod:`grading.fake_students`) is probed exactly as the autograder does (in the
bubblewrap sandbox where available) and decided by the trusted process; the instructor solution
must pass every part, every wrong or borrowed part must fail, every untouched part must pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from grading import fake_students, sandbox, trusted_tests

SANDBOX = sandbox.available()


def _grade(tmp_path: Path, name: str, edit) -> dict[str, trusted_tests.PartResult]:
    nb = fake_students.write_notebook(tmp_path / name / "hw2.ipynb", edit)
    return trusted_tests.trusted_grade(nb, tmp_path / name / "probe", seed=7, sandbox=SANDBOX, hide=[tmp_path / name])


def test_the_instructor_solution_passes_every_part(tmp_path):
    results = _grade(tmp_path, "honest", None)
    assert {p: r.passed for p, r in results.items()} == {p: True for p in trusted_tests.PARTS}, results


@pytest.mark.parametrize("name", sorted(fake_students.FAKES))
def test_a_dishonest_notebook_earns_nothing_for_wrong_or_borrowed_code(tmp_path, name):
    results = _grade(tmp_path, name, fake_students.FAKES[name])
    passed = {p for p, r in results.items() if r.passed}
    assert passed == fake_students.EXPECTED_PASSED[name], {p: r.reason for p, r in results.items()}
    if name == "hand_in_the_library":
        assert "course_lib.models.stylegan2" in results["modconv"].reason
        assert "importlib" in results["r1"].reason
        assert "ImportError" in results["mapping"].reason or "ModuleNotFoundError" in results["mapping"].reason


def test_students_check_shows_the_release_stubs_failing_and_why():
    """What ``python -m grading check hw2/`` prints for the untouched release."""
    from grading.course import REPO

    lines = trusted_tests.check_lines(REPO / "hw2" / "hw2.ipynb")
    assert [line.split(":")[0] for line in lines[:4]] == [f"code part {p}" for p in trusted_tests.PARTS]
    assert all("FAILS: raised NotImplementedError" in line for line in lines[:4])


@pytest.mark.parametrize("source, why", [
    ("from course_lib.models.stylegan2 import modulated_conv2d", "imports course_lib.models.stylegan2"),
    ("import course_lib.models.stylegan2 as sg\nmodulated_conv2d = sg.modulated_conv2d", "imports course_lib.models.stylegan2"),
    ("import importlib\nm = importlib.import_module('x')", "imports importlib"),
    ("r1_penalty = __import__('x').r1_penalty", "uses __import__"),
    ("exec(open('f').read())", "uses exec"),
    ("name = 'course_lib.models'", "names 'course_lib.models'"),
    ("from course_lib import hw2", "imports course_lib"),
])
def test_using_the_library_is_found_in_the_solution_source(source, why):
    assert trusted_tests.library_use(source) == why


def test_honest_solution_cells_are_not_flagged():
    nb = json.loads(fake_students.SOURCE_NB.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("solution") and cell["cell_type"] == "code":
            assert trusted_tests.library_use("".join(cell["source"])) is None, cell["metadata"]["nbgrader"]["grade_id"]
    assert trusted_tests.library_use("y = torch.compile(f)\nfor m in self.modules(): pass") is None


def test_results_are_read_as_plain_arrays_only(tmp_path):
    """A result file holding a pickle (code run on load) fails its part instead of being loaded."""
    inputs = trusted_tests.write_inputs(tmp_path / "inputs", seed=1)
    out = tmp_path / "out" / "r1"
    out.mkdir(parents=True)
    (out / "meta.json").write_text("{}")
    np.save(out / "linear.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    nb = fake_students.write_notebook(tmp_path / "hw2.ipynb")
    results = trusted_tests.decide(nb, inputs, tmp_path / "out")
    assert not results["r1"].passed and "unreadable" in results["r1"].reason
    assert not results["modconv"].passed and "did not finish" in results["modconv"].reason


def test_inputs_depend_on_a_secret_of_the_grading_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert trusted_tests.probe_seed(a, "s1") == trusted_tests.probe_seed(a, "s1")  # re-runs are identical
    assert trusted_tests.probe_seed(a, "s1") != trusted_tests.probe_seed(a, "s2")
    assert trusted_tests.probe_seed(a, "s1") != trusted_tests.probe_seed(b, "s1")
