"""grading.collect / validate / similarity / policy: fake students with known outcomes."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from grading import collect, similarity, validate
from grading.policy import load_policy

POLICY = load_policy()
SUB = POLICY.submission


def inner_zip(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buf.getvalue()


def lms_zip(path: Path, submissions: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in submissions.items():
            z.writestr(name, data)
    return path


def wav_bytes(x: np.ndarray, sr: int = SUB.sample_rate, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def loop(seed: int, samples: int = SUB.samples) -> np.ndarray:
    """A drum-like loop: decaying noise bursts on a random subset of 16th steps."""
    rng = np.random.default_rng(seed)
    x = np.zeros(samples, np.float32)
    step = samples // 16
    env = np.exp(-np.arange(step) / (0.02 * SUB.sample_rate)).astype(np.float32)
    for s in rng.choice(16, size=6, replace=False):
        x[s * step:(s + 1) * step] += 0.5 * env * rng.standard_normal(step).astype(np.float32)
    return x


def test_collect_latest_wins_and_refuses_traversal_symlinks_and_odd_ids(tmp_path):
    good = inner_zip({"hw2/hw2.ipynb": b"{}", "hw2/loops/a.wav": wav_bytes(loop(0))})
    newer = inner_zip({"hw2.ipynb": b'{"v": 2}'})
    download = lms_zip(tmp_path / "lms.zip", {
        "alice__20261101T100000.zip": good,
        "alice__20261102T100000.zip": newer,
        "bob.zip": inner_zip({"../../evil.txt": b"x"}),
        "carol.zip": inner_zip({"hw2.ipynb": b"{}"}, symlinks={"loops/x.wav": "/etc/passwd"}),
        "Zoë O'Brien.zip": good,
        "notes.txt": b"not a submission",
    })
    log = collect.collect(download, tmp_path / "course")
    submitted = tmp_path / "course" / "submitted"
    assert (submitted / "alice" / "hw2" / "hw2.ipynb").read_bytes() == b'{"v": 2}'
    assert not (submitted / "alice" / "hw2" / "loops").exists()
    assert any("older submission" in n for n in log.notes)
    assert (submitted / "bob").exists() and any("bob: skipped path traversal" in n for n in log.notes)
    assert (submitted / "carol" / "hw2" / "hw2.ipynb").exists()
    assert not (submitted / "carol" / "hw2" / "loops" / "x.wav").exists(), "a symlink was extracted"
    assert any("carol: skipped symlink" in n for n in log.notes)
    assert (submitted / "Zoe_O_Brien" / "hw2" / "loops" / "a.wav").exists()
    assert any("notes.txt" in r for r in log.refused)
    assert not list(tmp_path.rglob("evil.txt"))
    assert (tmp_path / "course" / "logs" / "collect.json").exists()


def test_collect_skips_oversized_files_and_refuses_zip_bombs(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "MAX_FILE_BYTES", 1000)
    monkeypatch.setattr(collect, "MAX_SUBMISSION_BYTES", 20_000)
    download = lms_zip(tmp_path / "lms.zip", {
        "dave.zip": inner_zip({"hw2/big.bin": b"0" * 5000, "hw2/hw2.ipynb": b"{}"}),
        "erin.zip": inner_zip({f"hw2/f{i}.bin": b"0" * 900 for i in range(30)}),  # 27 kB unpacked, tiny zipped
    })
    log = collect.collect(download, tmp_path / "course")
    dave = tmp_path / "course" / "submitted" / "dave" / "hw2"
    assert (dave / "hw2.ipynb").exists() and not (dave / "big.bin").exists()
    assert any("dave: skipped file 'hw2/big.bin'" in n for n in log.notes)
    assert not (tmp_path / "course" / "submitted" / "erin").exists()
    assert any("erin.zip: unpacks to" in r for r in log.refused)


def write_folder(folder: Path, clips: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in clips.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("name,data,reason", [
    ("rate.wav", wav_bytes(loop(1)[:22050], sr=22050), "sample rate"),
    ("stereo.wav", wav_bytes(np.stack([loop(1), loop(2)], 1)), "channels"),
    ("short.wav", wav_bytes(loop(1)[:16000]), "samples"),
    ("nan.wav", wav_bytes(np.where(np.arange(SUB.samples) == 5, np.nan, loop(1)).astype(np.float32), subtype="FLOAT"), "NaN"),
    ("silent.wav", wav_bytes(np.zeros(SUB.samples, np.float32)), "silent"),
    ("clipped.wav", wav_bytes(np.sign(loop(1) + 1e-3).astype(np.float32)), "clipped"),
    ("text.wav", b"I am not audio" * 100, "not a readable WAV"),
    ("empty.wav", b"", "empty"),
    ("truncated.wav", wav_bytes(loop(1))[:44], "samples"),
])
def test_each_bad_file_gets_its_reason(tmp_path, name, data, reason):
    folder = write_folder(tmp_path / "loops", {"ok.wav": wav_bytes(loop(0)), name: data})
    result = validate.check_folder(folder, POLICY.submission)
    verdicts = {c.name: c for c in result.checks}
    assert verdicts["ok.wav"].ok
    assert not verdicts[name].ok and reason in verdicts[name].reason
    assert result.n_usable == 1


def test_symlinks_are_never_followed(tmp_path):
    outside = tmp_path / "outside.wav"
    outside.write_bytes(wav_bytes(loop(0)))
    folder = write_folder(tmp_path / "loops", {})
    (folder / "link.wav").symlink_to(outside)
    result = validate.check_folder(folder, POLICY.submission)
    assert result.n_usable == 0 and "symbolic link" in result.checks[0].reason


def test_folder_problems_missing_empty_too_few_too_many(tmp_path, monkeypatch):
    assert "no loops/" in validate.check_folder(tmp_path / "nope", POLICY.submission).folder_problem
    empty = write_folder(tmp_path / "empty", {"readme.txt": b"hi"})
    res = validate.check_folder(empty, POLICY.submission)
    assert "no .wav" in res.folder_problem
    small = validate.SubmissionPolicy(**{**POLICY.submission.__dict__, "n_loops": 3})
    few = validate.check_folder(write_folder(tmp_path / "few", {"a.wav": wav_bytes(loop(0))}), small)
    assert "only 1" in few.folder_problem
    many = write_folder(tmp_path / "many", {f"{i}.wav": wav_bytes(loop(i)) for i in range(5)})
    res = validate.check_folder(many, small)
    assert res.n_usable == 3 and res.names == ["0.wav", "1.wav", "2.wav"]
    assert sum("beyond the first 3" in p for p in res.problems()) == 2


def test_duplicates_and_memorised_copies_are_found_through_gain_noise_and_shift():
    rng = np.random.default_rng(0)
    training = torch.from_numpy(np.stack([loop(100 + i) for i in range(30)]))
    fresh = torch.from_numpy(np.stack([loop(200 + i) for i in range(6)]))
    copies = torch.roll(training[:4], 1500, dims=1) * 0.4 + 0.002 * torch.from_numpy(
        rng.standard_normal((4, SUB.samples)).astype(np.float32))
    submitted = torch.cat([fresh, copies, fresh[:2] * 0.5])
    lm, train_lm = similarity.normalised_logmel(submitted), similarity.normalised_logmel(training)
    memo = similarity.find_memorised(submitted, lm, training, train_lm, POLICY.memo_ncc, POLICY.memo_logmel_rms,
                                     POLICY.memo_max_shift_frames)
    assert sorted((m.index, m.ref_index) for m in memo) == [(6, 0), (7, 1), (8, 2), (9, 3)]
    assert all(m.ncc > 0.98 for m in memo)
    dups = similarity.find_duplicates(submitted, lm, POLICY.dedupe_ncc, POLICY.dedupe_logmel_rms,
                                      POLICY.memo_max_shift_frames)
    assert sorted((m.index, m.ref_index) for m in dups) == [(10, 0), (11, 1)]


def test_circular_ncc_finds_the_shift_and_ignores_gain():
    x = torch.from_numpy(loop(5))
    ncc, lag = similarity.circular_ncc(x, torch.stack([torch.roll(x, 1234) * 0.3, torch.from_numpy(loop(6))]))
    assert ncc[0] == pytest.approx(1.0, abs=1e-5) and int(lag[0]) == (SUB.samples - 1234) % SUB.samples
    assert ncc[1] < 0.5


def test_policy_maps_metrics_to_points_monotonically(tmp_path):
    fads = [0.0, 3.0, 7.0, 15.0, 30.0, 100.0, float("nan")]
    points = [POLICY.fad_points(f) for f in fads]
    assert points == sorted(points[:-1], reverse=True) + [0.0] and points[0] == max(p for _, p in POLICY.fad_rows)
    assert POLICY.is_points(100.0) + POLICY.fad_points(0.0) == POLICY.quality_max
    assert POLICY.is_points(1.0) == 0.0
    bad = tmp_path / "t.toml"
    bad.write_text("[submission]\nn_loops = 3\n")
    with pytest.raises(ValueError, match="t.toml"):
        load_policy(bad)


def test_recollect_keeps_unchanged_submissions_and_regrades_new_ones(tmp_path):
    course = tmp_path / "course"
    first = lms_zip(tmp_path / "a.zip", {"amy__20261101T100000.zip": inner_zip({"hw2/hw2.ipynb": b"{}"}),
                                         "ben__20261101T100000.zip": inner_zip({"hw2/hw2.ipynb": b"{}"})})
    collect.collect(first, course)
    for sid in ("amy", "ben"):  # as if both had been autograded and scored
        for path in (course / "logs" / "autograde" / f"{sid}.json", course / "scores" / f"{sid}.json"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
    second = lms_zip(tmp_path / "b.zip", {"amy__20261101T100000.zip": inner_zip({"hw2/hw2.ipynb": b"{}"}),
                                          "ben__20261103T100000.zip": inner_zip({"hw2/hw2.ipynb": b'{"new": 1}'})})
    log = collect.collect(second, course)
    assert any("amy: unchanged" in n for n in log.notes)
    assert (course / "scores" / "amy.json").exists() and (course / "logs" / "autograde" / "amy.json").exists()
    assert not (course / "scores" / "ben.json").exists() and not (course / "logs" / "autograde" / "ben.json").exists()
    assert (course / "submitted" / "ben" / "hw2" / "hw2.ipynb").read_bytes() == b'{"new": 1}'


def test_preview_check_compares_the_checkpoints_loops_with_the_first_handed_in(tmp_path):
    from grading.score import preview_check

    rng = np.random.default_rng(0)
    loops = tmp_path / "loops"
    loops.mkdir()
    clips = 0.1 * rng.standard_normal((4, 800))
    for i, x in enumerate(clips):
        sf.write(loops / f"loop_{i:03d}.wav", x, 16000, subtype="PCM_16")
    assert preview_check(tmp_path / "nowhere", clips[:2])["mismatch"]  # nothing handed in: flagged, nothing compared
    ours = np.stack([clips[0] + 1e-4 * rng.standard_normal(800), clips[2], clips[2], clips[3]])
    (loops / "loop_003.wav").write_bytes(b"not audio")                  # unreadable
    out = preview_check(loops, ours)
    assert out["compared"] == 4 and out["reproduced"] == 2 and out["mismatch"]
    assert out["snr_db"][0] > 50 and out["snr_db"][1] < 5 and out["snr_db"][2] > 50
    assert out["snr_db"][3] is None
    ref = np.stack([clips[1], clips[1][:400].repeat(2)])  # a second one of another length: not comparable
    sf.write(loops / "loop_000.wav", clips[1], 16000, subtype="PCM_16")
    sf.write(loops / "loop_001.wav", clips[1][:400], 16000, subtype="PCM_16")
    short = preview_check(loops, ref)
    assert short["reproduced"] == 1 and short["snr_db"][1] is None
