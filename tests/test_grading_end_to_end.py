"""The TA's whole pipeline on a FAST demo class: each fake student gets its expected grade.

collect (from an LMS zip) -> nbgrader autograde (time and memory limits) -> trusted scoring ->
gradebook -> feedback -> CSV export; then a re-run that must change nothing, and a TA override
that must survive it. Thresholds for this small class come from a calibration on real loops
done here (a real set other than the students').
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from grading.sandbox import available as sandbox_available

N_LOOPS = 32
pytestmark = pytest.mark.slow
SANDBOX = sandbox_available()  # without bubblewrap the class is graded with --no-sandbox (and no attacker)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hw2")
    env = {"HW2_DATA_PRESET": "fast", "HW2_CELL_TIMEOUT": "25", "HW2_MEMORY_MB": "6000",
           "HW2_REFERENCE": str(tmp / "reference.npz"), "HW2_THRESHOLDS": str(tmp / "thresholds.toml")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from course_lib.data.datasets import LoopDataset
        from course_lib.metrics.evaluate import ReferenceSet, evaluate
        from grading import reference
        from grading.demo import build_demo_class, shuffled
        from grading.pipeline import run_all

        reference.build_reference(Path(env["HW2_REFERENCE"]), preset="fast")
        calib = shuffled(LoopDataset(split="all", preset="fast", seed=3, precompute_mel=False).audio)[:N_LOOPS]
        real = evaluate(calib, ReferenceSet.load(env["HW2_REFERENCE"]), device="cpu")
        fad_top, is_top = 2.0 * real.fad, 0.6 * real.is_mean
        Path(env["HW2_THRESHOLDS"]).write_text(f"""
