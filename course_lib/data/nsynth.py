"""The NSynth dataset format: read a real NSynth folder, write the synthetic set in the same layout.

A split folder of NSynth (e.g. ``nsynth-valid/``) holds ``examples.json`` and ``audio/<note_str>.wav``
(16 kHz, 16-bit mono, 4 s = 64 000 samples). ``examples.json`` maps each ``note_str`` (e.g.
``"guitar_acoustic_010-060-100"`` = instrument, MIDI pitch, velocity) to its fields: ``note``,
``note_str``, ``pitch``, ``velocity``, ``instrument``, ``instrument_str``, ``instrument_family``,
``instrument_family_str``, ``instrument_source``, ``instrument_source_str``, ``qualities`` (10 flags),
``qualities_str``, ``sample_rate``. The vocabularies below are those of the real dataset
(Engel et al., 2017).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
import soundfile as sf
import torch

from course_lib.data.config import NSYNTH_SR

PathLike = Union[str, Path]

FAMILIES: tuple[str, ...] = (
    "bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal",
)
SOURCES: tuple[str, ...] = ("acoustic", "electronic", "synthetic")
QUALITIES: tuple[str, ...] = (
    "bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic", "nonlinear_env",
    "percussive", "reverb", "tempo-synced",
)
VELOCITIES: tuple[int, ...] = (25, 50, 75, 100, 127)
PITCH_RANGE: tuple[int, int] = (21, 108)  # piano range; NSynth spans MIDI 9..120 over all instruments

FIELDS: tuple[str, ...] = (
    "note", "note_str", "pitch", "velocity", "instrument", "instrument_str", "instrument_family",
    "instrument_family_str", "instrument_source", "instrument_source_str", "qualities", "qualities_str",
    "sample_rate",
)


def make_instrument_str(family: str, source: str, index: int) -> str:
    """NSynth instrument name, e.g. ``("guitar", "acoustic", 10) -> "guitar_acoustic_010"``."""
    if family not in FAMILIES:
        raise ValueError(f"instrument family {family!r} is not an NSynth family {FAMILIES}")
    if source not in SOURCES:
        raise ValueError(f"instrument source {source!r} is not an NSynth source {SOURCES}")
    if not 0 <= index <= 999:
        raise ValueError(f"instrument index must be in 0..999, got {index}")
    return f"{family}_{source}_{index:03d}"


def make_note_str(instrument_str: str, pitch: int, velocity: int) -> str:
    """NSynth note name, e.g. ``("guitar_acoustic_010", 60, 100) -> "guitar_acoustic_010-060-100"``."""
    if not 0 <= pitch <= 127:
        raise ValueError(f"MIDI pitch must be in 0..127, got {pitch}")
    if not 0 <= velocity <= 127:
        raise ValueError(f"MIDI velocity must be in 0..127, got {velocity}")
    return f"{instrument_str}-{pitch:03d}-{velocity:03d}"


@dataclass
class NSynthExample:
    """One NSynth note's metadata (the fields of ``examples.json``); ``audio_path`` is not stored in the JSON."""

    note: int
    note_str: str
    pitch: int
    velocity: int
    instrument: int
    instrument_str: str
    instrument_family: int
    instrument_family_str: str
    instrument_source: int
    instrument_source_str: str
    qualities: list[int] = field(default_factory=lambda: [0] * len(QUALITIES))
    qualities_str: list[str] = field(default_factory=list)
    sample_rate: int = NSYNTH_SR
    audio_path: Path | None = None

    @classmethod
    def create(cls, note: int, family: str, source: str, instrument_index: int, instrument: int,
               pitch: int, velocity: int, qualities: Iterable[str] = (), sample_rate: int = NSYNTH_SR
               ) -> "NSynthExample":
        """Build a consistent example from names: the ``*_str`` fields and integer codes are derived."""
        quals = list(qualities)
        for q in quals:
            if q not in QUALITIES:
                raise ValueError(f"quality {q!r} is not an NSynth quality {QUALITIES}")
        inst_str = make_instrument_str(family, source, instrument_index)
        return cls(
            note=int(note), note_str=make_note_str(inst_str, int(pitch), int(velocity)), pitch=int(pitch),
            velocity=int(velocity), instrument=int(instrument), instrument_str=inst_str,
            instrument_family=FAMILIES.index(family), instrument_family_str=family,
            instrument_source=SOURCES.index(source), instrument_source_str=source,
            qualities=[int(q in quals) for q in QUALITIES], qualities_str=[q for q in QUALITIES if q in quals],
            sample_rate=int(sample_rate),
        )

    def to_json(self) -> dict:
        """The dict stored in ``examples.json`` (all NSynth fields, no ``audio_path``)."""
        d = asdict(self)
        d.pop("audio_path")
        return d

    @classmethod
    def from_json(cls, key: str, entry: dict, source: PathLike = "examples.json") -> "NSynthExample":
        """Parse one ``examples.json`` entry, checking every field; ``ValueError`` names the key and field."""
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: entry {key!r} is not a JSON object")
        missing = [f for f in FIELDS if f not in entry and f != "note"]
        if missing:
            raise ValueError(f"{source}: entry {key!r} lacks field(s) {missing}")
        if entry["note_str"] != key:
            raise ValueError(f"{source}: entry {key!r} has note_str {entry['note_str']!r} (must equal its key)")
        try:
            ex = cls(
                note=int(entry.get("note", -1)), note_str=str(entry["note_str"]), pitch=int(entry["pitch"]),
                velocity=int(entry["velocity"]), instrument=int(entry["instrument"]),
                instrument_str=str(entry["instrument_str"]), instrument_family=int(entry["instrument_family"]),
                instrument_family_str=str(entry["instrument_family_str"]),
                instrument_source=int(entry["instrument_source"]),
                instrument_source_str=str(entry["instrument_source_str"]),
                qualities=[int(q) for q in entry["qualities"]], qualities_str=[str(q) for q in entry["qualities_str"]],
                sample_rate=int(entry["sample_rate"]),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: entry {key!r} has a field of the wrong type ({exc})") from exc
        if not 0 <= ex.pitch <= 127 or not 0 <= ex.velocity <= 127:
            raise ValueError(f"{source}: entry {key!r} has pitch {ex.pitch} / velocity {ex.velocity} outside 0..127")
        if not 0 <= ex.instrument_family < len(FAMILIES) or FAMILIES[ex.instrument_family] != ex.instrument_family_str:
            raise ValueError(f"{source}: entry {key!r} has inconsistent family "
                             f"{ex.instrument_family} / {ex.instrument_family_str!r}")
        if not 0 <= ex.instrument_source < len(SOURCES) or SOURCES[ex.instrument_source] != ex.instrument_source_str:
            raise ValueError(f"{source}: entry {key!r} has inconsistent source "
                             f"{ex.instrument_source} / {ex.instrument_source_str!r}")
        if len(ex.qualities) != len(QUALITIES):
            raise ValueError(f"{source}: entry {key!r} has {len(ex.qualities)} quality flags, expected {len(QUALITIES)}")
        return ex


@dataclass
class NSynthReport:
    """What :func:`load_nsynth` read and what it skipped, each skip with its reason."""

    root: Path
    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (note_str or file, reason)

    def skip(self, name: str, reason: str) -> None:
        """Record that example ``name`` was not loaded, and why."""
        self.skipped.append((name, reason))

    def summary(self) -> str:
        """One line per skipped example, after a count line."""
        lines = [f"{self.root}: loaded {self.loaded} note(s), skipped {len(self.skipped)}"]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)


