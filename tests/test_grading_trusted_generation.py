"""Trusted generation and a scorer no submission can stop: fake students with known outcomes.

The graded loops come from ``checkpoint.pt`` (made by the scorer), the handed-in WAVs are only a
preview compared with it, a checkpoint the scorer will not run gets 0 with its reason, and one
broken submission (NaN samples, NaN weights, a crash) never changes another student's grade.
Small class: 16 loops per student, the fast loop set, bands anchored on real loops here.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from grading import score as score_mod
from grading import trusted_generation as tg
from grading.policy import load_policy

N = 16
pytestmark = pytest.mark.slow  # child processes / the disguise search: seconds each
SR = 16000


def _strict_json(text: str) -> dict:
    def refuse(name):
        raise ValueError(f"non-finite number {name} in a report")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Policy for 16 loops with bands anchored on held-out real loops, assets of the fast loop set."""
    from course_lib.data.datasets import LoopDataset
    from course_lib.metrics.evaluate import evaluate
    from grading.demo import shuffled, tiny_checkpoint
    from grading.reference import load_reference_assets

    tmp = tmp_path_factory.mktemp("trusted")
    assets = load_reference_assets(preset="fast")
    real = shuffled(LoopDataset(split="all", preset="fast", seed=3, precompute_mel=False).audio)[:N]
    fad_top = 2.0 * evaluate(real, assets.reference, classifier=assets.classifier, device="cpu").fad
    base = load_policy()
    policy = dataclasses.replace(
        base, submission=dataclasses.replace(base.submission, n_loops=N, min_usable=4),
        fad_rows=((fad_top, 25.0), (1.5 * fad_top, 10.0)), is_rows=((3.0, 15.0), (2.0, 5.0)))
    toml = (Path(__file__).resolve().parent.parent / "grading" / "thresholds.toml").read_text()
    toml = toml.replace("n_loops = 200", f"n_loops = {N}").replace("min_usable = 50", "min_usable = 4")
    start = toml.index("fad = [")
    toml = toml[:start] + (f"fad = [ {{ max = {fad_top}, points = 25 }}, {{ max = {1.5 * fad_top}, points = 10 }} ]\n"
                           "is = [ { min = 3.0, points = 15 }, { min = 2.0, points = 5 } ]\n")
    (tmp / "thresholds.toml").write_text(toml)
    assert load_policy(tmp / "thresholds.toml") == policy
    ckpt = tiny_checkpoint(tmp / "untrained.pt", seed=0)
    return {"tmp": tmp, "policy": policy, "assets": assets, "real": real.numpy(), "ckpt": ckpt,
            "thresholds": tmp / "thresholds.toml"}


def hw2_folder(root: Path, checkpoint: Path | bytes | None, loops: np.ndarray | None, subtype: str = "PCM_16") -> Path:
    hw2 = root / "hw2"
    (hw2 / "loops").mkdir(parents=True, exist_ok=True)
    if isinstance(checkpoint, Path):
        (hw2 / "checkpoint.pt").write_bytes(checkpoint.read_bytes())
    elif isinstance(checkpoint, bytes):
        (hw2 / "checkpoint.pt").write_bytes(checkpoint)
    for i, x in enumerate(loops if loops is not None else []):
        sf.write(str(hw2 / "loops" / f"loop_{i:03d}.wav"), np.asarray(x, np.float32), SR, subtype=subtype)
    return hw2


def edited_checkpoint(src: Path, dest: Path, config: dict | None = None, meta: dict | None = None,
                      state=None, **top) -> Path:
    blob = torch.load(src, weights_only=True)
    blob["config"].update(config or {})
    blob["meta"].update(meta or {})
    if state is not None:
        blob["state_dict"] = state(blob["state_dict"])
    blob.update(top)
    torch.save(blob, dest)
    return dest


def without_seconds(report) -> dict:
    d = json.loads(report.to_json())
    d.pop("seconds")
    d["checkpoint"].pop("generation_seconds", None)
    return d