[submission]
n_loops = {N_LOOPS}
sample_rate = 16000
seconds = 2.0
channels = 1
silence_rms_db = -60.0
clip_level = 0.999
max_clipped_fraction = 0.01
max_file_bytes = 4000000
min_usable = 10
[dedupe]
waveform_ncc = 0.95
logmel_rms_distance = 0.08
[memorisation]
waveform_ncc = 0.95
logmel_rms_distance = 0.08
max_shift_frames = 16
disguised_logmel_rms_distance = 0.038
[points]
quality_cell = "loop_quality"
quality_max = 40
fad = [ {{ max = {fad_top}, points = 25 }}, {{ max = {1.5 * fad_top}, points = 10 }} ]
is = [ {{ min = {is_top}, points = 15 }}, {{ min = {0.75 * is_top}, points = 5 }} ]
""")
        demo = build_demo_class(tmp / "lms", N_LOOPS, preset="fast", attacker=SANDBOX)
        course_dir = tmp / "course"
        outcomes = run_all(course_dir, demo.download, jobs=2, sandbox=SANDBOX)
        yield course_dir, {o.student: o for o in outcomes}, real
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def scores(course_dir):
    from grading import gradebook

    return gradebook.student_scores(course_dir)


def report(course_dir, student):
    from grading.score import ScoreReport, score_path

    return ScoreReport.from_json(score_path(course_dir, student).read_text())


def test_real_loops_handed_in_with_a_checkpoint_get_the_checkpoints_grade_and_a_flag(graded_class):
    course_dir, _, _ = graded_class
    s = scores(course_dir)["ref_real"]
    assert s["code"] == 40
    rep, own = report(course_dir, "ref_real"), report(course_dir, "ref_solution")
    # the graded loops are generated from checkpoint.pt: the real WAVs handed in change nothing
    assert rep.fad == own.fad and rep.points == own.points == s["quality"]
    assert rep.handed_in["valid"] == N_LOOPS and any(f.startswith("preview mismatch") for f in rep.ta_flags)


def test_reference_solution_code_is_full_and_quality_follows_the_thresholds(graded_class):
    from grading.policy import load_policy

    course_dir, _, _ = graded_class
    s, rep, policy = scores(course_dir)["ref_solution"], report(course_dir, "ref_solution"), load_policy()
    assert s["code"] == 40
    assert rep.fad is not None and s["quality"] == pytest.approx(
        (policy.fad_points(rep.fad) + policy.is_points(rep.inception_score)) * rep.usable_factor)


def test_regenerated_loops_are_compared_with_the_handed_in_ones(graded_class):
    course_dir, _, _ = graded_class
    # ref_solution handed in the loops its checkpoint generates; ref_real handed in real loops with the same checkpoint
    made = report(course_dir, "ref_solution").reproduction
    assert made["compared"] == 8 and made["reproduced"] == 8 and min(made["snr_db"]) >= 30
    assert report(course_dir, "ref_solution").ta_flags == []
    other = report(course_dir, "ref_real").reproduction
    assert other["compared"] == 8 and other["reproduced"] == 0
    assert report(course_dir, "blank").reproduction["compared"] == 0  # nothing generated without a checkpoint
    page = (course_dir / "feedback" / "ref_real" / "hw2" / "report.html").read_text(encoding="utf-8")
    assert "Reproducibility" in page and "0 of the first 8 loops" in page


def test_blank_submission_gets_zero_and_a_clear_message(graded_class):
    course_dir, _, _ = graded_class
    s, rep = scores(course_dir)["blank"], report(course_dir, "blank")
    assert s["code"] == 0 and s["quality"] == 0
    assert "no checkpoint.pt handed in" in rep.checkpoint_problem
    assert any("no loops/ folder" in p for p in rep.handed_in["problems"])


def test_handed_in_collapse_and_training_copies_are_not_graded_but_flagged(graded_class):
    # what the generator makes is graded (collapse and copies of generated loops: test_calibration_table...)
    course_dir, _, _ = graded_class
    own = report(course_dir, "ref_solution")
    for student in ("collapse", "copycat"):
        rep = report(course_dir, student)
        assert rep.points == own.points and rep.fad == own.fad and not rep.memorised
        assert rep.reproduction["reproduced"] == 0 and any(f.startswith("preview mismatch") for f in rep.ta_flags)


def test_cheating_in_the_kernel_changes_nothing(graded_class):
    course_dir, _, real = graded_class
    s, rep = scores(course_dir)["cheater"], report(course_dir, "cheater")
    assert s["code"] == 40  # nbgrader restored the emptied test cells; the solutions pass them honestly
    # the trusted scorer measured the noise loops, whatever the kernel patched: far from real, no points
    assert rep.fad is not None and rep.fad > 3.0 * real.fad and rep.inception_score < 0.75 * real.is_mean
    assert rep.fad_points == 0 and rep.is_points == 0 and s["quality"] == 0


def test_an_endless_cell_costs_only_its_points(graded_class):
    course_dir, outcomes, _ = graded_class
    s, rep = scores(course_dir)["hog_time"], report(course_dir, "hog_time")
    assert s["code"] == 28  # modconv (12) timed out; mapping, r1 and export still pass
    assert rep.points == 0 and "no checkpoint.pt" in rep.checkpoint_problem
    assert any("silent" in p for p in rep.handed_in["problems"])


def test_exhausting_memory_zeroes_the_code_cells_deterministically(graded_class):
    from grading.autograde import load_result

    course_dir, outcomes, _ = graded_class
    assert scores(course_dir)["hog_memory"]["code"] == 0
    message = load_result(course_dir, "hog_memory").message
    assert "memory" in message
    assert "memory" in (course_dir / "feedback" / "hog_memory" / "hw2" / "report.html").read_text(encoding="utf-8")


def test_odd_id_symlink_and_corrupt_files(graded_class):
    course_dir, outcomes, _ = graded_class
    sid = "Zoe_O_Brien"
    assert sid in outcomes
    rep = report(course_dir, sid)
    assert any("not unpacked: symlink" in p for p in rep.problems)
    text = " ".join(rep.handed_in["problems"])
    assert "not a readable WAV" in text and "0.030 s" in text and rep.handed_in["valid"] == N_LOOPS - 3
    assert rep.points == 0 and "no checkpoint.pt" in rep.checkpoint_problem
    assert not (course_dir / "submitted" / sid / "hw2" / "loops" / "loop_000.wav").exists()  # never extracted


def test_feedback_and_export(graded_class):
    course_dir, outcomes, _ = graded_class
    for student in outcomes:
        page = (course_dir / "feedback" / student / "hw2" / "report.html").read_text(encoding="utf-8")
        assert "Loop quality" in page
    page = (course_dir / "feedback" / "ref_solution" / "hw2" / "report.html").read_text(encoding="utf-8")
    assert "generated the 32 graded loops" in page and "graded (generated) loops" in page
    rows = list(csv.DictReader(open(course_dir / "grades.csv")))
    assert {r["student"] for r in rows} == set(outcomes)
    by_id = {r["student"]: r for r in rows}
    assert float(by_id["ref_real"]["total"]) == 40.0 + report(course_dir, "ref_solution").points
    assert by_id["ref_solution"]["ta_review"] == "" and "preview mismatch" in by_id["ref_real"]["ta_review"]
    assert "scored ref_real" in (course_dir / "logs" / "score.log").read_text(encoding="utf-8")


def test_rerun_changes_nothing_and_keeps_a_ta_override(graded_class):
    from nbgrader.api import Gradebook

    from grading.course import db_url
    from grading.pipeline import run_all, run_scoring

    course_dir, outcomes, _ = graded_class
    before = scores(course_dir)
    with Gradebook(db_url(course_dir), course_id="music-synthesis") as gb:
        grade = gb.find_grade("loop_quality", "hw2", "hw2", "collapse")
        grade.manual_score = 12.5  # a TA decided otherwise in formgrader
        gb.db.commit()
    reports_before = {s: json.loads(report(course_dir, s).to_json()) for s in outcomes}
    run_all(course_dir, None, jobs=2, sandbox=SANDBOX)
    after = scores(course_dir)
    assert after["collapse"]["quality"] == 12.5
    assert {s: v for s, v in after.items() if s != "collapse"} == {s: v for s, v in before.items() if s != "collapse"}
    rescored = run_scoring(course_dir, sorted(outcomes), force=True)
    for s, rep in rescored.items():
        again = json.loads(rep.to_json())
        again.pop("seconds"), reports_before[s].pop("seconds")
        again["checkpoint"].pop("generation_seconds", None), reports_before[s]["checkpoint"].pop("generation_seconds", None)
        assert again == reports_before[s], f"{s}: scoring is not deterministic"


def test_calibration_table_separates_real_loops_from_broken_sets(graded_class, tmp_path):
    from grading.calibrate import CEILING, RAW_REAL, UNTRAINED, calibrate

    md = calibrate(tmp_path / "calibration", checkpoints={}, preset="fast")
    table = json.loads((md.parent / "calibration.json").read_text())
    rows = {r["condition"]: r for r in table["rows"]}
    assert rows[RAW_REAL]["graded"]["points"] == 40  # this class's bands are anchored on raw real loops
    assert rows[CEILING]["fad"] is not None and UNTRAINED in rows
    copied = "training loops copied (gain, noise, shift)"
    for broken in ("white noise", "silence", "one loop repeated", copied, "training loops copied, polarity inverted",
                   "training loops copied, low-pass 3 kHz"):
        assert rows[broken]["graded"]["points"] == 0, broken
    for sped in ("training loops copied, 3 % faster", "training loops copied, 3 % slower"):  # the weak spot
        assert rows[sped]["graded"]["memorised"] >= N_LOOPS // 2, sped
    assert rows["one loop repeated"]["graded"]["duplicates"] == N_LOOPS - 1
    assert rows[copied]["graded"]["memorised"] == N_LOOPS
    assert rows["training loops copied, polarity inverted"]["graded"]["memorised"] == N_LOOPS
    assert rows["white noise"]["fad"] > 3 * rows[RAW_REAL]["fad"]
    assert len(table["checks"]) == 5 and (md.parent / "calibration.png").stat().st_size > 0


def test_a_newer_submission_is_collected_and_regraded(graded_class, tmp_path):
    import zipfile

    from grading.demo import SOURCE_NB
    from grading.pipeline import run_all

    course_dir, _, _ = graded_class
    assert scores(course_dir)["blank"]["code"] == 0
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("hw2/hw2.ipynb", SOURCE_NB.read_bytes())  # the student finished the code after all
    download = tmp_path / "late.zip"
    with zipfile.ZipFile(download, "w") as z:
        z.write(inner, "blank__20261124T090000.zip")
    run_all(course_dir, download, jobs=1, sandbox=SANDBOX)
    assert scores(course_dir)["blank"]["code"] == 40


# ---- dishonest students (grading.fake_students): decided outside the kernel, sandboxed

def test_failing_tests_hidden_from_nbgrader_earn_no_code_points(graded_class):
    from grading.autograde import load_result

    course_dir, _, _ = graded_class
    hider = load_result(course_dir, "hider")
    # nbgrader's kernel was fooled: every (wrong) part passed there ...
    assert hider.nbgrader_scores == {"test_modconv": 12, "test_mapping": 10, "test_r1": 10, "test_export": 8}
    # ... the trusted decisions count
    assert scores(course_dir)["hider"]["code"] == 0
    assert not any(t["passed"] for t in hider.tests.values()) and "differs from the reference" in hider.message
    patcher = load_result(course_dir, "hider_patch")
    assert patcher.nbgrader_scores == {"test_modconv": 12, "test_mapping": 10, "test_r1": 10, "test_export": 8}
    assert scores(course_dir)["hider_patch"]["code"] == 8  # only its (correct) export_loops


def test_handing_in_the_library_scores_zero_for_those_parts(graded_class):
    from grading.autograde import load_result

    course_dir, _, _ = graded_class
    assert scores(course_dir)["borrower"]["code"] == 8  # only its own export_loops
    tests = load_result(course_dir, "borrower").tests
    assert "course_lib" in tests["modconv"]["reason"] and "importlib" in tests["r1"]["reason"]
    assert not tests["mapping"]["passed"] and tests["export"]["passed"]


@pytest.mark.skipif(not SANDBOX, reason="bubblewrap (bwrap) is not installed: the attacker is only run sandboxed")
def test_a_notebook_attacking_the_grader_changes_nothing(graded_class):
    from grading.course import REPO

    course_dir, _, _ = graded_class
    own = course_dir / "autograded" / "attacker" / "hw2"
    attempts = json.loads((own / "attempts.json").read_text())
    assert attempts.pop("own_folder") == "done"
    assert attempts and all(result != "done" for result in attempts.values()), attempts
    assert not list(REPO.glob("*/attacker_was_here*")) and not list(course_dir.rglob("attacker_was_here*"))
    s = scores(course_dir)
    assert s["attacker"]["code"] == 40  # its solutions are right; nothing it tried changed a grade
    assert s["ref_solution"]["code"] == 40 and s["cheater"]["code"] == 40


def test_without_the_sandbox_a_write_into_another_students_folder_stops_grading(graded_class, tmp_path):
    import shutil

    from grading import fake_students
    from grading.integrity import IntegrityError
    from grading.pipeline import run_autograde

    course_dir, _, _ = graded_class
    copy = tmp_path / "course"
    shutil.copytree(course_dir, copy, ignore=shutil.ignore_patterns(".cache", "feedback", "probe", ".sandbox"))
    (copy / "nbgrader_config.py").write_text((course_dir / "nbgrader_config.py").read_text())
    evil = copy / "submitted" / "evil" / "hw2"
    evil.mkdir(parents=True)
    fake_students.write_notebook(evil / "hw2.ipynb", fake_students.write_into_other_students)
    from grading import course

    course.ensure_students(copy, ["evil"])
    with pytest.raises(IntegrityError, match="while autograding 'evil' without a sandbox.*'s file .*/evil.txt"):
        run_autograde(copy, ["evil"], force=True, jobs=2, sandbox=False)
    assert (copy / "submitted" / "ref_real" / "hw2" / "evil.txt").is_file()  # unsandboxed, the write happened
