"""``score``: the trusted part of HW2 grading — loop quality points from the submitted WAVs only.

Runs in its own process (``python -m grading.score SUBMISSION_DIR --out report.json``), started
by the TA's pipeline with a time and memory limit; it imports only the course's code, reads only
the files of ``hw2/loops/`` (never the student's notebook objects or checkpoint), and writes a
JSON report. Steps, each recorded in the report:

1. validate every file against ``thresholds.toml`` (:mod:`grading.validate`);
2. drop near-duplicates within the submission (mode collapse) and copies of training loops
   (memorisation, robust to gain, light noise and time shifts) (:mod:`grading.similarity`);
3. FAD (with a bootstrap 95 % interval) and IS of the usable loops against the shipped
   reference statistics, with the shipped loop classifier (:mod:`course_lib.metrics`);
4. points = (FAD points + IS points) x min(1, usable / n_loops); none below ``min_usable``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from grading import similarity, validate
from grading.policy import Policy, load_policy
from grading.reference import ReferenceAssets, load_reference_assets

BOOTSTRAP_RESAMPLES = 50
SEED = 0


@dataclass
class ScoreReport:
    """Everything the feedback needs to explain the loop-quality points."""

    student: str
    n_files: int = 0
    n_valid: int = 0
    n_usable: int = 0
    problems: list[str] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    memorised: list[dict] = field(default_factory=list)
    fad: float | None = None
    fad_ci: tuple[float, float] | None = None
    inception_score: float | None = None
    inception_score_std: float | None = None
    fad_points: float = 0.0
    is_points: float = 0.0
    usable_factor: float = 0.0
    n_required: int = 0
    points: float = 0.0
    max_points: float = 0.0
    usable_names: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    reproduction: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False, default=float)

    @classmethod
    def from_json(cls, text: str) -> "ScoreReport":
        data = json.loads(text)
        if data.get("fad_ci") is not None:
            data["fad_ci"] = tuple(data["fad_ci"])
        return cls(**data)

    def summary(self) -> str:
        """One line for the grade comment in formgrader."""
        if self.error:
            return f"Loop quality not scored: {self.error}"
        if self.fad is None:
            return (f"Loop quality: 0 / {self.max_points:g} — only {self.n_usable} usable loops, too few to "
                    f"score; the problems listed give each file's reason.")
        ci = f" (95% CI {self.fad_ci[0]:.2f}-{self.fad_ci[1]:.2f})" if self.fad_ci else ""
        return (f"Loop quality: {self.points:.1f} / {self.max_points:g} — FAD {self.fad:.2f}{ci} -> "
                f"{self.fad_points:g} pts, IS {self.inception_score:.2f} -> {self.is_points:g} pts, "
                f"x {self.usable_factor:.2f} for {self.n_usable}/{self.n_required or self.n_files} usable loops.")


def collect_notes(submission_dir: Path) -> list[str]:
    """What ``collect`` left out of this submission (symlinks, unsafe paths, oversized files)."""
    info = Path(submission_dir) / ".collected.json"
    if not info.is_file():
        return []
    try:
        return [f"not unpacked: {s}" for s in json.loads(info.read_text(encoding="utf-8")).get("skipped", [])]
    except (ValueError, OSError):
        return []


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def score_loops(loops_dir: Path, policy: Policy, assets: ReferenceAssets, student: str = "") -> ScoreReport:
    """Score one ``loops/`` folder (the whole trusted computation; deterministic)."""
    start = time.perf_counter()
    torch.manual_seed(SEED)
    sub = policy.submission
    report = ScoreReport(student=student, max_points=policy.quality_max, n_required=sub.n_loops)
    folder = validate.check_folder(Path(loops_dir), sub)
    report.n_files = len(folder.checks)
    report.n_valid = folder.n_usable
    report.problems = collect_notes(Path(loops_dir).parent) + folder.problems()

    keep = np.ones(folder.n_usable, dtype=bool)
    if folder.n_usable:
        audio = torch.from_numpy(folder.audio)
        logmels = similarity.normalised_logmel(audio)
        for m in similarity.find_duplicates(audio, logmels, policy.dedupe_ncc, policy.dedupe_logmel_rms,
                                            policy.memo_max_shift_frames):
            keep[m.index] = False
            report.duplicates.append({"loop": folder.names[m.index], "same_as": folder.names[m.ref_index],
                                      "ncc": round(m.ncc, 4), "distance": round(m.distance, 4)})
        for m in similarity.find_memorised(audio, logmels, assets.training_audio, assets.training_logmels,
                                           policy.memo_ncc, policy.memo_logmel_rms, policy.memo_max_shift_frames):
            keep[m.index] = False
            report.memorised.append({"loop": folder.names[m.index], "training_loop": assets.training_names[m.ref_index],
                                     "ncc": round(m.ncc, 4), "distance": round(m.distance, 4),
                                     "shift_frames": m.shift})
    usable = folder.audio[keep] if folder.n_usable else folder.audio
    report.usable_names = [n for n, k in zip(folder.names, keep) if k]
    report.n_usable = int(usable.shape[0])
    report.usable_factor = min(1.0, report.n_usable / sub.n_loops)

    if report.n_usable >= max(sub.min_usable, 2):
        from course_lib.metrics.evaluate import evaluate

        result = evaluate(torch.from_numpy(usable), assets.reference, sr=sub.sample_rate, classifier=assets.classifier,
                          fad_boot=BOOTSTRAP_RESAMPLES, device="cpu", seed=SEED)
        report.fad = _finite_or_none(result.fad)
        report.fad_ci = tuple(float(v) for v in result.fad_ci) if result.fad_ci else None
        report.inception_score = _finite_or_none(result.is_mean)
        report.inception_score_std = _finite_or_none(result.is_std)
        report.fad_points = policy.fad_points(report.fad if report.fad is not None else float("nan"))
        report.is_points = policy.is_points(report.inception_score if report.inception_score is not None else float("nan"))
        report.points = round((report.fad_points + report.is_points) * report.usable_factor, 2)
    else:
        report.problems.append(f"only {report.n_usable} usable loops after validation, de-duplication and the "
                               f"memorisation check (at least {sub.min_usable} needed for any quality points)")
    report.seconds = round(time.perf_counter() - start, 2)
    return report


REPRODUCED_SNR_DB = 30.0
"""A regenerated loop reproduces a handed-in one when their SNR is at least this (dB): 16-bit rounding and
another machine's float arithmetic (a GPU, another BLAS) stay far above it; a different loop is near 0 dB."""


