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
        assert device.pick_device().type == "cpu"  # MPS only when asked for (COURSE_DEVICE=mps)
        with pytest.raises(ValueError, match="CUDA"):
            device.pick_device("cuda")


def test_pick_device_never_picks_mps_unasked(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.pick_device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "mps")
    assert device.pick_device() == torch.device("mps")


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


def _wav_rate_and_samples(player) -> tuple[int, int]:
    """Sample rate and 16-bit sample count from the WAV header of an ``IPython.display.Audio``."""
    return int.from_bytes(player.data[24:28], "little"), int.from_bytes(player.data[40:44], "little") // 2


def _captured_display(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    return shown


def test_show_draws_the_first_20_ms_and_a_spectrogram_then_a_player(monkeypatch):
    import IPython.display

    shown = _captured_display(monkeypatch)
    x = torch.sin(2 * math.pi * 440 * torch.arange(SR // 2) / SR).unsqueeze(0)
    fig, (wave_ax, spec_ax) = plot.show(x, SR, "a4", kind="mel")
    t = wave_ax.lines[0].get_xdata()
    assert len(t) == int(0.02 * SR) and t[-1] < 0.02  # the zoom: 320 samples, under 20 ms
    assert wave_ax.get_title() == "a4 (first 20 ms)" and spec_ax.get_title() == "a4"
    assert len(shown) == 1 and isinstance(shown[0], IPython.display.Audio)
    assert _wav_rate_and_samples(shown[0]) == (SR, SR // 2)  # the whole clip, not the zoom
    plt.close(fig)


def test_listen_gives_one_player_per_clip_and_checks_titles(monkeypatch, capsys):
    shown = _captured_display(monkeypatch)
    plot.listen(torch.zeros(3, 800) + 0.1, 8000, titles=["a", "b", "c"])
    assert [_wav_rate_and_samples(a) for a in shown] == [(8000, 800)] * 3 and capsys.readouterr().out.split() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2 titles"):
        plot.listen(torch.zeros(3, 800), 8000, titles=["a", "b"])
    shown.clear()
    clips = {"x": torch.full((400,), 0.1), "y": torch.full((400,), 0.2)}
    plot.listen(clips.values(), 8000, clips.keys())  # dict views, as lessons pass them
    assert len(shown) == 2 and capsys.readouterr().out.split() == ["x", "y"]


def test_training_history_draws_the_loss_its_running_mean_and_a_reference():
    loss = [5.0, 4.0, 3.0, 2.0, 1.0]
    fig, ax = plot.training_history(loss, reference=(math.log(256), "uniform"), smooth=2)
    raw, mean = ax.lines[0], ax.lines[1]
    assert list(raw.get_ydata()) == loss
    assert list(mean.get_xdata()) == [1, 2, 3, 4] and list(mean.get_ydata()) == [4.5, 3.5, 2.5, 1.5]
    assert ax.lines[2].get_ydata()[0] == pytest.approx(math.log(256))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["per step", "mean of 2 steps", "uniform"]
    plt.close(fig)


def test_mel_grid_is_a_clip_grid_of_mel_spectrograms():
    clips = torch.randn(3, SR // 4, generator=torch.Generator().manual_seed(0)) * 0.1
    fig, axes = plot.mel_grid(clips, SR, ncols=2, titles=["x", "y", "z"])
    assert axes.shape == (2, 2) and [ax.get_title() for ax in axes.flat[:3]] == ["x", "y", "z"]
    assert not axes.flat[3].axison  # the spare cell is blank
    plt.close(fig)


def test_show_with_no_zoom_draws_the_whole_clip(monkeypatch):
    _captured_display(monkeypatch)
    x = torch.full((SR // 4,), 0.1)
    fig, (wave_ax, _) = plot.show(x, SR, "all", zoom_ms=None)
    assert len(wave_ax.lines[0].get_xdata()) == SR // 4 and wave_ax.get_title() == "all"
    plt.close(fig)


def test_compare_pads_clips_to_one_length_and_gives_a_player_under_each_title(monkeypatch):
    import IPython.display

    shown = _captured_display(monkeypatch)
    clips = [torch.full((800,), 0.1), torch.full((400,), 0.1)]  # different lengths: the short one is zero-padded
    fig, axes = plot.compare(clips, 8000, ["long", "short"], kind="linear")
    assert axes.shape == (1, 2) and [ax.get_title() for ax in axes.flat] == ["long", "short"]  # one row by default
    players = [o for o in shown if isinstance(o, IPython.display.Audio)]
    assert [_wav_rate_and_samples(a) for a in players] == [(8000, 800)] * 2
    assert [o.data for o in shown if isinstance(o, IPython.display.Markdown)] == ["**long**", "**short**"]
    shown.clear()
    fig2, _ = plot.compare(torch.full((2, 1600), 0.1), 8000, kind="linear", seconds=0.1, players=False)  # cut: 800
    assert shown == []  # nothing shown yet: the caller may annotate first
    assert fig2.axes[0].images[0].get_array().shape == fig.axes[0].images[0].get_array().shape  # both 800 samples
    with pytest.raises(ValueError, match="2 clips but 1 titles"):
        plot.compare(clips, 8000, ["only one"])
    plt.close("all")


def test_mel_images_share_one_colour_scale_and_a_time_axis_in_seconds():
    mels = torch.stack([torch.zeros(8, 10), torch.ones(8, 10)])
    fig, axes = plot.mel_images(mels, sr=100, hop=10, titles=["0", "1"], ncols=3)
    first, second = axes.flat[0].images[0], axes.flat[1].images[0]
    assert first.get_clim() == second.get_clim() == (0.0, 1.0)
    assert first.get_extent() == [0.0, 1.0, 0.0, 8.0]  # 10 frames of 10 samples at 100 Hz = 1 s
    assert not axes.flat[2].axison
    plt.close(fig)


def test_listen_sets_draws_the_first_clip_of_each_set_and_n_players_per_set(monkeypatch):
    import IPython.display

    shown = _captured_display(monkeypatch)
    sets = {"real": torch.full((3, 800), 0.1), "fake": torch.full((2, 800), 0.2)}
    fig, axes = plot.listen_sets(sets, 8000, n=2, ncols=4)
    assert [ax.get_title() for ax in axes.flat if ax.get_title()] == ["real", "fake"]
    assert [o.data for o in shown if isinstance(o, IPython.display.Markdown)] == ["**real**", "**fake**"]
    assert [_wav_rate_and_samples(a) for a in shown if isinstance(a, IPython.display.Audio)] == [(8000, 800)] * 4
    with pytest.raises(ValueError, match="no sets"):
        plot.listen_sets({}, 8000)
    plt.close("all")


def test_md_table_writes_every_cell_and_refuses_a_ragged_row(monkeypatch):
    import IPython.display

    shown = _captured_display(monkeypatch)
    text = plot.md_table(["set", "FAD"], [["real", 3.1], ["a|b", "x"]], show=False)
    assert text.splitlines() == ["| set | FAD |", "|---|---|", "| real | 3.1 |", "| a\\|b | x |"] and shown == []
    assert plot.md_table(["set", "FAD"], [["real", 3.1]]) is None  # shown once, nothing echoed by the cell
    assert len(shown) == 1 and shown[0].data.startswith("| set | FAD |")
    with pytest.raises(ValueError, match="row 1 has 1 cells, the header 2"):
        plot.md_table(["set", "FAD"], [["real", 3.1], ["short"]], show=False)


def test_f0_contour_draws_target_and_measured_pitch_with_midi_ticks():
    t = np.linspace(0, 1, 20)
    want = 440 * 2 ** ((np.linspace(55, 67, 20) - 69) / 12)
    got = want * 2 ** (10 / 1200)
    got[3] = np.nan  # an unvoiced frame
    fig, ax = plot.f0_contour(t, got, want)
    target_line, played = ax.lines[0], ax.lines[1]
    np.testing.assert_allclose(target_line.get_ydata(), want)
    assert np.isnan(played.get_ydata()[3]) and ax.get_yscale() == "log"
    right = [a for a in fig.axes if a is not ax][0]
    assert [tk.get_text() for tk in right.get_yticklabels()] == [str(m) for m in range(55, 68)]
    plt.close(fig)
