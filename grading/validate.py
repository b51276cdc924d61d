"""The loop-folder policy of HW2: which submitted WAVs count, and why the others do not.

Run by the trusted scorer (``python -m grading score``) and by students (``python -m grading
check``) with the same code and the same numbers from ``grading/thresholds.toml``. It reads the
files itself (never a student's objects), never follows symlinks, and turns every problem into
a reason that goes into the feedback.

Per file (each failure makes that file unusable, with its reason):
  not a regular file / a symlink; unreadable or not audio; sample rate, channel count or length
  not exactly as required; NaN or infinite samples; silent (RMS below ``silence_rms_db``);
  clipped (more than ``max_clipped_fraction`` of samples at |x| >= ``clip_level``).
Per folder: missing or empty ``loops/``; files beyond the required count are ignored (first
``n_loops`` by sorted name are used, the rest listed); non-WAV names are ignored and listed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from grading.policy import SubmissionPolicy


@dataclass
class LoopCheck:
    """The verdict on one submitted file."""

    name: str
    ok: bool
    reason: str = ""


@dataclass
class FolderCheck:
    """The verdict on a whole ``loops/`` folder: usable audio plus every reason something was dropped."""

    folder: str
    checks: list[LoopCheck] = field(default_factory=list)
    folder_problem: str = ""
    ignored: list[str] = field(default_factory=list)
    audio: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (n_usable, samples)
    names: list[str] = field(default_factory=list)

    @property
    def n_usable(self) -> int:
        return int(self.audio.shape[0])

    def problems(self) -> list[str]:
        out = [self.folder_problem] if self.folder_problem else []
        out += [f"{c.name}: {c.reason}" for c in self.checks if not c.ok]
        out += [f"{name}: ignored ({why})" for name, why in (i.split("\t", 1) for i in self.ignored)]
        return out


def check_file(path: Path, policy: SubmissionPolicy) -> tuple[LoopCheck, np.ndarray | None]:
    """Check one file against the policy; returns the verdict and, if usable, its samples ``(samples,)``."""
    name = path.name
    if path.is_symlink():
        return LoopCheck(name, False, "is a symbolic link (not followed; submit real files)"), None
    if not path.is_file():
        return LoopCheck(name, False, "is not a regular file"), None
    size = path.stat().st_size
    if size == 0:
        return LoopCheck(name, False, "is empty (0 bytes)"), None
    if size > policy.max_file_bytes:
        return LoopCheck(name, False, f"is {size} bytes (limit {policy.max_file_bytes})"), None
    try:
        info = sf.info(str(path))
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for non-audio/corrupt files
        return LoopCheck(name, False, f"is not a readable WAV file ({type(exc).__name__})"), None
    if info.format != "WAV":
        return LoopCheck(name, False, f"is {info.format}, not WAV"), None
    if sr != policy.sample_rate:
        return LoopCheck(name, False, f"sample rate {sr} Hz (required {policy.sample_rate} Hz)"), None
    if data.shape[1] != policy.channels:
        return LoopCheck(name, False, f"{data.shape[1]} channels (required {policy.channels}, mono)"), None
    if data.shape[0] != policy.samples:
        return LoopCheck(name, False, f"{data.shape[0]} samples = {data.shape[0] / sr:.3f} s "
                                      f"(required exactly {policy.samples} = {policy.seconds} s)"), None
    return check_clip(name, data[:, 0], policy)


def check_clip(name: str, x: np.ndarray, policy: SubmissionPolicy) -> tuple[LoopCheck, np.ndarray | None]:
    """The sample checks of one clip ``(samples,)`` float: length, finite, not silent, not clipped."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1 or x.shape[0] != policy.samples:
        return LoopCheck(name, False, f"has shape {tuple(x.shape)} (required ({policy.samples},))"), None
    if not np.isfinite(x).all():
        return LoopCheck(name, False, "contains NaN or infinite samples"), None
    rms_db = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20)
    if rms_db < policy.silence_rms_db:
        return LoopCheck(name, False, f"is silent (RMS {rms_db:.1f} dBFS < {policy.silence_rms_db} dBFS)"), None
    clipped = float(np.mean(np.abs(x) >= policy.clip_level))
    if clipped > policy.max_clipped_fraction:
        return LoopCheck(name, False, f"is clipped ({100 * clipped:.1f} % of samples at |x| >= "
                                      f"{policy.clip_level}; limit {100 * policy.max_clipped_fraction:.1f} %)"), None
    return LoopCheck(name, True), x


def check_audio(audio: np.ndarray, names: list[str], policy: SubmissionPolicy, where: str = "") -> FolderCheck:
    """Apply the per-clip policy to loops made in memory ``(n, samples)`` (the scorer's own generated loops)."""
    result = FolderCheck(folder=where)
    _record(result, [(name, *check_clip(name, x, policy)) for name, x in zip(names, np.asarray(audio))], policy)
    if len(names) < policy.n_loops:
        result.folder_problem = f"only {len(names)} loops (required {policy.n_loops})"
    return result


def _record(result: FolderCheck, checked: list, policy: SubmissionPolicy) -> None:
    """Store ``(name, verdict, clip or None)`` triples in ``result``: every verdict, the usable clips' names
    and the usable clips stacked ``(n_usable, samples)``."""
    usable = []
    for name, verdict, clip in checked:
        result.checks.append(verdict)
        if clip is not None:
            usable.append(clip)
            result.names.append(name)
    result.audio = np.stack(usable) if usable else np.zeros((0, policy.samples), np.float32)


def check_folder(folder: Path, policy: SubmissionPolicy) -> FolderCheck:
    """Apply the policy to every file of ``folder`` (a student's ``loops/``) in sorted-name order."""
    folder = Path(folder)
    result = FolderCheck(folder=str(folder))
    if folder.is_symlink():
        result.folder_problem = "loops/ is a symbolic link (not followed)"
        return result
    if not folder.is_dir():
        result.folder_problem = f"no loops/ folder (expected {policy.n_loops} WAV files in hw2/loops/)"
        return result
    entries = sorted(os.listdir(folder))
    wavs = [e for e in entries if e.lower().endswith(".wav")]
    result.ignored = [f"{e}\tnot a .wav name" for e in entries if not e.lower().endswith(".wav")]
    if not wavs:
        result.folder_problem = f"loops/ holds no .wav files (expected {policy.n_loops})"
        return result
    if len(wavs) > policy.n_loops:
        result.ignored += [f"{e}\tbeyond the first {policy.n_loops} files" for e in wavs[policy.n_loops:]]
        wavs = wavs[: policy.n_loops]
    _record(result, [(name, *check_file(folder / name, policy)) for name in wavs], policy)
    if len(wavs) < policy.n_loops:
        result.folder_problem = f"only {len(wavs)} .wav files (required {policy.n_loops})"
    return result