# ----------------------------------------------------------------------------- the graded loops are the model's

def test_loops_rendered_without_a_model_score_nothing_and_are_flagged(setup, tmp_path):
    """Fake student: real loops rendered by course_lib.data, handed in with an (untrained) checkpoint not theirs."""
    from course_lib.hw2 import generate_loops

    policy, assets = setup["policy"], setup["assets"]
    hw2 = hw2_folder(tmp_path, setup["ckpt"], setup["real"])
    rep = score_mod.score_submission(hw2, policy, assets, "faker")
    # what the same WAVs would have got when the folder was graded: the loophole this closes
    assert score_mod.score_loops(hw2 / "loops", policy, assets).points >= 25
    assert rep.points == 0 and rep.fad_points == 0 and rep.is_points == 0
    # the graded loops are the checkpoint's at the policy seed, not the WAVs
    ours = generate_loops(setup["ckpt"], N, seed=policy.generation.seed, batch_size=policy.generation.batch_size)
    direct = score_mod.score_audio(ours.numpy(), [f"generated_{i:03d}" for i in range(N)], policy, assets)
    assert rep.fad == pytest.approx(direct.fad, rel=1e-6) and rep.n_usable == direct.n_usable
    assert rep.checkpoint["seed"] == policy.generation.seed and rep.checkpoint["truncation_psi"] == 1.0
    prev = rep.reproduction
    assert prev["compared"] == 8 and prev["reproduced"] == 0 and prev["mismatch"]
    assert all(v is not None and v < 10 for v in prev["snr_db"])
    assert any(f.startswith("preview mismatch: 0 of the first 8") for f in rep.ta_flags)
    assert rep.handed_in == {"files": N, "valid": N, "problems": []}


def test_honest_preview_matches_and_grading_is_deterministic(setup, tmp_path):
    from course_lib.hw2 import generate_loops

    policy, assets = setup["policy"], setup["assets"]
    ckpt = edited_checkpoint(setup["ckpt"], tmp_path / "psi.pt", meta={"truncation_psi": 0.7})
    handed = generate_loops(ckpt, N, seed=0, truncation_psi=0.7).numpy()  # what the notebook writes
    hw2 = hw2_folder(tmp_path, ckpt, handed)
    rep = score_mod.score_submission(hw2, policy, assets, "honest")
    assert rep.checkpoint["truncation_psi"] == 0.7
    assert rep.reproduction["reproduced"] == 8 and not rep.reproduction["mismatch"]
    assert min(rep.reproduction["snr_db"]) >= 30 and rep.ta_flags == []
    again = score_mod.score_submission(hw2, policy, assets, "honest")
    assert without_seconds(again) == without_seconds(rep)


@pytest.mark.parametrize("psi,used,note", [(0.2, 0.5, "outside the allowed range [0.5, 1]"),
                                           (3.0, 1.0, "outside the allowed range"),
                                           ("strong", 1.0, "not a finite number")])
def test_truncation_psi_outside_the_policy_range_is_clamped_with_a_note(setup, tmp_path, psi, used, note):
    policy = setup["policy"]
    ckpt = edited_checkpoint(setup["ckpt"], tmp_path / "c.pt", meta={"truncation_psi": psi})
    info = tg.inspect_checkpoint(ckpt, policy.checkpoint, policy.generation, policy.submission)
    assert info.truncation_psi == used and any(note in n for n in info.notes)


# ----------------------------------------------------------------------------- checkpoints the scorer refuses

def _pickled_object(path: Path) -> None:
    torch.save({"kind": "stylegan2_generator", "payload": Path("/etc/passwd")}, path)  # an object, not weights


