"""``score``: the trusted part of HW2 grading — loop-quality points from the student's checkpoint.

Runs in its own process (``python -m grading.score --course-dir D --students ...``), started by the
TA's pipeline with a time limit; it imports only the course's code and never runs a student's
notebook. For each submission (:func:`score_submission`), each step recorded in the report:

1. the graded loops are made here, from ``hw2/checkpoint.pt`` (:mod:`grading.trusted_generation`:
   weights-only load, size limits checked before building, a time- and memory-limited child
   process running ``course_lib.hw2.generate_loops`` at the policy's seed and the student's
   truncation psi within the policy's range); a missing or refused checkpoint gets 0 points with
   the reason;
2. the handed-in ``loops/`` are the student's *preview*: they are validated (reasons listed) and
   the first ``preview_loops`` are compared with the loops their checkpoint makes at seed 0
   (SNR >= ``preview_snr_db``); a mismatch gives no points and is flagged for the TA;
3. validation of the generated loops, near-duplicates (mode collapse) and copies of training
   loops (memorisation, also through polarity, low-pass and small speed changes) dropped
   (:mod:`grading.validate`, :mod:`grading.similarity`);
4. FAD (with a bootstrap 95 % interval) and IS of the usable loops against the shipped reference
   statistics, with the shipped loop classifier (:mod:`course_lib.metrics`);
5. points = (FAD points + IS points) x min(1, usable / n_loops); none below ``min_usable``.

One submission can never stop the batch: each student's failure becomes that student's error,
and every number that reaches a report is finite or null.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from grading import similarity, validate
from grading.policy import Policy, load_policy
from grading.reference import ReferenceAssets, grading_vocoder_id, load_reference_assets

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
    reproduction: dict = field(default_factory=dict)   # preview check: handed-in loops vs checkpoint at seed 0
    checkpoint: dict = field(default_factory=dict)     # what was generated from: config, psi, seed, seconds
    checkpoint_problem: str = ""                       # why no loops could be generated (0 points)
    handed_in: dict = field(default_factory=dict)      # the handed-in loops/ folder: files, valid, problems
    ta_flags: list[str] = field(default_factory=list)  # for the TA: preview mismatch, psi clamped, refusals

    def to_json(self) -> str:
        """JSON with every non-finite number written as null (never NaN / Infinity)."""
        return json.dumps(json_safe(asdict(self)), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "ScoreReport":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        if data.get("fad_ci") is not None:
            data["fad_ci"] = tuple(data["fad_ci"])
        return cls(**data)

    def summary(self) -> str:
        """One line for the grade comment in formgrader."""
        if self.error:
            return f"Loop quality not scored: {self.error}"
        if self.checkpoint_problem:
            return f"Loop quality: 0 / {self.max_points:g} — no loops generated: {self.checkpoint_problem}"
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


def json_safe(obj):
    """``obj`` with non-finite floats -> None, numpy scalars/arrays and tuples -> plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def score_loops(loops_dir: Path, policy: Policy, assets: ReferenceAssets, student: str = "") -> ScoreReport:
    """Score the WAV files of one ``loops/`` folder as they are (no checkpoint; deterministic)."""
    start = time.perf_counter()
    folder = validate.check_folder(Path(loops_dir), policy.submission)
    report = _score_checked(folder, policy, assets, student, collect_notes(Path(loops_dir).parent))
    report.seconds = round(time.perf_counter() - start, 2)
    return report


def score_audio(audio: np.ndarray, names: list[str], policy: Policy, assets: ReferenceAssets,
                student: str = "") -> ScoreReport:
    """Score loops made in memory ``(n, samples)`` float in [-1, 1] (the scorer's generated loops)."""
    start = time.perf_counter()
    folder = validate.check_audio(np.asarray(audio, np.float32), names, policy.submission, "generated loops")
    report = _score_checked(folder, policy, assets, student, [])
    report.seconds = round(time.perf_counter() - start, 2)
    return report


