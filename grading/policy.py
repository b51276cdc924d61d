"""Load ``grading/thresholds.toml`` into typed settings and map metrics to points."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

THRESHOLDS = Path(__file__).with_name("thresholds.toml")


@dataclass(frozen=True)
class SubmissionPolicy:
    """What a valid HW2 loop folder is (see thresholds.toml [submission])."""

    n_loops: int
    sample_rate: int
    seconds: float
    channels: int
    silence_rms_db: float
    clip_level: float
    max_clipped_fraction: float
    max_file_bytes: int
    min_usable: int

    @property
    def samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))


@dataclass(frozen=True)
class Policy:
    """Every number of the grading policy."""

    submission: SubmissionPolicy
    dedupe_ncc: float
    dedupe_logmel_rms: float
    memo_ncc: float
    memo_logmel_rms: float
    memo_max_shift_frames: int
    quality_cell: str
    quality_max: float
    fad_rows: tuple[tuple[float, float], ...]   # (max FAD, points), ascending max
    is_rows: tuple[tuple[float, float], ...]    # (min IS, points), descending min

    def fad_points(self, fad: float) -> float:
        """Points for a FAD value (0 beyond the last row, or for NaN)."""
        for limit, points in self.fad_rows:
            if fad == fad and fad <= limit:
                return points
        return 0.0

    def is_points(self, inception: float) -> float:
        """Points for an IS value (0 below the last row, or for NaN)."""
        for limit, points in self.is_rows:
            if inception == inception and inception >= limit:
                return points
        return 0.0


def load_policy(path: Path | str | None = None) -> Policy:
    """Parse and check the thresholds file; a clear ValueError names the file and the bad entry.

    Default: ``$HW2_THRESHOLDS`` if set (a course's own copy), else ``grading/thresholds.toml``.
    """
    path = Path(path or os.environ.get("HW2_THRESHOLDS") or THRESHOLDS)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    try:
        sub = SubmissionPolicy(**raw["submission"])
        fad_rows = tuple(sorted((float(r["max"]), float(r["points"])) for r in raw["points"]["fad"]))
        is_rows = tuple(sorted(((float(r["min"]), float(r["points"])) for r in raw["points"]["is"]), reverse=True))
        policy = Policy(
            submission=sub,
            dedupe_ncc=float(raw["dedupe"]["waveform_ncc"]),
            dedupe_logmel_rms=float(raw["dedupe"]["logmel_rms_distance"]),
            memo_ncc=float(raw["memorisation"]["waveform_ncc"]),
            memo_logmel_rms=float(raw["memorisation"]["logmel_rms_distance"]),
            memo_max_shift_frames=int(raw["memorisation"]["max_shift_frames"]),
            quality_cell=str(raw["points"]["quality_cell"]),
            quality_max=float(raw["points"]["quality_max"]),
            fad_rows=fad_rows,
            is_rows=is_rows,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: missing or malformed entry {exc}") from exc
    best = max(p for _, p in fad_rows) + max(p for _, p in is_rows)
    if abs(best - policy.quality_max) > 1e-9:
        raise ValueError(f"{path}: best FAD + IS points = {best}, but quality_max = {policy.quality_max}")
    if any(b[1] > a[1] for a, b in zip(fad_rows, fad_rows[1:])):
        raise ValueError(f"{path}: FAD points must not grow as the FAD limit grows")
    return policy
