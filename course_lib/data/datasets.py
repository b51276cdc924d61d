"""PyTorch datasets of notes and loops: waveform, course log-mel, label and metadata per item.

``NSynthDataset`` reads a real NSynth folder or generates the synthetic mini-NSynth;
``LoopDataset`` reads a real loop folder or generates the synthetic loop set. Generated sets are
cached on disk (``config.cache_root()``) in a folder / file named by a hash of their config, so a
second construction with the same config only reads the cache. Splits are decided per item by a
hash of a stable key (the NSynth ``note_str``; ``<class>-<index>`` for loops), so an item keeps
its split when the set is regenerated or grown.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence, Union

import torch
from torch.utils.data import Dataset

from course_lib import DEFAULT_SR
from course_lib.data.config import (COURSE_MEL, GENERATOR_VERSION, cache_root, config_hash, stable_unit)
from course_lib.data.loop_folder import load_loop_folder
from course_lib.data.nsynth import NSynthExample, load_nsynth, write_nsynth
from course_lib.data.presets import DataPreset, get_preset
from course_lib.data import synthetic_loops, synthetic_notes  # called through the module: tests replace them
from course_lib.data.synthetic_loops import DEFAULT_N_KITS, LOOP_CLASSES
from course_lib.spectral import MelConfig, log_mel

PathLike = Union[str, Path]
SPLITS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
NSYNTH_LABELS: tuple[str, ...] = ("instrument_family", "instrument_source", "pitch", "velocity", "instrument")


def split_of(key: str, fractions: Sequence[float] = SPLIT_FRACTIONS) -> str:
    """``"train"``, ``"valid"`` or ``"test"`` for an item key, from a hash of the key (stable forever)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    u = stable_unit(f"split:{key}")
    if u < fractions[0]:
        return "train"
    return "valid" if u < fractions[0] + fractions[1] else "test"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS + ("all",):
        raise ValueError(f"split must be one of {SPLITS} or 'all', got {split!r}")


def _mels(audio: torch.Tensor, mel: MelConfig, batch: int = 64) -> torch.Tensor:
    return torch.cat([log_mel(audio[i:i + batch], mel) for i in range(0, audio.shape[0], batch)]) \
        if audio.shape[0] else torch.empty(0)


