"""course_lib.train.device and course_lib.plot."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import plot  # noqa: E402
from course_lib.train import device  # noqa: E402

SR = 16000


def test_pick_device_honours_env_and_rejects_missing_cuda(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert device.pick_device() == torch.device("cpu")
    monkeypatch.delenv("COURSE_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert device.pick_device().type == "cuda"
    else:
        assert device.pick_device().type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA"):
            device.pick_device("cuda")


def test_seed_everything_makes_draws_repeat():
    device.seed_everything(123)
    a = (torch.rand(3), np.random.rand(3))
    device.seed_everything(123)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_set_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert device.set_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            device.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_spectrogram_image_puts_a_tone_in_its_bin():
    t = torch.arange(SR) / SR
    x = torch.sin(2 * math.pi * 2000 * t)
    img = plot.spectrogram_image(x, SR, kind="linear", n_fft=1024, hop=256)
    assert img.shape == (513, SR // 256 + 1)
    assert int(np.argmax(img.mean(axis=1))) == round(2000 * 1024 / SR)


@pytest.mark.parametrize("kind", ["linear", "log", "mel"])
def test_plot_helpers_draw_on_given_axes(kind):
    x = torch.randn(2, SR // 2) * 0.1
    fig, ax = plt.subplots()
    out_fig, out_ax = plot.spectrogram(x[0], SR, ax=ax, kind=kind, title="noise")
    assert out_ax is ax and out_fig is fig and ax.get_title() == "noise" and len(ax.images) == 1
    fig2, axes = plot.clip_grid(x, SR, ncols=2, kind=kind)
    limits = {ax.images[0].get_clim() for ax in axes.flat}
    assert len(limits) == 1  # one shared colour scale
    fig3, ax3 = plot.waveform(x[0], SR)
    assert ax3.get_xlim()[1] == pytest.approx((SR // 2 - 1) / SR)
    plt.close("all")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        plot.spectrogram_image(torch.zeros(SR), SR, kind="cqt")
