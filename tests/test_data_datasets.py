"""course_lib.data datasets, splits, cache and data card (tiny sizes; cache in a temporary folder)."""

from __future__ import annotations

import json

import pytest
import torch

import course_lib.data.synthetic_loops as synthetic_loops
import course_lib.data.synthetic_notes as synthetic_notes
from course_lib.data import card, duplicates
from course_lib.data.__main__ import main as cli
from course_lib.data.config import COURSE_MEL
from course_lib.data.datasets import SPLITS, LoopDataset, NSynthDataset, split_of
from course_lib.data.presets import DataPreset, get_preset
from course_lib.spectral import log_mel

TINY = DataPreset("tiny", instruments_per_family=1, pitch_step=30, velocities=(100,), note_seconds=1.0,
                  loops_per_class=4)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_hash_split_is_stable_and_proportional():
    keys = [f"house-{i:05d}" for i in range(3000)]
    splits = [split_of(k) for k in keys]
    assert splits == [split_of(k) for k in keys]  # the same key always lands in the same split
    share = {s: splits.count(s) / len(keys) for s in SPLITS}
    assert share["train"] == pytest.approx(0.8, abs=0.03) and share["test"] == pytest.approx(0.1, abs=0.02)
    with pytest.raises(ValueError, match="fractions"):
        split_of("x", (0.5, 0.5, 0.5))


def test_loop_dataset_items_splits_and_cache(cache_dir, monkeypatch):
    classes = ["rock", "trap", "chords"]
    full = LoopDataset(split="all", preset=TINY, seed=3, classes=classes, n_kits=1)
    files = list(cache_dir.glob("loops-*.pt"))
    assert len(files) == 1 and len(full) == 12
    item = full[0]
    assert item["audio"].shape == (32000,) and item["mel"].shape == (COURSE_MEL.n_mels, COURSE_MEL.frames(32000))
    assert torch.allclose(item["mel"], log_mel(item["audio"][None], COURSE_MEL)[0], atol=1e-5)
    assert full.class_names[item["label"]] == item["class_name"] == "rock"

    # a second construction reads the cache: generating again would fail here
    def boom(*a, **k):
        raise AssertionError("cache miss: generate_loops was called again")

    monkeypatch.setattr(synthetic_loops, "generate_loops", boom)
    parts = {s: LoopDataset(split=s, preset=TINY, seed=3, classes=classes, n_kits=1) for s in SPLITS}
    assert sum(len(p) for p in parts.values()) == len(full)
    keys = [set(m["key"] for m in p.meta) for p in parts.values()]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    again = LoopDataset(split="all", preset=TINY, seed=3, classes=classes, n_kits=1)
    assert torch.equal(again.audio, full.audio)
    # a different config is a different cache entry
    with pytest.raises(AssertionError, match="cache miss"):
        LoopDataset(split="all", preset=TINY, seed=4, classes=classes, n_kits=1)
    loader = torch.utils.data.DataLoader(full, batch_size=4)
    batch = next(iter(loader))
    assert batch["audio"].shape == (4, 32000) and batch["label"].shape == (4,)
    with pytest.raises(ValueError, match="split"):
        LoopDataset(split="dev", preset=TINY, classes=classes)