def _score_checked(folder: validate.FolderCheck, policy: Policy, assets: ReferenceAssets, student: str,
                   notes: list[str]) -> ScoreReport:
    """Dedupe, memorisation, FAD / IS and points of validated loops (the shared trusted computation)."""
    torch.manual_seed(SEED)
    sub = policy.submission
    report = ScoreReport(student=student, max_points=policy.quality_max, n_required=sub.n_loops)
    report.n_files = len(folder.checks)
    report.n_valid = folder.n_usable
    report.problems = notes + folder.problems()

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
                                           policy.memo_ncc, policy.memo_logmel_rms, policy.memo_max_shift_frames,
                                           policy.memo_disguised_logmel_rms):
            keep[m.index] = False
            report.memorised.append({"loop": folder.names[m.index], "training_loop": assets.training_names[m.ref_index],
                                     "ncc": round(m.ncc, 4), "distance": round(m.distance, 4),
                                     "shift_frames": m.shift, "disguise": m.disguise})
        if assets.vocoded_logmels is not None:  # what a generator reproducing a training loop's mel outputs
            rest = np.flatnonzero(keep)
            idx = torch.from_numpy(rest)
            for m in similarity.find_memorised(audio[idx], logmels[idx], assets.vocoded_audio, assets.vocoded_logmels,
                                               policy.memo_ncc, policy.memo_logmel_rms, policy.memo_max_shift_frames):
                keep[rest[m.index]] = False
                report.memorised.append({"loop": folder.names[rest[m.index]],
                                         "training_loop": assets.training_names[m.ref_index],
                                         "ncc": round(m.ncc, 4), "distance": round(m.distance, 4),
                                         "shift_frames": m.shift, "disguise": "through the grading vocoder"})
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
    return report


REPRODUCED_SNR_DB = 30.0
"""Default of ``[generation] preview_snr_db``: a regenerated loop reproduces a handed-in one when their SNR is at
least this (dB): 16-bit rounding and another machine's float arithmetic (a GPU, another BLAS) stay far above it;
a different loop is near 0 dB."""
KEEP_FOR_FEEDBACK = 4  # generated loops saved as WAV for the feedback page


def _wav_files(folder: Path) -> list[Path]:
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.wav") if p.is_file() and not p.is_symlink())


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float | None:
    """``10 log10(sum ref^2 / sum (ref - est)^2)`` in dB, capped at 99; None when not comparable.

    Not comparable: different shapes, empty, or any non-finite sample (never returns NaN).
    """
    x, y = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    if x.shape != y.shape or x.size == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    error = float(np.sum((x - y) ** 2))
    if error == 0.0:
        return 99.0
    return round(min(99.0, 10 * math.log10(max(float(np.sum(x ** 2)), 1e-30) / error)), 1)


def preview_check(loops_dir: Path, preview: np.ndarray, threshold_db: float = REPRODUCED_SNR_DB) -> dict:
    """Do the first handed-in WAVs (sorted by name) match the loops the checkpoint makes at the preview seed?

    ``preview`` ``(k, samples)``: the scorer's own loops 0..k-1 of the preview seed. Returns ``{"compared": k,
    "reproduced", "snr_db": [...] (None: unreadable, other length or non-finite), "mismatch": bool}`` or,
    with nothing to compare, a ``note``.
    """
    k = int(preview.shape[0])
    if k == 0:
        return {"compared": 0, "reproduced": 0, "snr_db": [], "mismatch": False, "note": "preview check off"}
    handed_in = _wav_files(Path(loops_dir))[:k]
    if not handed_in:
        return {"compared": 0, "reproduced": 0, "snr_db": [], "mismatch": True,
                "note": "no WAV files handed in in loops/ to compare with what checkpoint.pt generates"}
    snrs: list[float | None] = []
    for path, ours in zip(handed_in, preview):
        try:
            x, _ = sf.read(str(path), dtype="float64", always_2d=False)
        except Exception:  # unreadable or not audio: not comparable
            snrs.append(None)
            continue
        snrs.append(snr_db(x, ours))
    snrs += [None] * (k - len(snrs))
    reproduced = sum(v is not None and v >= threshold_db for v in snrs)
    return {"compared": k, "reproduced": reproduced, "snr_db": snrs, "mismatch": reproduced < k,
            "files": [p.name for p in handed_in]}


def _handed_in(loops_dir: Path, policy: Policy) -> dict:
    """The handed-in folder, validated (the student's preview; no points depend on it)."""
    folder = validate.check_folder(loops_dir, policy.submission)
    return {"files": len(folder.checks), "valid": folder.n_usable, "problems": folder.problems()}