class _ClipDataset(Dataset):
    """Shared item logic: ``audio`` ``(N, samples)``, integer labels, per-item metadata dicts."""

    audio: torch.Tensor
    labels: torch.Tensor
    meta: list[dict]
    mel_config: MelConfig
    sr: int

    def _finish(self, precompute_mel: bool) -> None:
        self.mel: torch.Tensor | None = _mels(self.audio, self.mel_config) if precompute_mel else None

    def __len__(self) -> int:
        return int(self.audio.shape[0])

    def __getitem__(self, i: int) -> dict:
        """``{"audio": (samples,), "mel": (n_mels, frames), "label": int, **metadata}``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} items")
        x = self.audio[i]
        m = self.mel[i] if self.mel is not None else log_mel(x.unsqueeze(0), self.mel_config)[0]
        return {"audio": x, "mel": m, "label": int(self.labels[i]), **self.meta[i]}


class LoopDataset(_ClipDataset):
    """One-bar loops (2 s at 120 BPM) with their class: synthetic (generated, cached) or a real folder.

    Args:
        split: ``"train"``, ``"valid"``, ``"test"`` or ``"all"``.
        preset: size preset (``loops_per_class``) for the synthetic set.
        seed: generation seed. backend: ``"dsp"`` or ``"fluidsynth"``.
        root: a real loop folder (then loaded by ``load_loop_folder``; labels from its metadata
            ``label`` column or the sub-folder name).
        sr: sample rate in Hz. mel: the log-mel settings (default the course's).
        cache: use/create the on-disk cache. precompute_mel: compute all log-mels up front.
        classes: subset of the loop classes. n_kits: size of the random drum-kit pool (default 16).
    Items: ``audio (samples,)``, ``mel (n_mels, frames)``, ``label`` (class index), ``class_name``, ``key``.
    """

    def __init__(self, split: str = "train", preset: Union[str, DataPreset] = "lecture", seed: int = 0,
                 backend: str = "dsp", root: PathLike | None = None, sr: int = DEFAULT_SR,
                 mel: MelConfig = COURSE_MEL, cache: bool = True, precompute_mel: bool = True,
                 classes: Sequence[str] | None = None, n_kits: int | None = None,
                 device: torch.device | str | None = None, progress: bool = False) -> None:
        _check_split(split)
        self.sr, self.mel_config, self.split = int(sr), mel, split
        if root is not None:
            audio, records, self.report = load_loop_folder(root, sr=sr, label_from="metadata")
            names = [r.label if r.label is not None else r.path.parent.name for r in records]
            self.class_names = sorted(set(names))
            labels = torch.tensor([self.class_names.index(n) for n in names], dtype=torch.long)
            keys = [str(r.path.relative_to(Path(root))) for r in records]
            self.config = {"root": str(Path(root).resolve()), "sr": sr}
        else:
            p = get_preset(preset)
            cls = list(classes) if classes is not None else list(LOOP_CLASSES)
            kits = DEFAULT_N_KITS if n_kits is None else int(n_kits)
            self.config = {"kind": "loops", "n_per_class": p.loops_per_class, "seed": seed, "backend": backend,
                           "sr": sr, "classes": cls, "n_kits": kits, "version": GENERATOR_VERSION}
            path = cache_root() / f"loops-{config_hash(self.config)}.pt"
            if cache and path.is_file():
                blob = torch.load(path, weights_only=True)
                audio, labels, self.class_names = blob["audio"], blob["labels"], list(blob["class_names"])
            else:
                audio, labels, self.class_names = synthetic_loops.generate_loops(
                    p.loops_per_class, sr=sr, seed=seed, backend=backend, classes=cls, n_kits=kits, device=device,
                    progress=progress)
                audio = audio.cpu()
                if cache:
                    _atomic_save({"audio": audio, "labels": labels, "class_names": self.class_names,
                                  "config": self.config}, path)
            counters: dict[int, int] = {}
            keys = []
            for lab in labels.tolist():
                keys.append(f"{self.class_names[lab]}-{counters.get(lab, 0):05d}")
                counters[lab] = counters.get(lab, 0) + 1
        keep = [i for i, k in enumerate(keys) if split in (None, "all") or split_of(k) == split]
        self.audio = audio[keep]
        self.labels = labels[keep]
        self.meta = [{"class_name": self.class_names[int(labels[i])], "key": keys[i]} for i in keep]
        self._finish(precompute_mel)


class NSynthDataset(_ClipDataset):
    """NSynth notes: a real NSynth folder, or the synthetic mini-NSynth (generated once, cached as NSynth).

    Args:
        split: ``"train"``, ``"valid"``, ``"test"`` (hash of ``note_str``) or ``"all"``; use ``"all"``
            for a real NSynth split folder (``nsynth-valid`` ...), which is already a split.
        preset: size preset of the synthetic set. seed: generation seed.
        root: a real NSynth folder (``examples.json`` + ``audio/``).
        label: which field is ``label``: ``"instrument_family"`` (default), ``"instrument_source"``,
            ``"pitch"``, ``"velocity"`` or ``"instrument"``.
        families: keep only these families. mel / cache / precompute_mel as in :class:`LoopDataset`.
    Items: ``audio (samples,)``, ``mel``, ``label``, ``pitch``, ``velocity``, ``instrument``,
    ``instrument_family``, ``instrument_source``, ``note_str``, ``qualities`` (10 flags, long tensor).
    ``self.examples`` holds the full :class:`NSynthExample` records; ``self.folder`` the NSynth folder.
    """

    def __init__(self, split: str = "train", preset: Union[str, DataPreset] = "lecture", seed: int = 0,
                 root: PathLike | None = None, label: str = "instrument_family",
                 families: Sequence[str] | None = None, mel: MelConfig = COURSE_MEL, cache: bool = True,
                 precompute_mel: bool = False, device: torch.device | str | None = None,
                 progress: bool = False) -> None:
        _check_split(split)
        if label not in NSYNTH_LABELS:
            raise ValueError(f"label must be one of {NSYNTH_LABELS}, got {label!r}")
        self.mel_config, self.split, self.label_field = mel, split, label
        if root is not None:
            self.folder = Path(root)
        else:
            p = get_preset(preset)
            cfg = {"kind": "nsynth", "preset": p.to_dict(), "seed": seed, "version": GENERATOR_VERSION}
            self.folder = cache_root() / f"nsynth-{config_hash(cfg)}"
            if not (cache and (self.folder / "examples.json").is_file()):
                audio, examples = synthetic_notes.generate_notes(p, seed=seed, device=device, progress=progress)
                target = self.folder if cache else Path(tempfile.mkdtemp(prefix="nsynth-"))
                _atomic_write_nsynth(target, audio.cpu(), examples)
                self.folder = target
        audio, examples, self.report = load_nsynth(self.folder, families=families)
        self.sr = 16_000
        keep = [i for i, e in enumerate(examples) if split in (None, "all") or split_of(e.note_str) == split]
        self.examples: list[NSynthExample] = [examples[i] for i in keep]
        self.audio = audio[keep]
        self.labels = torch.tensor([getattr(e, label) for e in self.examples], dtype=torch.long)
        self.meta = [{"note_str": e.note_str, "pitch": e.pitch, "velocity": e.velocity, "instrument": e.instrument,
                      "instrument_family": e.instrument_family, "instrument_source": e.instrument_source,
                      "qualities": torch.tensor(e.qualities, dtype=torch.long)} for e in self.examples]
        self._finish(precompute_mel)


def _atomic_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _atomic_write_nsynth(folder: Path, audio: torch.Tensor, examples: list[NSynthExample]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".tmp"))
    try:
        write_nsynth(tmp, audio, examples)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