def test_nsynth_dataset_generates_nsynth_layout_and_reuses_it(cache_dir, monkeypatch):
    ds = NSynthDataset(split="all", preset=TINY, seed=1)
    assert (ds.folder / "examples.json").is_file() and len(list((ds.folder / "audio").glob("*.wav"))) == len(ds)
    item = ds[0]
    e = ds.examples[0]
    assert item["audio"].shape == (16000,) and item["label"] == e.instrument_family
    assert item["pitch"] == e.pitch and item["qualities"].shape == (10,)
    monkeypatch.setattr(synthetic_notes, "generate_notes", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    train = NSynthDataset(split="train", preset=TINY, seed=1, label="pitch")
    assert all(split_of(x.note_str) == "train" for x in train.examples)
    assert train.labels.tolist() == [x.pitch for x in train.examples]
    with pytest.raises(ValueError, match="label"):
        NSynthDataset(preset=TINY, label="timbre")


def test_duplicate_rate_and_baseline_measure_what_they_claim():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / 16000
    f0 = 100 + 900 * torch.rand(20, 1, generator=g)
    clips = torch.sin(2 * torch.pi * f0 * t) * torch.rand(20, 8000, generator=g).clamp_min(0.5)  # 20 distinct tones
    st = card.duplicate_stats(clips)
    assert st["n_duplicates"] == 0 and st["item_rate"] == 0.0 and st["nn_median_ncc"] < st["ncc_threshold"]
    copies = torch.cat([clips, 0.5 * torch.roll(clips[:2], 1234, dims=-1)])  # two quieter, shifted copies
    st = card.duplicate_stats(copies)
    assert st["n_duplicates"] == 2 and st["item_rate"] == pytest.approx(2 / 22)
    # the card and HW2's grader share the definition and its thresholds
    from grading import similarity
    from grading.policy import load_policy

    policy = load_policy()
    assert (st["ncc_threshold"], st["logmel_threshold"]) == (policy.dedupe_ncc, policy.dedupe_logmel_rms)
    assert st["max_shift_frames"] == policy.memo_max_shift_frames
    assert similarity.find_duplicates is duplicates.find_duplicates
    found = similarity.find_duplicates(copies, similarity.normalised_logmel(copies), policy.dedupe_ncc,
                                       policy.dedupe_logmel_rms, policy.memo_max_shift_frames)
    assert sorted((m.index, m.ref_index) for m in found) == [(20, 0), (21, 1)]
    # baseline: separable classes -> high accuracy, label noise -> near chance
    labels = torch.arange(40) % 2
    sep = torch.randn(40, 8, 10, generator=g) + 3.0 * labels[:, None, None]
    assert card.baseline_accuracy(sep, labels)["accuracy"] > 0.9
    noise = torch.randn(40, 8, 10, generator=g)
    assert card.baseline_accuracy(noise, labels)["accuracy"] < 0.8


def test_loop_card_and_cli_on_a_real_format_folder(cache_dir, tmp_path, capsys):
    c = card.describe_loops(TINY, seed=2, out=tmp_path / "card", figures=True, n_kits=2)
    assert sum(c["counts"].values()) == c["clips"] == 4 * len(synthetic_loops.LOOP_CLASSES)
    assert c["loudness"]["nan_clips"] == 0 and c["loudness"]["clipped_clips"] == 0
    assert c["duplicates"]["item_rate"] < 0.01
    assert 1.0 / len(c["counts"]) < c["baseline"]["accuracy"] < 1.0
    for f in ("card.md", "card.json", "examples.png", "stats.png"):
        assert (tmp_path / "card" / f).stat().st_size > 100
    # the CLI on an NSynth folder written by the synthetic generator
    audio, examples = synthetic_notes.generate_notes(TINY, seed=0, families=["organ", "mallet"])
    synthetic_notes.write_nsynth(tmp_path / "ns", audio, examples)
    assert cli(["describe", "nsynth", "--root", str(tmp_path / "ns"), "--out", str(tmp_path / "c2"),
                "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "| organ |" in out and "MIDI pitch histogram" in out
    saved = json.loads((tmp_path / "c2" / "nsynth-ns" / "card.json").read_text())
    assert saved["counts"] == {"mallet": sum(e.instrument_family_str == "mallet" for e in examples),
                               "organ": sum(e.instrument_family_str == "organ" for e in examples)}
    assert get_preset("fast").loops_per_class < get_preset("lecture").loops_per_class


def test_one_preset_vocabulary_for_data_and_models():
    """Every preset table of the course speaks fast / lecture / full; ``default`` (the data presets' old name) still
    means ``lecture`` wherever a preset name is read, and an unknown name is refused with the choices."""
    from course_lib.data.presets import PRESETS as DATA
    from course_lib.metrics.train_classifier import TRAIN_PRESETS as CLASSIFIERS, train
    from course_lib.models.wavenet_presets import AUTOENCODER_PRESETS, TRAIN_PRESETS as WAVENET_TRAIN, WAVENET_PRESETS
    from course_lib.train.ddsp import PRESETS as DDSP
    from course_lib.train.gan import PRESETS as GAN
    from course_lib.train.gansynth import PRESETS as GANSYNTH
    from course_lib.train.vocoder import PRESETS as VOCODER

    vocabulary = {"fast", "lecture", "full"}
    tables = {"data": DATA, "ddsp": DDSP, "gansynth": GANSYNTH, "vocoder": VOCODER, "wavenet": WAVENET_PRESETS,
              "wavenet autoencoder": AUTOENCODER_PRESETS, "wavenet training": WAVENET_TRAIN,
              **{f"gan {m}": t for m, t in GAN.items()}, **{f"classifier {t}": p for t, p in CLASSIFIERS.items()}}
    for name, table in tables.items():
        assert set(table) <= vocabulary and "fast" in table and "lecture" in table, (name, sorted(table))
    assert get_preset("default") is get_preset("lecture") and get_preset("lecture").name == "lecture"
    with pytest.raises(ValueError, match="unknown data preset 'lectur'.*'lecture'"):
        get_preset("lectur")
    with pytest.raises(ValueError, match="unknown preset 'medium' for task 'loops'"):
        train("loops", preset="medium")