def score_submission(hw2_dir: Path, policy: Policy, assets: ReferenceAssets, student: str = "",
                     keep_dir: Path | None = None) -> ScoreReport:
    """The whole trusted computation for one ``hw2/`` folder (see the module docstring); deterministic.

    ``keep_dir``: where the first generated loops are written as WAVs for the feedback page.
    """
    from grading import trusted_generation as tg

    start = time.perf_counter()
    hw2_dir = Path(hw2_dir)
    sub, gen = policy.submission, policy.generation
    handed = _handed_in(hw2_dir / "loops", policy)
    notes = collect_notes(hw2_dir)
    try:
        info = tg.inspect_checkpoint(hw2_dir / "checkpoint.pt", policy.checkpoint, gen, sub)
        with tempfile.TemporaryDirectory(prefix="hw2-trusted-") as tmp:
            clean = tg.write_clean_checkpoint(info, Path(tmp) / "checkpoint.pt")
            made = tg.generate(clean, sub.n_loops, gen, policy.checkpoint, info.truncation_psi, Path(tmp),
                               sub.samples)
    except tg.CheckpointRefused as exc:
        report = ScoreReport(student=student, max_points=policy.quality_max, n_required=sub.n_loops,
                             checkpoint_problem=str(exc), handed_in=handed, problems=notes + [str(exc)])
        report.reproduction = {"compared": 0, "reproduced": 0, "snr_db": [], "mismatch": False,
                               "note": "no loops could be generated from checkpoint.pt"}
        report.ta_flags = [f"checkpoint refused: {exc}"]
        report.seconds = round(time.perf_counter() - start, 2)
        return report
    names = [f"generated_{i:03d}" for i in range(sub.n_loops)]
    report = score_audio(made.loops, names, policy, assets, student)
    report.problems = notes + report.problems
    report.handed_in = handed
    report.checkpoint = {**info.summary(), "seed": gen.seed, "generation_seconds": made.seconds,
                         "vocoder": grading_vocoder_id()}  # a re-score after a new vocoder ships differs: say so
    report.reproduction = preview_check(hw2_dir / "loops", made.preview, gen.preview_snr_db)
    rep = report.reproduction
    if rep.get("mismatch"):
        report.ta_flags.append(
            f"preview mismatch: {rep['reproduced']} of the first {gen.preview_loops} handed-in loops match what "
            f"checkpoint.pt generates (seed {gen.preview_seed}, psi {info.truncation_psi:g})"
            + (f" — {rep['note']}" if rep.get("note") else ""))
    report.ta_flags += [f"checkpoint: {n}" for n in info.notes]
    if keep_dir is not None:
        _keep(made.loops, names, report.usable_names, Path(keep_dir), sub.sample_rate)
    report.seconds = round(time.perf_counter() - start, 2)
    return report


def _keep(audio: np.ndarray, names: list[str], usable: list[str], folder: Path, sr: int) -> None:
    """Write the first few usable generated loops as 16-bit WAVs (what the feedback page plays)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    index = {n: i for i, n in enumerate(names)}
    for name in usable[:KEEP_FOR_FEEDBACK]:
        sf.write(str(folder / f"{name}.wav"), np.clip(audio[index[name]], -1, 1), sr, subtype="PCM_16")


def graded_loops_dir(course_dir: Path, student: str) -> Path:
    """Where the scorer keeps a few of a student's generated loops for the feedback page."""
    return Path(course_dir) / "scores" / f"{student}.generated"


def score_path(course_dir: Path, student: str) -> Path:
    """Where a student's score report lives in the grading folder."""
    return Path(course_dir) / "scores" / f"{student}.json"


def _write(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)


def score_student(course_dir: Path, student: str, policy: Policy, assets: ReferenceAssets) -> ScoreReport:
    """Score one student of a grading folder and write ``scores/<student>.json``; never raises.

    Whatever the submission holds, the report written is valid JSON: a failure anywhere (scoring,
    a value JSON cannot hold, writing) becomes this student's ``error``.
    """
    course_dir = Path(course_dir)
    start = time.perf_counter()
    try:
        report = score_submission(course_dir / "submitted" / student / "hw2", policy, assets, student,
                                  keep_dir=graded_loops_dir(course_dir, student))
        text = report.to_json()
    except Exception as exc:  # the report must say what went wrong; the batch goes on
        report = ScoreReport(student=student, max_points=policy.quality_max, n_required=policy.submission.n_loops,
                             error=f"{type(exc).__name__}: {exc}", seconds=round(time.perf_counter() - start, 2))
        text = report.to_json()
    _write(score_path(course_dir, student), text)
    return report


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
        try:
            report = score_student(args.course_dir, student, policy, assets)
            print(f"scored {student}: {report.points:g} points in {report.seconds:.1f} s"
                  + (f" ({report.error or report.checkpoint_problem})" if report.error or report.checkpoint_problem
                     else ""), flush=True)
        except Exception as exc:  # e.g. the disk is full: say so, go on with the next student
            print(f"could not write the report of {student}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