def read_examples_json(root: PathLike) -> list[NSynthExample]:
    """Parse ``root/examples.json`` into examples (sorted by ``note_str``), with ``audio_path`` set.

    Raises:
        FileNotFoundError: ``root`` or ``root/examples.json`` does not exist.
        ValueError: the JSON is malformed or an entry is missing a field / inconsistent.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: NSynth folder does not exist")
    path = root / "examples.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; an NSynth folder holds examples.json and audio/<note_str>.wav")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must map note_str -> fields, got a JSON {type(data).__name__}")
    if not data:
        raise ValueError(f"{path}: holds no examples")
    examples = []
    for key in sorted(data):
        ex = NSynthExample.from_json(key, data[key], path)
        ex.audio_path = root / "audio" / f"{key}.wav"
        examples.append(ex)
    return examples


def load_nsynth(root: PathLike, strict: bool = False, length: int | None = None,
                limit: int | None = None, families: Sequence[str] | None = None,
                ) -> tuple[torch.Tensor, list[NSynthExample], NSynthReport]:
    """Read an NSynth-format folder into one tensor.

    Args:
        root: folder with ``examples.json`` and ``audio/``.
        strict: raise ``ValueError`` on the first bad example instead of skipping it.
        length: required clip length in samples (default: that of the first readable clip).
        limit: read at most this many examples (after the ``families`` filter).
        families: keep only these instrument families.
    Returns:
        ``(audio (N, length) float32 in [-1, 1], examples, report)``; every example that was not
        loaded is listed in ``report.skipped`` with its reason (missing wav, unreadable, sample
        rate not 16 kHz, NaN/inf samples, wrong length) and a warning is issued.
    """
    root = Path(root)
    examples = read_examples_json(root)
    if families is not None:
        bad = [f for f in families if f not in FAMILIES]
        if bad:
            raise ValueError(f"families {bad} are not NSynth families {FAMILIES}")
        examples = [e for e in examples if e.instrument_family_str in families]
    if limit is not None:
        examples = examples[: int(limit)]
    report = NSynthReport(root=root)
    clips: list[np.ndarray] = []
    kept: list[NSynthExample] = []
    for ex in examples:
        reason, data = _read_note_wav(ex, length)
        if reason is None and length is None:
            length = data.shape[0]
        if reason is None and data.shape[0] != length:
            reason = f"length {data.shape[0]} samples, expected {length}"
        if reason is not None:
            if strict:
                raise ValueError(f"{ex.audio_path}: {reason}")
            report.skip(ex.note_str, reason)
            continue
        clips.append(data)
        kept.append(ex)
    report.loaded = len(kept)
    if report.skipped:
        warnings.warn(report.summary(), stacklevel=2)
    if not kept:
        raise ValueError(f"{root}: no readable NSynth example\n{report.summary()}")
    return torch.from_numpy(np.stack(clips)), kept, report


def _read_note_wav(ex: NSynthExample, length: int | None) -> tuple[str | None, np.ndarray | None]:
    path = ex.audio_path
    if path is None or not path.is_file():
        return f"audio file {path} is missing", None
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        return f"unreadable audio ({exc})", None
    if sr != NSYNTH_SR or ex.sample_rate != NSYNTH_SR:
        return f"sample rate {sr} Hz in file / {ex.sample_rate} Hz in JSON, NSynth is {NSYNTH_SR} Hz", None
    if data.shape[0] == 0:
        return "audio holds no samples", None
    if not np.isfinite(data).all():
        return "audio holds NaN or infinite samples", None
    return None, data.mean(axis=1)


def write_nsynth(root: PathLike, audio: torch.Tensor, examples: Sequence[NSynthExample],
                 sr: int = NSYNTH_SR) -> Path:
    """Write ``audio`` ``(N, samples)`` and its ``examples`` as an NSynth folder (16-bit WAV + JSON).

    Returns the path of ``examples.json``. Raises ``ValueError`` for a count mismatch, a rate other
    than 16 kHz, duplicate ``note_str`` or non-finite audio.
    """
    root = Path(root)
    audio = torch.as_tensor(audio)
    if audio.ndim != 2 or audio.shape[0] != len(examples):
        raise ValueError(f"audio must be (N, samples) with N = {len(examples)} examples, got {tuple(audio.shape)}")
    if sr != NSYNTH_SR:
        raise ValueError(f"NSynth audio is {NSYNTH_SR} Hz, got sr={sr}")
    names = [e.note_str for e in examples]
    if len(set(names)) != len(names):
        raise ValueError("examples hold duplicate note_str values")
    if not torch.isfinite(audio).all():
        raise ValueError("refusing to write audio with NaN or infinite samples")
    (root / "audio").mkdir(parents=True, exist_ok=True)
    data = audio.detach().to("cpu", torch.float32).clamp(-1.0, 1.0).numpy()
    table = {}
    for ex, clip in zip(examples, data):
        sf.write(str(root / "audio" / f"{ex.note_str}.wav"), clip, sr, subtype="PCM_16")
        ex.audio_path = root / "audio" / f"{ex.note_str}.wav"
        table[ex.note_str] = ex.to_json()
    path = root / "examples.json"
    path.write_text(json.dumps(table, indent=1), encoding="utf-8")
    return path