@pytest.mark.parametrize("case,expected", [
    ("missing", "no checkpoint.pt handed in"),
    ("garbage", "not a readable weights-only PyTorch checkpoint"),
    ("pickled object", "not a readable weights-only PyTorch checkpoint"),
    ("wrong kind", "not a StyleGAN2 generator checkpoint (kind='melgan_generator'"),
    ("channels=100000", "config channels[0] = 100000 is outside the allowed 1..512"),
    ("n_up=12", "config n_up = 12 is outside the allowed 1..5"),
    ("z_dim=10**7", "config z_dim = 10000000 is outside"),
    ("n_classes=1000", "config n_classes = 1000 is outside the allowed 0..64"),
    ("too many MACs", "GMAC per loop exceeds the limit"),
    ("other mel", "differ from the course's"),
    ("weights of another shape", "expected a float tensor"),
    ("oversized file", "bytes (limit 1000); not loaded"),
    ("zip bomb", "unpacks to"),
])
def test_checkpoints_the_scorer_will_not_run_get_zero_fast(setup, tmp_path, case, expected):
    policy, src = setup["policy"], setup["ckpt"]
    path = tmp_path / "checkpoint.pt"
    limits = policy.checkpoint
    if case == "garbage":
        path.write_bytes(b"PK\x03\x04 not a checkpoint" * 50)
    elif case == "pickled object":
        _pickled_object(path)
    elif case == "wrong kind":
        edited_checkpoint(src, path, kind="melgan_generator")
    elif case == "channels=100000":
        edited_checkpoint(src, path, config={"channels": [100000, 16, 16, 8, 8]})
    elif case == "n_up=12":
        edited_checkpoint(src, path, config={"n_up": 12, "channels": [8] * 13})
    elif case == "z_dim=10**7":
        edited_checkpoint(src, path, config={"z_dim": 10 ** 7})
    elif case == "n_classes=1000":
        edited_checkpoint(src, path, config={"n_classes": 1000})
    elif case == "too many MACs":
        edited_checkpoint(src, path, config={"channels": [512] * 5})
    elif case == "other mel":
        blob = torch.load(src, weights_only=True)
        blob["spec"]["mel"]["n_mels"] = 40
        torch.save(blob, path)
    elif case == "weights of another shape":
        edited_checkpoint(src, path, state=lambda sd: {k: (v[..., :1] if k == "input.const" else v)
                                                       for k, v in sd.items()})
    elif case == "zip bomb":  # 60 MB of zeros deflated into a small file
        import zipfile

        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("archive/data/0", b"\0" * 60_000_000)
    elif case == "oversized file":
        path.write_bytes(src.read_bytes())
        limits = dataclasses.replace(limits, max_bytes=1000)
    start = time.perf_counter()
    with pytest.raises(tg.CheckpointRefused) as err:
        tg.inspect_checkpoint(path, limits, policy.generation, policy.submission)
    assert expected in str(err.value) and str(err.value).startswith("checkpoint.pt")
    if case in ("channels=100000", "n_up=12", "z_dim=10**7", "n_classes=1000", "too many MACs", "oversized file", "zip bomb"):
        assert time.perf_counter() - start < 2.0  # refused from the config alone: nothing built or allocated


