"""The compiled (numba) TSM kernels against the torch reference paths they replace."""

from __future__ import annotations

import pytest
import torch

from course_lib.synth import drums
from course_lib.synth.additive import harmonic_tone
from course_lib.tsm import hpss, time_stretch
from course_lib.tsm.hptsm import median_filter

pytest.importorskip("numba")

SR = 22050


@pytest.fixture(scope="module")
def music() -> torch.Tensor:
    """Two items (1.5 s): a tone melody over kicks, and the same shifted; (2, samples)."""
    tones = harmonic_tone(torch.tensor([220.0, 330.0, 277.0, 415.0, 196.0, 247.0]), 0.25, SR, n_harmonics=6)
    melody = tones.reshape(-1)
    beat = torch.zeros_like(melody)
    kick = drums.kick(0.2, SR, seed=0)[0]
    for i in range(0, melody.shape[0] - kick.shape[0], SR // 4):
        beat[i:i + kick.shape[0]] += kick
    x = 0.5 * melody + 0.3 * beat
    return torch.stack([x, x.roll(3001)]) / x.abs().max()


@pytest.mark.parametrize("size,dim", [(9, -1), (23, -2), (3, -1), (5, -2)])
def test_running_median_bit_equal_to_torch(torch_reference, size, dim):
    g = torch.Generator().manual_seed(size)
    mag = torch.rand(2, 129, 70, generator=g)
    mag[0, 10:20] = 0.5  # ties: many equal values in a window
    fast = median_filter(mag, size, dim)
    slow = torch_reference(lambda: median_filter(mag, size, dim))
    assert torch.equal(fast, slow)
    # and it is a median: at an interior point it equals the middle of the sorted window
    row = mag[1, 40] if dim == -1 else mag[1, :, 40]
    c = 35 if dim == -1 else 60
    expect = row[c - size // 2:c + size // 2 + 1].sort().values[size // 2]
    got = fast[1, 40, c] if dim == -1 else fast[1, c, 40]
    assert float(got) == float(expect)


@pytest.mark.parametrize("rate", [0.7, 1.4])
def test_wsola_kernel_picks_the_same_frames(torch_reference, music, rate):
    fast = time_stretch(music, SR, rate, method="wsola")
    slow = torch_reference(lambda: time_stretch(music, SR, rate, method="wsola"))
    assert fast.shape == slow.shape
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)
    one = time_stretch(music[1], SR, rate, method="wsola")  # batch and single item agree
    torch.testing.assert_close(one, fast[1], atol=1e-6, rtol=0)


def test_hpss_and_hptsm_same_with_kernels(torch_reference, music):
    h_fast, p_fast = hpss(music, SR)
    h_slow, p_slow = torch_reference(lambda: hpss(music, SR))
    assert torch.equal(h_fast, h_slow) and torch.equal(p_fast, p_slow)
    fast = time_stretch(music, SR, 0.8, method="hptsm")
    slow = torch_reference(lambda: time_stretch(music, SR, 0.8, method="hptsm"))
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)


@pytest.mark.parametrize("rate", [0.6, 1.7])
def test_ola_synthesis_kernel_bit_equal(torch_reference, music, rate):
    fast = time_stretch(music, SR, rate, method="ola")
    slow = torch_reference(lambda: time_stretch(music, SR, rate, method="ola"))
    assert torch.equal(fast, slow)
    assert float(fast.abs().max()) > 0.1
