"""tools/loop_variety.py: each spread measures the factor it names, on loops built to differ in it alone."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from loop_variety import spreads  # noqa: E402

FRAMES = 125


def _loop(onsets: list[int], n_mels: int = 80) -> torch.Tensor:
    """A log-mel ``(n_mels, FRAMES)`` with decaying hits at the given 16th steps."""
    m = torch.full((n_mels, FRAMES), -8.0, dtype=torch.float64)
    for step in onsets:
        start = round(step * FRAMES / 16)
        m[:, start:start + 4] = torch.tensor([0.0, -2.0, -4.0, -6.0], dtype=torch.float64)[: FRAMES - start]
    return m


def test_level_shifts_move_only_level_and_pixels():
    base = _loop([0, 4, 8, 12])
    gains = torch.tensor([-1.0, 0.0, 0.5, 1.5], dtype=torch.float64)
    mels = base + gains[:, None, None]
    level, bright, rhythm, pixels = spreads(mels, FRAMES)
    assert level == pytest.approx(float(gains.numpy().std()), rel=1e-6)  # a gain shifts the mean log-mel by itself
    assert bright == pytest.approx(0.0, abs=1e-9) and rhythm == pytest.approx(0.0, abs=1e-9)
    d = np.abs(gains.numpy()[:, None] - gains.numpy()[None])
    assert pixels == pytest.approx(d.sum() / 12, rel=1e-6)  # RMS distance of two images a constant d apart is d


def test_patterns_move_rhythm_and_identical_loops_spread_nothing():
    same = torch.stack([_loop([0, 4, 8, 12])] * 3)
    assert np.allclose(spreads(same, FRAMES), 0.0)
    varied = torch.stack([_loop([0, 4, 8, 12]), _loop([0, 6, 10]), _loop([2, 3, 7, 11, 14])])
    level, bright, rhythm, pixels = spreads(varied, FRAMES)
    assert rhythm > 0.3 and pixels > 0.5
    assert bright == pytest.approx(0.0, abs=1e-6)  # every band has the same envelope: the centroid does not move
