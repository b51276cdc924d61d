"""Lesson 07's table tool re-measures only the WaveNet autoencoder's rows after it is retrained (--wavenet-only)."""

from __future__ import annotations

import json
from pathlib import Path

from course_lib.metrics import ddsp_eval

SHIPPED = Path(ddsp_eval.__file__).resolve().parents[1] / "assets" / "ddsp_comparison.json"


def test_wavenet_only_replaces_the_wavenet_rows_and_keeps_the_others(tmp_path, monkeypatch):
    shipped = json.loads(SHIPPED.read_text())  # the installed tables
    kept = [r for r in shipped["rows"] if r["model"] != ddsp_eval.WAVENET_ROW]
    out = tmp_path / "table.json"
    out.write_text(json.dumps(shipped))
    # a stand-in for the shipped autoencoder: it hands back the notes it is given (a perfect reconstruction)
    monkeypatch.setattr(ddsp_eval, "wavenet_reconstruction", lambda notes, pitches, progress=False: (notes, 42.0))
    assert ddsp_eval.main(["--out", str(out), "--wavenet-only"]) == 0
    result = json.loads(out.read_text())
    assert result["command"] == shipped["command"]  # the other rows and their command stay
    assert result["wavenet_command"].endswith("--wavenet-only")
    assert result["rows"][:len(kept)] == kept
    new = [r for r in result["rows"] if r["model"] == ddsp_eval.WAVENET_ROW]
    assert sorted(r["notes_set"] for r in new) == ["heldout_pitches", "heldout_velocities"]
    for row in new:  # measured, not copied: a perfect reconstruction is at distance 0 and keeps every pitch
        assert row["median_msd"] < 1e-3 and row["notes_within_50_cents"] == row["notes"] and row["train_minutes"] == 42.0
