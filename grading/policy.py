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
class GenerationPolicy:
    """How the scorer makes the graded loops from a checkpoint (thresholds.toml [generation]).

    ``seed``: the latent seed of the graded loops (the policy's, not the student's). The student picks
    ``truncation_psi`` in ``[truncation_psi_min, truncation_psi_max]`` through ``meta["truncation_psi"]`` of the checkpoint
    (absent: ``truncation_psi_default``). ``preview_loops`` loops of ``preview_seed`` (what the notebook hands in)
    are regenerated and compared with the first handed-in WAVs; ``preview_snr_db`` (dB) counts as a match.
    """

    seed: int = 20260
    truncation_psi_min: float = 0.5
    truncation_psi_max: float = 1.0
    truncation_psi_default: float = 1.0
    preview_loops: int = 8
    preview_seed: int = 0
    preview_snr_db: float = 30.0
    batch_size: int = 32


@dataclass(frozen=True)
class CheckpointLimits:
    """What a handed-in ``checkpoint.pt`` may cost (thresholds.toml [checkpoint]); checked before building it.

    Sizes are StyleGAN2Config fields; ``max_gmacs_per_loop``: an upper-bound estimate of the generator's
    multiply-accumulates per loop (10^9); ``time_limit_s`` / ``memory_mb``: the generation process's
    wall-clock and address-space limits.
    """

    max_bytes: int = 50_000_000
    max_channels: int = 512
    max_z_dim: int = 512
    max_w_dim: int = 512
    max_mapping_layers: int = 8
    max_classes: int = 64
    max_n_up: int = 5
    max_image_width: int = 256
    max_parameters: int = 30_000_000
    max_gmacs_per_loop: float = 10.0
    time_limit_s: float = 900.0
    memory_mb: int = 4096


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
    generation: GenerationPolicy = GenerationPolicy()
    checkpoint: CheckpointLimits = CheckpointLimits()
    memo_disguised_logmel_rms: float = 0.0   # low-pass / speed-change search (grading.similarity.find_disguised); 0 = off

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
            generation=GenerationPolicy(**raw.get("generation", {})),
            checkpoint=CheckpointLimits(**raw.get("checkpoint", {})),
            memo_disguised_logmel_rms=float(raw["memorisation"].get("disguised_logmel_rms_distance", 0.0)),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: missing or malformed entry {exc}") from exc
    best = max(p for _, p in fad_rows) + max(p for _, p in is_rows)
    if abs(best - policy.quality_max) > 1e-9:
        raise ValueError(f"{path}: best FAD + IS points = {best}, but quality_max = {policy.quality_max}")
    if any(b[1] > a[1] for a, b in zip(fad_rows, fad_rows[1:])):
        raise ValueError(f"{path}: FAD points must not grow as the FAD limit grows")
    gen = policy.generation
    if not 0.0 < gen.truncation_psi_min <= gen.truncation_psi_default <= gen.truncation_psi_max:
        raise ValueError(f"{path}: [generation] needs 0 < truncation_psi_min <= truncation_psi_default <= truncation_psi_max, got "
                         f"{gen.truncation_psi_min}, {gen.truncation_psi_default}, {gen.truncation_psi_max}")
    if gen.preview_loops < 0 or gen.batch_size < 1:
        raise ValueError(f"{path}: [generation] preview_loops must be >= 0 and batch_size >= 1")
    return policy
