"""The compiled (numba) kernels of course_lib.synth against the torch reference paths they replace."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from course_lib.synth import envelopes, filters, kernels, oscillators, subtractive

pytest.importorskip("numba")

SR = 16000


def test_rational_tanh_within_float32_resolution_of_tanh():
    v = np.linspace(-20.0, 20.0, 400_001)
    err = np.abs(kernels.tanh(v) - np.tanh(v))
    assert err.max() < 5e-8
    small = np.linspace(-1e-3, 1e-3, 2001)
    assert np.allclose(kernels.tanh(small), np.tanh(small), rtol=2e-7, atol=0)


def test_ladder_kernel_matches_torch_path_with_swept_cutoff_and_resonance(torch_reference):
    g = torch.Generator().manual_seed(3)
    batch, samples = 6, 4000
    x = torch.randn(batch, samples, generator=g) * 0.8
    sweep = 60.0 * torch.pow(2.0, 7.0 * torch.rand(batch, samples, generator=g))  # 60 Hz .. 7.7 kHz, jumpy
    sweep = sweep.clamp(max=0.49 * SR)
    res = torch.rand(batch, samples, generator=g) * 1.1  # per sample, up to self-oscillation
    drive = torch.tensor([0.5, 1.0, 2.0, 4.0, 1.0, 3.0])
    assert kernels.serves(x, sweep, res, drive)
    fast = filters.ladder(x, sweep, res, SR, drive=drive)
    slow = torch_reference(lambda: filters.ladder(x, sweep, res, SR, drive=drive))
    assert fast.shape == slow.shape == (batch, samples) and fast.dtype == torch.float32
    assert float(slow.abs().max()) > 0.1  # the comparison is on real output, not silence
    torch.testing.assert_close(fast, slow, atol=2e-6, rtol=0)


def test_ladder_kernel_matches_torch_path_fixed_cutoff_ringing_and_1d(torch_reference):
    kick = torch.zeros(2, 6000)
    kick[:, :50] = 0.5
    res = torch.tensor([1.1, 0.5])
    fast = filters.ladder(kick, 1000.0, res, SR)
    slow = torch_reference(lambda: filters.ladder(kick, 1000.0, res, SR))
    torch.testing.assert_close(fast[1], slow[1], atol=2e-6, rtol=0)  # rings and decays
    # self-oscillation (resonance 1.1) keeps every rounding difference: the float32 reference drifts
    # from the float64 kernel linearly, by 2.4e-4 of the tone's amplitude after 6,000 samples (a phase drift)
    ringing_peak = float(slow[0, -1000:].abs().max())
    assert ringing_peak > 0.05
    torch.testing.assert_close(fast[0], slow[0], atol=2e-3 * ringing_peak, rtol=0)
    x = torch.randn(3000, generator=torch.Generator().manual_seed(0))
    one_d = filters.ladder(x, 500.0, 0.3, SR)
    assert one_d.shape == (3000,)
    torch.testing.assert_close(one_d, torch_reference(lambda: filters.ladder(x, 500.0, 0.3, SR)),
                               atol=2e-6, rtol=0)


def test_subtractive_voice_same_with_and_without_kernels(torch_reference):
    f0 = torch.tensor([41.2, 55.0, 98.0, 440.0, 1760.0])  # PolyBLEP and additive voices
    kw = dict(cutoff_hz=150.0, resonance=0.4, filter_env_amount=3.0, decay=0.3, sustain=0.3, seed=4)
    fast = subtractive.subtractive_voice(f0, 0.5, SR, **kw)
    slow = torch_reference(lambda: subtractive.subtractive_voice(f0, 0.5, SR, **kw))
    torch.testing.assert_close(fast, slow, atol=3e-6, rtol=0)


def test_adsr_kernel_bit_equal_including_edge_cases(torch_reference):
    g = torch.Generator().manual_seed(1)
    n = 48
    a, d, s = torch.rand(n, generator=g) * 0.2, torch.rand(n, generator=g) * 0.3, torch.rand(n, generator=g)
    r, off = torch.rand(n, generator=g) * 0.3, torch.rand(n, generator=g) * 0.8
    a[:4] = 0.0  # no attack
    d[4:8] = 0.0  # no decay
    r[8:10] = 0.0  # instant release
    off[10:12] = 0.0  # released at once
    off[12:16] = a[12:16] * 0.5  # released during the attack
    fast = envelopes.adsr(a, d, s, r, off, 0.75, SR)
    slow = torch_reference(lambda: envelopes.adsr(a, d, s, r, off, 0.75, SR))
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("glide", [False, True])
def test_polyblep_saw_kernel_bit_equal(torch_reference, glide):
    g = torch.Generator().manual_seed(2)
    f0 = torch.tensor([30.0, 61.7, 110.0, 123.0, 300.0, 2000.0])  # the last two: additive voices
    if glide:
        f0 = f0.reshape(-1, 1) * torch.pow(2.0, torch.linspace(0.0, 1.0, 8000)).reshape(1, -1)
    phase = torch.rand(6, generator=g) * 6.28
    fast = oscillators.sawtooth(f0, 0.5, SR, phase=phase, amplitude=0.7)
    slow = torch_reference(lambda: oscillators.sawtooth(f0, 0.5, SR, phase=phase, amplitude=0.7))
    assert torch.equal(fast, slow)


def test_gradients_take_the_torch_path():
    x = torch.randn(2, 400, generator=torch.Generator().manual_seed(0))
    cutoff = torch.full((2, 400), 800.0, requires_grad=True)
    assert not kernels.serves(x, cutoff)
    y = filters.ladder(x, cutoff, 0.3, SR)
    y.pow(2).sum().backward()
    assert cutoff.grad is not None and torch.isfinite(cutoff.grad).all() and cutoff.grad.abs().sum() > 0
    with torch.no_grad():
        assert kernels.serves(x, cutoff)


def test_without_numba_everything_falls_back(monkeypatch):
    x = torch.randn(2, 500, generator=torch.Generator().manual_seed(0))
    with_kernel = filters.ladder(x, 700.0, 0.5, SR)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    kernels._compiled.cache_clear()
    try:
        assert not kernels.available()
        torch.testing.assert_close(filters.ladder(x, 700.0, 0.5, SR), with_kernel, atol=2e-6, rtol=0)
        assert envelopes.adsr(0.01, 0.1, 0.5, 0.1, 0.02, 0.05, SR).shape == (1, 800)
    finally:
        kernels._compiled.cache_clear()
