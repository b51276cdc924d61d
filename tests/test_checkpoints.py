"""One checkpoint convention: shipped files load whatever the modules are called, saves are atomic, and a missing
file names the command that makes it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from course_lib.models import classifiers, ddsp, gansynth, istft_vocoder, loop_encoder, melgan, stylegan2, wavenet
from course_lib.runtime import checkpoint as ckpt_mod
from course_lib.runtime.checkpoint import atomic_save, load_checkpoint, save_checkpoint

ASSETS = Path(ckpt_mod.__file__).resolve().parents[1] / "assets"

# every shipped checkpoint and the function that loads it: load_<model>(path=None, device=None) -> the model
LOADERS = {
    "gansynth_if.pt": gansynth.load_gansynth,
    "gansynth_phase.pt": gansynth.load_gansynth,
    "wavenet_lecture_pitch.pt": wavenet.load_wavenet,
    "wavenet_ae_lecture.pt": wavenet.load_wavenet,
    "ddsp_organ.pt": ddsp.load_ddsp,
    "melgan_loops.pt": melgan.load_melgan,
    "istft_vocoder_loops.pt": istft_vocoder.load_istft_vocoder,
    "stylegan2_loops.pt": stylegan2.load_stylegan2,
    "loop_classifier.pt": classifiers.load_classifier,
    "pitch_classifier.pt": classifiers.load_classifier,
    "loop_encoder.pt": loop_encoder.load_loop_encoder,
}


def test_every_shipped_checkpoint_is_listed():
    assert {p.name for p in ASSETS.glob("*.pt")} == set(LOADERS)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_shipped_checkpoints_hold_no_pickled_classes_and_load_into_their_model(name):
    path = ASSETS / name
    raw = torch.load(path, map_location="cpu", weights_only=True)  # refuses any pickled class or module path
    model = LOADERS[name](path)
    assert isinstance(model, torch.nn.Module) and not model.training  # the model itself, not a pair
    weights = raw.get("model", raw.get("state_dict"))
    state = model.state_dict()
    assert weights, f"{name}: no weights found"
    for key, tensor in weights.items():  # the loaded model carries exactly the file's tensors
        assert torch.equal(state[key].cpu(), tensor), f"{name}: {key} differs after loading"


def _failing_save(obj, f, *args, **kwargs):
    Path(f).write_bytes(b"half a checkpoint")
    raise OSError("disk full")


def _savers(tmp_path: Path):
    cfg = classifiers.ShortChunkConfig(n_classes=3)
    return {
        "save_checkpoint": lambda p: save_checkpoint(p, torch.nn.Linear(2, 2)),
        "melgan.save_vocoder": lambda p: melgan.save_vocoder(melgan.MelGANGenerator(melgan.MelGANConfig()), p),
        "classifiers.save_classifier": lambda p: classifiers.save_classifier(classifiers.ShortChunkCNN(cfg), p),
        "istft_vocoder.save_istft_vocoder": lambda p: istft_vocoder.save_istft_vocoder(
            istft_vocoder.ISTFTVocoder(istft_vocoder.ISTFTVocoderConfig()), p),
        "loop_encoder.save_loop_encoder": lambda p: loop_encoder.save_loop_encoder(loop_encoder.LoopEncoder(), p),
    }


@pytest.mark.parametrize("saver", ["save_checkpoint", "melgan.save_vocoder", "classifiers.save_classifier",
                                   "istft_vocoder.save_istft_vocoder", "loop_encoder.save_loop_encoder"])
def test_an_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch, saver):
    path = tmp_path / "model.pt"
    save = _savers(tmp_path)[saver]
    save(path)
    before = path.read_bytes()
    monkeypatch.setattr(ckpt_mod.torch, "save", _failing_save)
    with pytest.raises(OSError, match="disk full"):
        save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"], "a temp file was left behind"


def test_atomic_save_round_trips_and_creates_the_folder(tmp_path):
    path = atomic_save({"x": torch.arange(3)}, tmp_path / "a" / "b.pt")
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.arange(3))
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("load", [gansynth.load_gansynth, ddsp.load_ddsp, melgan.load_melgan, stylegan2.load_stylegan2,
                                  wavenet.load_wavenet, istft_vocoder.load_istft_vocoder, classifiers.load_classifier,
                                  loop_encoder.load_loop_encoder, lambda p: load_checkpoint(p, rebuild="python -m course_lib.train.wavenet ...")])
def test_a_missing_file_names_the_command_that_makes_it(tmp_path, load):
    with pytest.raises(FileNotFoundError, match=r"missing\.pt.*python -m course_lib\."):
        load(tmp_path / "missing.pt")


def test_loaders_carry_the_settings_the_old_pairs_returned():
    """One convention: the settings a loader used to return beside the model are attributes of the model; the
    older pair-returning loaders still work for one term, warn, and give the same objects."""
    g = stylegan2.load_stylegan2()
    assert isinstance(g.spec, stylegan2.MelImageSpec) and g.spec.loop_samples > 0 and "steps" in g.meta
    with pytest.warns(DeprecationWarning, match="load_stylegan2"):
        g_old, spec = stylegan2.load_generator()
    assert spec == g.spec and all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), g_old.state_dict().values()))
    v = melgan.load_melgan()
    with pytest.warns(DeprecationWarning, match="load_melgan"):
        _, mel = melgan.load_vocoder()
    assert mel == v.mel and v.mel.n_mels == v.config.n_mels
    w = wavenet.load_pretrained("pitch")
    assert w.card["checkpoint"].endswith("wavenet_lecture_pitch.pt") and w.meta["step"] == w.card["steps"]
    shipped_if = gansynth.load_gansynth()  # path=None: the shipped IF +H generator (n_fft 512 for 0.5 s notes)
    assert shipped_if.spec.kind == "if" and shipped_if.spec.n_fft == 512
    d = ddsp.load_pretrained()
    assert d.card["rebuild"].startswith("python -m course_lib.train.ddsp") and d.meta["step"] == d.card["steps"]


def test_a_model_card_regeneration_keeps_the_hand_written_limitations(tmp_path):
    import json

    from course_lib.runtime.model_card import kept_limitations, write_model_card

    ckpt = tmp_path / "net.pt"
    render = lambda card, limitations: f"# {card['name']}\n\nloss {card['loss']}\n\n" + limitations  # noqa: E731
    json_path, md_path = write_model_card(ckpt, {"name": "net", "loss": 1.5}, render)
    assert (json_path.name, md_path.name) == ("net.json", "net.md")
    assert json_path.read_text() == json.dumps({"name": "net", "loss": 1.5}, indent=2) + "\n"
    assert kept_limitations(md_path) == ""
    md_path.write_text(md_path.read_text() + "## Limitations\n\nIt hums.\n")  # a person's reading
    write_model_card(ckpt, {"name": "net", "loss": 0.5}, render)
    assert md_path.read_text() == "# net\n\nloss 0.5\n\n## Limitations\n\nIt hums.\n"
    assert kept_limitations(tmp_path / "absent.md") == ""