def _wav_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.wav") if p.is_file() and not p.is_symlink()) if folder.is_dir() else []


def reproduction_check(loops_dir: Path, regenerated_dir: Path) -> dict:
    """Do the loops regenerated from the checkpoint while autograding match the first ones handed in?

    Compares the regenerated files (sorted by name) with as many of the handed-in ``loops_dir`` files
    (sorted by name); reported in the feedback, it gives no points. Returns ``{"compared", "reproduced",
    "snr_db": [...]}`` (``None`` for a pair that could not be read or differs in length) or a ``note``.
    """
    regenerated = _wav_files(Path(regenerated_dir))
    if not regenerated:
        return {"compared": 0, "reproduced": 0, "snr_db": [],
                "note": "no loops were regenerated from checkpoint.pt while autograding"}
    handed_in = _wav_files(Path(loops_dir))[: len(regenerated)]
    snrs: list[float | None] = []
    for ours, theirs in zip(regenerated, handed_in):
        try:
            x, _ = sf.read(str(theirs), dtype="float64", always_2d=False)
            y, _ = sf.read(str(ours), dtype="float64", always_2d=False)
        except (RuntimeError, ValueError, OSError):
            snrs.append(None)
            continue
        if x.shape != y.shape or x.size == 0:
            snrs.append(None)
            continue
        error = float(np.sum((x - y) ** 2))
        snrs.append(99.0 if error == 0 else round(10 * math.log10(max(float(np.sum(x ** 2)), 1e-30) / error), 1))
    snrs += [None] * (len(regenerated) - len(snrs))
    return {"compared": len(regenerated), "reproduced": sum(v is not None and v >= REPRODUCED_SNR_DB for v in snrs),
            "snr_db": snrs}


def score_path(course_dir: Path, student: str) -> Path:
    """Where a student's score report lives in the grading folder."""
    return Path(course_dir) / "scores" / f"{student}.json"


def main(argv: list[str] | None = None) -> int:
    """Score the given students' submissions in this (separate, trusted) process, one JSON each."""
    ap = argparse.ArgumentParser(description="Trusted HW2 loop-quality scoring (run by `python -m grading`).")
    ap.add_argument("--course-dir", type=Path, required=True)
    ap.add_argument("--students", nargs="+", required=True)
    ap.add_argument("--thresholds", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    policy = load_policy(args.thresholds) if args.thresholds else load_policy()
    assets = load_reference_assets()
    for student in args.students:
        loops = args.course_dir / "submitted" / student / "hw2" / "loops"
        try:
            report = score_loops(loops, policy, assets, student)
            report.reproduction = reproduction_check(
                loops, args.course_dir / "autograded" / student / "hw2" / "regenerated")
        except Exception as exc:  # the report must say what went wrong; the batch goes on
            report = ScoreReport(student=student, max_points=policy.quality_max, error=f"{type(exc).__name__}: {exc}")
        out = score_path(args.course_dir, student)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(report.to_json(), encoding="utf-8")
        tmp.replace(out)
        print(f"scored {student}: {report.points:g} points in {report.seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
