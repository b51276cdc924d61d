"""tools/loop_mel_grid.py: each column holds its own style, every row shares one colour scale."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from loop_mel_grid import rows_per_style, style_grid  # noqa: E402

from course_lib.models import stylegan2 as sg  # noqa: E402


def test_rows_per_style_puts_the_first_loops_of_each_class_in_its_column():
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0])
    picks = rows_per_style(labels, 3, 2)
    assert picks.tolist() == [[1, 2, 0], [3, 5, 4]]
    assert (labels[picks] == torch.arange(3)).all()
    with pytest.raises(ValueError, match="class 2 has 1 loops, the grid needs 2"):
        rows_per_style(torch.tensor([0, 0, 1, 1, 2]), 3, 2)


def test_style_grid_draws_one_row_per_source_on_the_mel_floor_to_ceiling_scale():
    spec = sg.MelImageSpec()
    names = ["a", "b", "c"]
    mels = torch.full((3, spec.mel.n_mels, spec.frames), spec.lo)
    fig, axes = style_grid([("real 1", mels), ("gen 1", mels + 1.0)], spec, names)
    try:
        assert axes.shape == (2, 3)
        assert [ax.get_title() for ax in axes[0]] == names
        assert axes[1, 0].get_ylabel() == "gen 1"
        assert all(ax.images[0].get_clim() == (spec.lo, spec.hi) for ax in axes.flat)
        with pytest.raises(ValueError, match="row 'short' has 2 images for 3 styles"):
            style_grid([("short", mels[:2])], spec, names)
    finally:
        plt.close("all")
