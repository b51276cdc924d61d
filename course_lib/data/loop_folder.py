"""Read a folder of real loops (FreeSound-Loop-Dataset style) and bring each to 120 BPM, one bar, 2 s.

Any sample rate, any length, mono or stereo, anything ``soundfile`` reads. The tempo of each loop
comes from (in this order) a metadata file (CSV or JSON mapping file name -> BPM), the file name
(``..._100bpm_...``, ``100 BPM``), or an estimate by ``librosa.beat.beat_track`` reconciled with
the loop's duration (a loop holds a whole number of bars). Each loop is time-stretched with
``course_lib.tsm.time_stretch`` (HPSS-TSM by default) by ``rate = 120 / bpm`` (rate > 1 = shorter), and its first bar is
kept (2.0 s at 120 BPM). As the lecture warns, stretching far from the original tempo sounds bad, so
loops whose tempo is more than ``max_rate`` away from 120 BPM are skipped. Every file that is not
loaded appears in the :class:`LoadReport` with its reason - nothing is dropped silently.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import soundfile as sf
import torch

from course_lib import DEFAULT_SR
from course_lib.audio import resample
from course_lib.data.config import BEATS_PER_BAR, LOOP_BPM
from course_lib.tsm import time_stretch

PathLike = Union[str, Path]
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3")
METADATA_NAMES: tuple[str, ...] = ("metadata.csv", "metadata.json", "tempo.csv", "tempo.json", "loops.csv",
                                   "loops.json")
_BPM_IN_NAME = re.compile(r"(?<![0-9.])(\d{2,3}(?:\.\d+)?)\s*[-_ ]?\s*bpm", re.IGNORECASE)
_BPM_KEYS = ("bpm", "tempo", "BPM", "Tempo")
_NAME_KEYS = ("file", "filename", "file_name", "name", "path", "fname", "id")


@dataclass
class LoopRecord:
    """One loaded loop: where it came from, its tempo and how that tempo was found."""

    path: Path
    bpm: float
    tempo_source: str  # "metadata" | "filename" | "estimated"
    rate: float  # time-stretch rate applied (120 / bpm)
    orig_sr: int
    orig_seconds: float
    bars_in_file: float
    label: str | None = None


@dataclass
class LoadReport:
    """Files loaded and files skipped (each with a reason) by :func:`load_loop_folder`."""

    folder: Path
    loaded: list[LoopRecord] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def skip(self, path: Path, reason: str) -> None:
        """Record that ``path`` was not loaded, and why."""
        self.skipped.append((path, reason))

    def summary(self) -> str:
        """A count line, then one line per skipped file and its reason."""
        lines = [f"{self.folder}: loaded {len(self.loaded)} loop(s), skipped {len(self.skipped)}"]
        lines += [f"  skipped {p.name}: {why}" for p, why in self.skipped]
        return "\n".join(lines)


def bpm_from_filename(name: str) -> float | None:
    """The tempo written in a file name (``"funk_100bpm_03.wav" -> 100.0``), or ``None``."""
    m = _BPM_IN_NAME.search(name)
    if not m:
        return None
    bpm = float(m.group(1))
    return bpm if 30.0 <= bpm <= 300.0 else None


def read_tempo_metadata(path: PathLike) -> dict[str, dict]:
    """Read a CSV (header row) or JSON metadata file into ``{file name: {"bpm": float, ...}}``.

    CSV/JSON records need a file column (``file``/``filename``/``name``/...) and a tempo column
    (``bpm``/``tempo``); other columns (e.g. ``label``) are kept. A JSON object mapping names to
    a number or a record also works.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tempo metadata file does not exist")
    records: list[dict] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(data, dict):
            for name, val in data.items():
                records.append({"file": name, **(val if isinstance(val, dict) else {"bpm": val})})
        elif isinstance(data, list):
            records = [r for r in data if isinstance(r, dict)]
        else:
            raise ValueError(f"{path}: expected a JSON object or list of records")
    elif path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            records = list(csv.DictReader(fh))
    else:
        raise ValueError(f"{path}: tempo metadata must be .csv or .json")
    out: dict[str, dict] = {}
    for i, rec in enumerate(records):
        name = next((rec[k] for k in _NAME_KEYS if rec.get(k) not in (None, "")), None)
        bpm = next((rec[k] for k in _BPM_KEYS if rec.get(k) not in (None, "")), None)
        if name is None or bpm is None:
            raise ValueError(f"{path}: record {i} lacks a file name column {_NAME_KEYS} or a tempo column "
                             f"{_BPM_KEYS}: {rec}")
        try:
            bpm_f = float(bpm)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: record {i} ({name}) has a non-numeric tempo {bpm!r}") from exc
        if not 20.0 <= bpm_f <= 400.0 or not math.isfinite(bpm_f):
            raise ValueError(f"{path}: record {i} ({name}) has an implausible tempo {bpm_f} BPM")
        extra = {k: v for k, v in rec.items() if k not in _NAME_KEYS and k not in _BPM_KEYS}
        out[Path(str(name)).name] = {"bpm": bpm_f, **extra}
    return out


