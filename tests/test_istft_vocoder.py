"""The iSTFT vocoder: shapes, bad input, save/load, training lowers the validation loss, the shipped file."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from course_lib.models import istft_vocoder as iv
from course_lib.models.istft_vocoder import (ISTFTVocoder, ISTFTVocoderConfig, load_istft_vocoder,
                                             save_istft_vocoder)
from course_lib.spectral import MelConfig, log_mel

SMALL = ISTFTVocoderConfig(dim=16, layers=2, mlp_ratio=2)


def _clips(n: int, samples: int, seed: int) -> torch.Tensor:
    """Deterministic test audio: a decaying tone per 1/8 s (random pitch) plus noise bursts, peak 0.5."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000.0
    out = torch.zeros(n, samples)
    step = 2000
    for i in range(n):
        for s in range(0, samples, step):
            f = 110.0 * 2 ** (float(torch.randint(0, 36, (1,), generator=g)) / 12)
            tt = t[: samples - s]
            env = torch.exp(-tt * 12.0)
            out[i, s:] += 0.3 * env * torch.sin(2 * math.pi * f * tt)
            if float(torch.rand(1, generator=g)) < 0.4:
                out[i, s:s + 400] += 0.2 * torch.randn(min(400, samples - s), generator=g) * env[:400]
    return 0.5 * out / out.abs().amax(dim=1, keepdim=True)


@pytest.mark.parametrize("frames", [1, 7, 125])
@pytest.mark.parametrize("periodic", [False, True])
def test_T_frames_give_T_times_hop_samples(frames, periodic):
    torch.manual_seed(0)
    model = ISTFTVocoder(SMALL)
    y = model(torch.randn(2, 80, frames) - 4, periodic=periodic)
    assert y.shape == (2, frames * 256)
    v = model.vocode(torch.randn(80, frames) - 4, periodic=periodic)
    assert v.shape == (1, frames * 256) and v.dtype == torch.float32 and v.abs().max() <= 1.0


def test_bad_input_and_config_raise_value_errors_naming_the_parameter():
    model = ISTFTVocoder(SMALL)
    with pytest.raises(ValueError, match="log_mel"):
        model(torch.zeros(2, 64, 10))
    with pytest.raises(ValueError, match="log_mel"):
        model.vocode(torch.zeros(10))
    with pytest.raises(ValueError, match="batch_size"):
        model.vocode(torch.zeros(1, 80, 4), batch_size=0)
    with pytest.raises(ValueError, match="kernel"):
        ISTFTVocoderConfig(kernel=4)
    with pytest.raises(ValueError, match="dim"):
        ISTFTVocoderConfig(dim=0)
    with pytest.raises(ValueError, match="hop"):
        ISTFTVocoder(ISTFTVocoderConfig(hop=128))
    with pytest.raises(ValueError, match="anchor"):
        ISTFTVocoder(ISTFTVocoderConfig(n_fft=512))
    ISTFTVocoder(ISTFTVocoderConfig(n_fft=512, anchor=False, dim=8, layers=1))  # smaller FFT without the anchor is fine


def test_the_anchor_alone_reproduces_the_mel_magnitude_roughly():
    """With a zero head the log-magnitude is the mel pseudo-inverse: its mel is close to the input mel."""
    model = ISTFTVocoder(SMALL)
    with torch.no_grad():
        model.head.weight.zero_()
    x = _clips(2, 8192, seed=1)
    m = log_mel(x)[..., :32]
    mag = model.spectrum(m).abs()[..., :32]
    from course_lib.spectral import mel_filterbank

    rebuilt = (mel_filterbank(MelConfig()) @ mag).clamp_min(1e-5).log()
    loud = m > -6  # where the mel is above the floor region
    assert (rebuilt - m)[loud].abs().mean() < 0.5


def test_save_load_round_trip_is_bit_identical(tmp_path):
    torch.manual_seed(3)
    model = ISTFTVocoder(SMALL).eval()
    model.meta = {"step": 7}
    path = save_istft_vocoder(model, tmp_path / "sub" / "v.pt")
    assert not list(path.parent.glob("*.tmp"))
    loaded = load_istft_vocoder(path)
    assert loaded.config == model.config and loaded.mel == model.mel and loaded.meta == {"step": 7}
    m = torch.randn(2, 80, 20) - 5
    assert torch.equal(loaded.vocode(m), model.vocode(m))