def test_a_class_conditional_generator_is_graded_with_every_class_in_turn(setup, tmp_path):
    """n_classes > 0 is the course's StyleGAN2 too: the scorer builds it and plays classes 0, 1, ..., K-1, 0, ..."""
    from course_lib.hw2 import generate_loops, loop_latents
    from course_lib.models import stylegan2 as sg

    torch.manual_seed(1)
    spec = sg.MelImageSpec()
    g = sg.Generator(sg.StyleGAN2Config(image_size=spec.size, channels=(16, 16, 16, 8, 8), z_dim=32, w_dim=32,
                                        mapping_layers=2, n_classes=3))
    with torch.no_grad():
        g.class_w.mul_(20.0)  # classes far apart, so that they are told apart in the audio
    path = sg.save_generator(g, spec, tmp_path / "checkpoint.pt")
    info = tg.inspect_checkpoint(path, setup["policy"].checkpoint, setup["policy"].generation,
                                 setup["policy"].submission)
    assert info.config["n_classes"] == 3
    loops = generate_loops(path, 4, seed=5, vocoder="griffin_lim")
    z = loop_latents(4, 32, seed=5)
    with torch.no_grad():
        mels = spec.to_mel(g.eval()(z, noise_mode="const", labels=torch.tensor([0, 1, 2, 0])).clamp(-1, 1))
    wrong = spec.to_mel(g(z, noise_mode="const", labels=torch.tensor([1, 1, 1, 1])).clamp(-1, 1)).detach()
    from course_lib.spectral import log_mel

    got = log_mel(loops, spec.mel)[..., : spec.frames]
    err_right = float((got - mels[..., : spec.frames]).abs().mean())
    err_wrong = float((got - wrong[..., : spec.frames]).abs().mean())
    assert err_right < err_wrong  # the loops are those of classes 0, 1, 2, 0


@pytest.mark.parametrize("arch", [{"class_lr_mul": 0.1}, {"class_mapping": True}, {"input_from_w": True}])
def test_the_scorer_builds_the_conditional_generator_the_student_trained(setup, tmp_path, arch):
    """How a generator reads its class (offsets at class_lr_mul, or an embedding in the mapping network) and whether
    its input reads w (input_from_w) are part of what it computes: the scorer's clean checkpoint must make the
    student's images, not another model's."""
    from course_lib.models import stylegan2 as sg

    torch.manual_seed(2)
    spec = sg.MelImageSpec()
    g = sg.Generator(sg.StyleGAN2Config(image_size=spec.size, channels=(16, 16, 16, 8, 8), z_dim=32, w_dim=32,
                                        mapping_layers=2, n_classes=3, **arch)).eval()
    path = sg.save_generator(g, spec, tmp_path / "checkpoint.pt")
    info = tg.inspect_checkpoint(path, setup["policy"].checkpoint, setup["policy"].generation,
                                 setup["policy"].submission)
    clean = sg.load_stylegan2(tg.write_clean_checkpoint(info, tmp_path / "clean.pt")).eval()
    z, labels = torch.randn(4, 32), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        assert torch.equal(clean(z, noise_mode="const", labels=labels), g(z, noise_mode="const", labels=labels))
    # every field the generator reads is carried; only the discriminator's own ones may stay behind
    assert set(f.name for f in dataclasses.fields(sg.StyleGAN2Config)) - set(info.config) == {"pack", "d_channels"}
    for switch in ("class_mapping", "input_from_w"):
        with pytest.raises(tg.CheckpointRefused, match=f"{switch} must be true or false"):
            bad = edited_checkpoint(path, tmp_path / "bad.pt", config={switch: "yes"})
            tg.inspect_checkpoint(bad, setup["policy"].checkpoint, setup["policy"].generation,
                                  setup["policy"].submission)


def test_refused_checkpoint_scores_zero_with_its_reason_for_the_student_and_the_ta(setup, tmp_path):
    hw2 = hw2_folder(tmp_path, None, setup["real"][:4])
    edited_checkpoint(setup["ckpt"], hw2 / "checkpoint.pt", config={"n_up": 12, "channels": [8] * 13})
    rep = score_mod.score_submission(hw2, setup["policy"], setup["assets"], "absurd")
    assert rep.points == 0 and "n_up = 12" in rep.checkpoint_problem and "n_up = 12" in rep.summary()
    assert any(f.startswith("checkpoint refused") for f in rep.ta_flags)
    assert rep.seconds < 5


@pytest.mark.parametrize("limit,expected", [({"time_limit_s": 0.5}, "(time limit)"),
                                            ({"memory_mb": 300}, "memory limit of 300 MB")])
