"""What the trusted scorer compares submissions against, all made by course code, none by students.

* the loop classifier shipped in ``course_lib/assets`` (IS and the FAD embedding);
* the reference statistics ``grading/assets/loops_reference.npz``: classifier embeddings of
  held-out real loops, an independent draw of the HW2 loop set (seed ``REFERENCE_SEED``),
  built by ``python -m grading build-reference``;
* the training loops (the HW2 loop set students train on, seed ``TRAINING_SEED``) as normalised
  log-mels for the memorisation check, regenerated deterministically and cached on disk.

The environment variable ``HW2_DATA_PRESET`` (default ``default``) picks the loop-set size; the
tests use ``fast``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

REFERENCE_DIR = Path(__file__).resolve().parent / "assets"
REFERENCE_FILE = REFERENCE_DIR / "loops_reference.npz"
TRAINING_SEED = 0
REFERENCE_SEED = 1


def data_preset() -> str:
    """The loop-set preset grading uses (``HW2_DATA_PRESET``, default ``default``)."""
    return os.environ.get("HW2_DATA_PRESET", "default")


@dataclass
class ReferenceAssets:
    """The classifier, reference statistics and training log-mels of one grading run."""

    classifier: torch.nn.Module
    reference: object                  # course_lib.metrics.evaluate.ReferenceSet
    training_audio: torch.Tensor       # (n_train, samples)
    training_logmels: torch.Tensor     # (n_train, n_mels, frames), normalised
    training_names: list[str]


def training_loops(preset: str | None = None):
    """The loop set students train on: ``LoopDataset(split="all")`` of ``TRAINING_SEED``."""
    from course_lib.data.datasets import LoopDataset

    return LoopDataset(split="all", preset=preset or data_preset(), seed=TRAINING_SEED, precompute_mel=False)


def training_logmels(preset: str | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Every training loop: audio, normalised log-mels (cached beside the data cache) and keys."""
    from course_lib.data.config import cache_root, config_hash
    from grading import similarity

    ds = training_loops(preset)
    key = config_hash({**ds.config, "similarity": [similarity.MEL.to_dict(), similarity.DYNAMIC_RANGE,
                                                   similarity.SMOOTH_FRAMES]})
    path = cache_root() / f"grading-training-logmels-{key}.pt"
    names = [m["key"] for m in ds.meta]
    if path.is_file():
        return ds.audio, torch.load(path, weights_only=True), names
    lm = similarity.normalised_logmel(ds.audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(lm, tmp)
    tmp.replace(path)
    return ds.audio, lm, names


def build_reference(out: Path = REFERENCE_FILE, preset: str | None = None) -> Path:
    """Embed an independent draw of the loop set with the shipped classifier and save it as ``.npz``."""
    from course_lib.data.datasets import LoopDataset
    from course_lib.metrics.evaluate import build_reference as embed_reference
    from course_lib.models.classifiers import load_loop_classifier

    preset = preset or data_preset()
    ds = LoopDataset(split="all", preset=preset, seed=REFERENCE_SEED, precompute_mel=False)
    ref = embed_reference(ds.audio, load_loop_classifier(device="cpu"), sr=ds.sr, device="cpu")
    ref.meta.update({"preset": preset, "seed": REFERENCE_SEED, "n": int(ds.audio.shape[0]),
                     "clip_samples": int(ds.audio.shape[-1]), "built_by": "python -m grading build-reference"})
    return ref.save(out)


def load_reference_assets(reference_file: Path | None = None, preset: str | None = None) -> ReferenceAssets:
    """Everything :func:`grading.score.score_loops` needs (the reference file must exist)."""
    from course_lib.metrics.evaluate import ReferenceSet
    from course_lib.models.classifiers import load_loop_classifier

    path = Path(reference_file or os.environ.get("HW2_REFERENCE", REFERENCE_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference statistics missing; build them with "
                                f"`python -m grading build-reference`")
    audio, lm, names = training_logmels(preset)
    return ReferenceAssets(load_loop_classifier(device="cpu"), ReferenceSet.load(path), audio, lm, names)