def estimate_bpm(x: np.ndarray, sr: int) -> float:
    """Tempo in BPM of a loop ``(samples,)``, from its duration and an onset-autocorrelation estimate.

    A loop of ``d`` seconds holding ``k`` 4/4 bars has tempo ``240 k / d``. Among the whole-bar
    tempi ``k = 1, 2, 3, 4, 8`` that lie in 60..200 BPM, the one closest (in log ratio) to the
    estimate of ``librosa.feature.tempo`` (the tempo estimator of ``librosa.beat``), or to half or
    twice it, is returned; with no such candidate the estimate itself.
    """
    import librosa

    est = float(np.atleast_1d(librosa.feature.tempo(y=x.astype(np.float32), sr=sr, start_bpm=LOOP_BPM))[0])
    seconds = len(x) / sr
    cands = [60.0 * BEATS_PER_BAR * k / seconds for k in (1, 2, 3, 4, 8)]
    cands = [c for c in cands if 60.0 <= c <= 200.0]
    if not cands:
        return est
    if est <= 0:
        return min(cands, key=lambda c: abs(math.log(c / LOOP_BPM)))
    return min(cands, key=lambda c: min(abs(math.log(c / (est * m))) for m in (0.5, 1.0, 2.0)))


def list_audio_files(folder: PathLike, recursive: bool = True) -> list[Path]:
    """Audio files (by extension) under ``folder``, sorted; ``FileNotFoundError`` if it does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: loop folder does not exist")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def load_loop_folder(folder: PathLike, sr: int = DEFAULT_SR, target_bpm: float = LOOP_BPM, bars: int = 1,
                     metadata: PathLike | None = None, max_rate: float = 1.35, method: str = "hptsm",
                     min_seconds: float = 0.5, recursive: bool = True, label_from: str = "metadata",
                     ) -> tuple[torch.Tensor, list[LoopRecord], LoadReport]:
    """Load every loop in ``folder`` as ``bars`` bar(s) of 4/4 at ``target_bpm`` and ``sr`` Hz.

    Args:
        folder: folder of audio files (searched recursively unless ``recursive=False``).
        sr: output rate in Hz. target_bpm: output tempo. bars: bars kept per loop.
        metadata: tempo CSV/JSON (default: the first of ``METADATA_NAMES`` found in ``folder``).
        max_rate: skip loops needing a stretch rate above ``max_rate`` or below ``1 / max_rate``.
        method: ``course_lib.tsm.time_stretch`` method; the default HPSS-TSM keeps drum onsets sharp
            and in place (WSOLA moves them by up to its tolerance, ~10 ms).
        min_seconds: skip files shorter than this.
        label_from: ``"metadata"`` (a ``label`` column) or ``"folder"`` (the parent folder name).
    Returns:
        ``(audio (N, bars * 240 / target_bpm * sr) float32, records, report)``.
    Raises:
        FileNotFoundError: the folder (or the given metadata file) does not exist.
        ValueError: the folder holds no audio file, or no file could be loaded (the report is in the message).
    """
    folder = Path(folder)
    if max_rate < 1.0:
        raise ValueError(f"max_rate must be >= 1, got {max_rate}")
    if label_from not in ("metadata", "folder"):
        raise ValueError(f"label_from must be 'metadata' or 'folder', got {label_from!r}")
    if bars < 1 or target_bpm <= 0 or sr <= 0:
        raise ValueError(f"bars ({bars}), target_bpm ({target_bpm}) and sr ({sr}) must be positive")
    files = list_audio_files(folder, recursive)
    if not files:
        raise ValueError(f"{folder}: holds no audio file ({', '.join(AUDIO_EXTENSIONS)})")
    if metadata is None:
        found = [folder / n for n in METADATA_NAMES if (folder / n).is_file()]
        meta = read_tempo_metadata(found[0]) if found else {}
    else:
        meta = read_tempo_metadata(metadata)
    out_len = int(round(bars * BEATS_PER_BAR * 60.0 / target_bpm * sr))
    report = LoadReport(folder=folder)
    clips: list[torch.Tensor] = []
    for path in files:
        try:
            data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            report.skip(path, f"unreadable audio ({exc})")
            continue
        if data.shape[0] == 0:
            report.skip(path, "no samples")
            continue
        if not np.isfinite(data).all():
            report.skip(path, "audio holds NaN or infinite samples")
            continue
        x = data.mean(axis=1)
        seconds = len(x) / file_sr
        if seconds < min_seconds:
            report.skip(path, f"too short ({seconds:.2f} s < {min_seconds} s)")
            continue
        if float(np.abs(x).max()) < 1e-4:
            report.skip(path, "silent (peak below -80 dBFS)")
            continue
        rec = meta.get(path.name)
        if rec is not None:
            bpm, source = rec["bpm"], "metadata"
        elif (b := bpm_from_filename(path.name)) is not None:
            bpm, source = b, "filename"
        else:
            bpm, source = estimate_bpm(x, file_sr), "estimated"
        rate = target_bpm / bpm
        if rate > max_rate or rate < 1.0 / max_rate:
            report.skip(path, f"tempo {bpm:.1f} BPM ({source}) is too far from {target_bpm:g} BPM "
                              f"(stretch rate {rate:.2f} outside [{1 / max_rate:.2f}, {max_rate:.2f}])")
            continue
        bar_seconds_in = BEATS_PER_BAR * 60.0 / bpm
        bars_in_file = seconds / bar_seconds_in
        if bars_in_file < bars * 0.9:
            report.skip(path, f"holds {bars_in_file:.2f} bar(s) at {bpm:.1f} BPM, fewer than the {bars} requested")
            continue
        y = resample(torch.from_numpy(np.ascontiguousarray(x)), file_sr, sr) if file_sr != sr else torch.from_numpy(x)
        if abs(rate - 1.0) > 1e-3:
            y = time_stretch(y.unsqueeze(0), sr, rate, method=method).reshape(-1)
        y = y[:out_len]
        if y.shape[0] < out_len:
            y = torch.nn.functional.pad(y, (0, out_len - y.shape[0]))
        clips.append(y.to(torch.float32).clamp(-1.0, 1.0))
        label = rec.get("label") if rec is not None and label_from == "metadata" else None
        if label_from == "folder":
            label = path.parent.name
        report.loaded.append(LoopRecord(path=path, bpm=float(bpm), tempo_source=source, rate=float(rate),
                                        orig_sr=int(file_sr), orig_seconds=float(seconds),
                                        bars_in_file=float(bars_in_file), label=label))
    if report.skipped:
        warnings.warn(report.summary(), stacklevel=2)
    if not clips:
        raise ValueError(f"{folder}: no loop could be loaded\n{report.summary()}")
    return torch.stack(clips), report.loaded, report


def write_loop_folder(folder: PathLike, audio: torch.Tensor, labels: Sequence[int], class_names: Sequence[str],
                      sr: int = DEFAULT_SR, bpm: float = LOOP_BPM, prefix: str = "loop") -> Path:
    """Write loops ``(N, samples)`` as ``<folder>/<class>/<prefix>_<class>_<bpm>bpm_<i>.wav`` plus ``metadata.csv``.

    The layout is one this module reads back (tempo in the metadata and in the name, label column).
    Returns the path of ``metadata.csv``.
    """
    folder = Path(folder)
    audio = torch.as_tensor(audio)
    if audio.ndim != 2 or audio.shape[0] != len(labels):
        raise ValueError(f"audio must be (N, samples) with N = {len(labels)} labels, got {tuple(audio.shape)}")
    if not torch.isfinite(audio).all():
        raise ValueError("refusing to write loops with NaN or infinite samples")
    rows = []
    data = audio.detach().to("cpu", torch.float32).clamp(-1, 1).numpy()
    for i, (clip, lab) in enumerate(zip(data, labels)):
        name = class_names[int(lab)]
        rel = Path(name) / f"{prefix}_{name}_{bpm:g}bpm_{i:05d}.wav"
        (folder / name).mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / rel), clip, sr, subtype="PCM_16")
        rows.append({"file": rel.name, "bpm": f"{bpm:g}", "label": name})
    path = folder / "metadata.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "bpm", "label"])
        w.writeheader()
        w.writerows(rows)
    return path