def test_generation_runs_under_a_time_and_memory_limit(setup, tmp_path, limit, expected):
    policy = setup["policy"]
    policy = dataclasses.replace(policy, checkpoint=dataclasses.replace(policy.checkpoint, **limit))
    rep = score_mod.score_submission(hw2_folder(tmp_path, setup["ckpt"], None), policy, setup["assets"], "slow")
    assert rep.points == 0 and expected in rep.checkpoint_problem


# ----------------------------------------------------------------------------- no student can zero another

def test_report_json_never_holds_nan():
    rep = score_mod.ScoreReport(student="x", fad=float("nan"), inception_score=float("inf"),
                                reproduction={"snr_db": [float("nan"), 3.0, None]}, fad_ci=(float("nan"), 1.0))
    data = _strict_json(rep.to_json())
    assert data["fad"] is None and data["inception_score"] is None
    assert data["reproduction"]["snr_db"] == [None, 3.0, None] and data["fad_ci"] == [None, 1.0]
    assert score_mod.snr_db(np.array([np.nan, 1.0]), np.array([0.0, 1.0])) is None


def test_a_nan_submission_and_a_crash_do_not_stop_the_batch(setup, tmp_path, monkeypatch):
    """NaN samples, NaN weights and a scorer crash, then a normal student in the same batch: scored correctly."""
    from course_lib.hw2 import generate_loops

    monkeypatch.setenv("HW2_DATA_PRESET", "fast")
    course, ckpt = tmp_path / "course", setup["ckpt"]
    nan_loops = np.array(setup["real"][:N])
    nan_loops[:, 100::7] = np.nan  # float WAVs with NaN samples (they once crashed the scorer)
    hw2_folder(course / "submitted" / "a_nan_wavs", ckpt, nan_loops, subtype="FLOAT")
    hw2_folder(course / "submitted" / "b_nan_weights", None, None)
    edited_checkpoint(ckpt, course / "submitted" / "b_nan_weights" / "hw2" / "checkpoint.pt",
                      state=lambda sd: {k: v * float("nan") if k.startswith("to_mel") else v for k, v in sd.items()})
    hw2_folder(course / "submitted" / "c_crash", ckpt, None)
    good = generate_loops(ckpt, N, seed=0).numpy()
    hw2_folder(course / "submitted" / "d_normal", ckpt, good)
    real_score = score_mod.score_submission

    def crashing(hw2, *args, **kwargs):
        if "c_crash" in str(hw2):
            raise RuntimeError("boom")
        return real_score(hw2, *args, **kwargs)

    monkeypatch.setattr(score_mod, "score_submission", crashing)
    score_mod.main(["--course-dir", str(course), "--students", "a_nan_wavs", "b_nan_weights", "c_crash", "d_normal",
                    "--thresholds", str(setup["thresholds"])])
    reports = {s: _strict_json(score_mod.score_path(course, s).read_text())
               for s in ("a_nan_wavs", "b_nan_weights", "c_crash", "d_normal")}
    assert reports["a_nan_wavs"]["error"] == "" and reports["a_nan_wavs"]["reproduction"]["snr_db"] == [None] * 8
    assert reports["a_nan_wavs"]["handed_in"]["valid"] == 0
    b = reports["b_nan_weights"]
    assert b["points"] == 0 and b["n_usable"] == 0 and b["error"] == ""
    assert sum("contains NaN or infinite samples" in p for p in b["problems"]) == N
    assert reports["c_crash"]["error"] == "RuntimeError: boom" and reports["c_crash"]["points"] == 0
    d = reports["d_normal"]
    alone = real_score(course / "submitted" / "d_normal" / "hw2", setup["policy"], setup["assets"], "d_normal")
    assert d["error"] == "" and d["points"] == alone.points and d["fad"] == pytest.approx(alone.fad, rel=1e-9)
    assert d["reproduction"]["reproduced"] == 8
    assert len(list(score_mod.graded_loops_dir(course, "d_normal").glob("*.wav"))) == score_mod.KEEP_FOR_FEEDBACK
