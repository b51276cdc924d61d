"""``--no-sandbox``: checksums of trusted code, data and other students' files stop grading when changed."""

from __future__ import annotations

import pytest

from grading import integrity


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A grading folder with two students, and the trusted code and data cache moved to tmp copies."""
    code, data = tmp_path / "repo", tmp_path / "data"
    for folder in (code / "course_lib", code / "grading", data):
        folder.mkdir(parents=True)
    (code / "course_lib" / "stylegan2.py").write_text("def modulated_conv2d(): ...\n")
    (code / "grading" / "score.py").write_text("def score(): ...\n")
    (data / "loops-1.pt").write_bytes(b"\x00" * 100)
    monkeypatch.setattr(integrity, "REPO", code)
    monkeypatch.setattr(integrity, "GRADING", code / "grading")
    monkeypatch.setenv("COURSE_DATA_DIR", str(data))
    course = tmp_path / "course"
    for kind in ("submitted", "autograded"):
        for sid in ("alice", "bob"):
            (course / kind / sid / "hw2").mkdir(parents=True)
            (course / kind / sid / "hw2" / "hw2.ipynb").write_text(f"{kind} {sid}")
    return course, code, data


def test_changes_in_the_students_own_autograded_folder_are_fine(course):
    course_dir, _, _ = course
    before = integrity.take(course_dir)
    (course_dir / "autograded" / "bob" / "hw2" / "regenerated.wav").write_bytes(b"RIFF")
    (course_dir / "autograded" / "bob" / "hw2" / "hw2.ipynb").write_text("executed")
    after = integrity.verify(course_dir, before, "bob", data=True)
    assert after.data == before.data


@pytest.mark.parametrize("target, what", [
    ("submitted/alice/hw2/hw2.ipynb", "alice's file"),
    ("autograded/alice/hw2/extra.txt", "alice's file"),
    ("submitted/bob/hw2/hw2.ipynb", "bob's submitted file"),
    ("code:course_lib/stylegan2.py", "trusted file"),
    ("code:grading/new_module.py", "trusted file"),
])
def test_any_other_change_stops_grading_and_names_the_file(course, target, what):
    course_dir, code, _ = course
    before = integrity.take(course_dir)
    path = code / target[5:] if target.startswith("code:") else course_dir / target
    path.write_text("changed by bob's notebook")
    with pytest.raises(integrity.IntegrityError, match=f"autograding 'bob' without a sandbox.*{what} .*{path.name}"):
        integrity.verify(course_dir, before, "bob")


def test_the_data_cache_is_checked_when_asked(course):
    course_dir, _, data = course
    before = integrity.take(course_dir, data=True)
    (data / "loops-1.pt").write_bytes(b"\x01" * 100)
    integrity.verify(course_dir, before, "bob")  # per student: data not re-hashed (it is big)
    with pytest.raises(integrity.IntegrityError, match="data file .*loops-1.pt"):
        integrity.verify(course_dir, before, "bob", data=True)