def test_missing_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="course_lib.train.vocoder"):
        load_istft_vocoder(tmp_path / "nope.pt")
    torch.save({"kind": "melgan_generator"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an iSTFT vocoder"):
        load_istft_vocoder(tmp_path / "other.pt")


def test_fast_preset_training_lowers_the_validation_loss(tmp_path):
    from course_lib.train.vocoder import VocoderTask, get_config, train_vocoder, validation_loss

    cfg = get_config("fast", progress=False, steps=60, valid_every=20)
    train, valid = _clips(8, 8192, seed=10), _clips(3, 8192, seed=11)
    before = validation_loss(VocoderTask(cfg, MelConfig()).model, valid)["score"]
    run = train_vocoder(cfg, tmp_path / "run", train_audio=train, valid_audio=valid)
    assert run.steps_done == 60 and [v["step"] for v in run.history["valid"]] == [20, 40, 60]
    assert run.best_score < 0.85 * before, (before, run.best_score)
    # best.pt is the selected model, and re-running resumes at the end (no extra steps)
    again = train_vocoder(cfg, tmp_path / "run", train_audio=train, valid_audio=valid)
    assert again.steps_done == 60 and again.best_step == run.best_step
    m = log_mel(valid)[..., :32]
    assert torch.equal(load_istft_vocoder(tmp_path / "run" / "best.pt").vocode(m), run.best.vocode(m))


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    from course_lib.train.vocoder import get_config, train_vocoder

    cfg = get_config("fast", progress=False, steps=20, valid_every=10, checkpoint_every=10)
    train, valid = _clips(4, 8192, seed=20), _clips(2, 8192, seed=21)
    whole = train_vocoder(cfg, tmp_path / "a", train_audio=train, valid_audio=valid)
    train_vocoder(get_config("fast", progress=False, steps=20, valid_every=10, checkpoint_every=10, max_seconds=1e-9),
                  tmp_path / "b", train_audio=train, valid_audio=valid)  # stops at once (0 steps)
    part = train_vocoder(cfg, tmp_path / "b", train_audio=train, valid_audio=valid)
    assert [round(x[1], 4) for x in part.history["train"]] == [round(x[1], 4) for x in whole.history["train"]]


def test_generate_loops_vocoder_falls_back_to_griffin_lim_with_a_warning(tmp_path, monkeypatch):
    from course_lib.hw2 import loop_vocoder

    monkeypatch.setattr(iv, "ISTFT_VOCODER_ASSET", tmp_path / "missing.pt")
    with pytest.warns(UserWarning, match="Griffin-Lim"):
        voc = loop_vocoder(None, loop_samples=4 * 256)
    assert voc(torch.randn(1, 80, 4) - 5).shape == (1, 4 * 256)
    path = save_istft_vocoder(ISTFTVocoder(SMALL), tmp_path / "v.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loop_vocoder(path)(torch.randn(2, 80, 5) - 5).shape == (2, 5 * 256)
    with pytest.raises(FileNotFoundError, match="vocoder"):
        loop_vocoder(tmp_path / "nothing.pt")


def test_compare_vocoders_gives_equal_length_audio(tmp_path):
    from course_lib.models.vocoder_eval import compare_vocoders

    path = save_istft_vocoder(ISTFTVocoder(SMALL), tmp_path / "v.pt")
    for periodic in (True, False):
        out = compare_vocoders(torch.randn(3, 80, 8) - 5, which=("griffin_lim", "istft"), periodic=periodic,
                               n_iter=2, istft_path=path)
        assert set(out) == {"griffin_lim", "istft"} and all(a.shape == (3, 8 * 256) for a in out.values())
    with pytest.raises(ValueError, match="which"):
        compare_vocoders(torch.zeros(1, 80, 8), which=("wavenet",))


def test_shipped_vocoder_beats_griffin_lim_on_a_held_out_loop():
    """Property of the shipped file: on test-split loops (never trained on, never used for selection), its
    audio's log-spectrum is closer to the real one than Griffin-Lim's (32 iterations) on the same mel."""
    if not iv.ISTFT_VOCODER_ASSET.is_file():
        pytest.skip("no shipped iSTFT vocoder")
    from course_lib.data.datasets import LoopDataset
    from course_lib.models.melgan import stft_magnitude
    from course_lib.models.vocoder_eval import vocoder_functions

    audio = LoopDataset(split="test", preset="lecture", seed=0, precompute_mel=False).audio[:4].float()
    m = log_mel(audio)[..., :125]
    ours = load_istft_vocoder().vocode(m)
    gl = vocoder_functions(("griffin_lim",), periodic=False, n_iter=32)["griffin_lim"](m)

    def lsd(y: torch.Tensor) -> float:  # log-spectral distance in dB, 512-point STFT (not the training resolution)
        a, b = stft_magnitude(y, 512, 128, 512), stft_magnitude(audio, 512, 128, 512)
        return float((20 * (a.log10() - b.log10())).pow(2).mean(dim=1).sqrt().mean())

    assert lsd(ours) < lsd(gl)
    assert float(F.l1_loss(log_mel(ours)[..., :125], m)) < float(F.l1_loss(log_mel(gl)[..., :125], m))
