"""Lesson 03's pitch-conditioned WaveNet recipe: the Gaussian pitch code and the annealed learning rate (issue 15)."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.models.wavenet import WaveNet, WaveNetConfig, generate_tokens, pitch_code
from course_lib.models.wavenet_presets import TrainPreset
from course_lib.runtime.loop import fit
from course_lib.train.wavenet import main as train_main
from course_lib.train.wavenet import random_crops, sine_note_data, wavenet_crop_loss

SOFT = WaveNetConfig(residual_channels=8, gate_channels=8, skip_channels=16, layers_per_cycle=3, cycles=1,
                     n_pitches=24, pitch_sigma=1.5)


def test_pitch_code_is_one_hot_at_zero_width_and_a_gaussian_bump_otherwise():
    p = torch.tensor([3, 10])
    assert torch.equal(pitch_code(p, 16, 0.0), torch.nn.functional.one_hot(p, 16).float())
    code = pitch_code(torch.tensor([10.5]), 16, 2.0)[0]
    for k in (0, 7, 10, 11, 15):
        assert math.isclose(float(code[k]), math.exp(-((k - 10.5) ** 2) / (2 * 2.0**2)), rel_tol=1e-5)
    assert int(code.argmax()) in (10, 11) and math.isclose(float(code[10]), float(code[11]), rel_tol=1e-6)


def test_soft_pitch_code_shares_weights_with_neighbours_one_hot_does_not():
    """Training on MIDI 10 moves the conditioning of MIDI 11 (never trained) with the Gaussian code only."""
    data = sine_note_data(440.0, seconds=0.05)
    data.pitch[:] = 10
    moved = {}
    for sigma in (0.0, 1.5):
        torch.manual_seed(0)
        m = WaveNet(WaveNetConfig(**{**SOFT.to_dict(), "dilations": (), "pitch_sigma": sigma}))
        before = [layer.global_proj.weight[:, 11].detach().clone() for layer in m.layers]
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(0)
        for _ in range(3):
            audio, pitch, _ = random_crops(data, 2, 65, g)
            loss = wavenet_crop_loss(m, audio, pitch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        moved[sigma] = max(float((layer.global_proj.weight[:, 11].detach() - b).abs().max()) for layer, b in zip(m.layers, before))
    assert moved[0.0] == 0.0  # a one-hot pitch never trained keeps its random vector
    assert moved[1.5] > 1e-3  # the bump of MIDI 10 reaches bin 11: 11 gets a learnt, neighbouring code


def test_soft_pitch_accepts_real_valued_pitches_fast_equals_naive_one_hot_refuses_them():
    torch.manual_seed(0)
    m = WaveNet(SOFT).eval()
    pitch = torch.tensor([3.0, 10.5, 17.25])
    fast = generate_tokens(m, 40, pitch=pitch, seed=4, method="fast")
    naive = generate_tokens(m, 40, pitch=pitch, seed=4, method="naive")
    assert torch.equal(fast, naive)
    x = fast[:, :30]
    with torch.no_grad():  # the fraction matters: 10.4 and 10.5 are different codes, 3.0 stays the same
        diff = (m(x, torch.tensor([3.0, 10.4, 17.25])) - m(x, pitch)).abs().amax(dim=(1, 2))
    assert diff[0] == 0 and diff[1] > 1e-6 and diff[2] == 0
    one_hot = WaveNet(WaveNetConfig(**{**SOFT.to_dict(), "dilations": (), "pitch_sigma": 0.0}))
    with pytest.raises(ValueError, match="whole numbers"):
        generate_tokens(one_hot, 4, pitch=torch.tensor([10.5]))
    with pytest.raises(ValueError, match="0..23"):
        generate_tokens(m, 4, pitch=torch.tensor([23.5]))
    with pytest.raises(ValueError, match="pitch_sigma"):
        WaveNetConfig(n_pitches=8, pitch_sigma=-1.0)
    with pytest.raises(SystemExit, match="--pitch"):
        train_main(["--model", "wavenet", "--pitch-sigma", "1", "--out", "/tmp/never_written.pt"])


def test_cosine_learning_rate_follows_its_formula_in_training_and_on_resume(tmp_path):
    tp = TrainPreset(steps=9, batch_size=1, crop=8, lr=0.4, lr_final=0.01)
    assert tp.lr_at(0) == pytest.approx(0.4) and tp.lr_at(8) == pytest.approx(0.01)
    assert tp.lr_at(4) == pytest.approx(0.01 + 0.5 * 0.39)  # half way: the mean of the two
    assert TrainPreset(5, 1, 8, 0.3).lr_at(3) == 0.3  # no lr_final: constant
    with pytest.raises(ValueError, match="lr_final"):
        TrainPreset(5, 1, 8, 0.3, lr_final=-1.0)

    # plain SGD on loss = w (gradient 1): each step lowers w by exactly that step's learning rate
    def run(steps, ckpt=None):
        w = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.zeros_(w.weight)
        opt = torch.optim.SGD(w.parameters(), lr=123.0)  # overridden by the schedule
        fit(w, opt, lambda s, g: None, lambda m, b: m.weight.sum(), steps, grad_clip=None, progress=False,
            checkpoint=ckpt, lr_schedule=lambda s: tp.lr_at(s, 9))
        return float(w.weight.detach())

    expected = -sum(tp.lr_at(s) for s in range(9))
    assert run(9) == pytest.approx(expected, rel=1e-6)
    run(4, tmp_path / "half.pt")  # stop after 4 steps, then resume to 9: same schedule, same result
    assert run(9, tmp_path / "half.pt") == pytest.approx(expected, rel=1e-6)


def test_pitch_shifted_crops_play_the_pitch_they_are_labelled_with():
    """Resampled crops of a 440 Hz sine: the FFT peak of each lies at 440 Hz * 2**(u/12) for its label 69 + u."""
    import numpy as np

    data = sine_note_data(440.0, seconds=0.5, amplitude=0.5)
    g = torch.Generator().manual_seed(3)
    audio, pitch, _ = random_crops(data, 6, 2048, g, pitch_shift=2.0)
    assert audio.shape == (6, 2048) and pitch.dtype == torch.float32
    shifts = pitch - 69
    assert shifts.abs().max() <= 2.0 and shifts.abs().max() > 0.5  # real shifts, inside the range
    for clip, u in zip(audio.numpy(), shifts.tolist()):
        spec = np.abs(np.fft.rfft(clip * np.hanning(len(clip)), n=1 << 18))
        measured = np.argmax(spec) * 16000 / (1 << 18)
        assert abs(1200 * math.log2(measured / (440.0 * 2 ** (u / 12)))) < 3  # cents
    plain, p0, _ = random_crops(data, 6, 2048, torch.Generator().manual_seed(3))
    assert p0.dtype == torch.long and torch.all(p0 == 69)  # no shift: the old crops, integer labels
    with pytest.raises(ValueError, match="pitch_shift"):
        random_crops(data, 2, 64, g, pitch_shift=-1.0)
