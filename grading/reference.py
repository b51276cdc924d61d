"""What the trusted scorer compares submissions against, all made by course code, none by students.

* the loop classifier shipped in ``course_lib/assets`` (IS and the FAD embedding);
* the reference statistics ``grading/assets/loops_reference.npz``: classifier embeddings of
  held-out real loops, an independent draw of the HW2 loop set (seed ``REFERENCE_SEED``),
  built by ``python -m grading build-reference``;
* the training loops (the HW2 loop set students train on, seed ``TRAINING_SEED``) as normalised
  log-mels for the memorisation check, regenerated deterministically and cached on disk, both as
  they are and **through the grading vocoder** (what a generator that reproduces a training loop's
  mel actually outputs: graded loops are vocoded, so a memorised loop is compared with that).

The environment variable ``HW2_DATA_PRESET`` (default ``lecture``) picks the loop-set size; the
tests use ``fast``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

REFERENCE_DIR = Path(__file__).resolve().parent / "assets"
REFERENCE_FILE = REFERENCE_DIR / "loops_reference.npz"
TRAINING_SEED = 0
REFERENCE_SEED = 1


def data_preset() -> str:
    """The loop-set preset grading uses (``HW2_DATA_PRESET``, default ``lecture``)."""
    return os.environ.get("HW2_DATA_PRESET", "lecture")


@dataclass
class ReferenceAssets:
    """The classifier, reference statistics and training log-mels of one grading run."""

    classifier: torch.nn.Module
    reference: object                  # course_lib.metrics.evaluate.ReferenceSet
    training_audio: torch.Tensor       # (n_train, samples)
    training_logmels: torch.Tensor     # (n_train, n_mels, frames), normalised
    training_names: list[str]
    vocoded_audio: torch.Tensor | None = None    # (n_train, samples): training loops through the grading vocoder
    vocoded_logmels: torch.Tensor | None = None  # (n_train, n_mels, frames), normalised


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


@torch.no_grad()
def through_grading_vocoder(audio: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Loops ``(n, samples)`` -> their log-mel as a generator image -> the grading vocoder -> ``(n, samples)``.

    Exactly the path of a generated loop in ``course_lib.hw2.generate_loops`` after the generator:
    image clamped to [-1, 1], back to log-mel, ``loop_vocoder()`` (the default vocoder), cropped to
    the loop, peak-normalised to 0.9.
    """
    from course_lib.audio import peak_normalize
    from course_lib.hw2 import loop_vocoder
    from course_lib.models.stylegan2 import MelImageSpec
    from course_lib.spectral import log_mel

    spec = MelImageSpec(loop_samples=audio.shape[-1])
    voc = loop_vocoder(None, device="cpu", loop_samples=spec.loop_samples)
    out = []
    for start in range(0, audio.shape[0], batch_size):
        image = spec.to_image(log_mel(audio[start:start + batch_size].float(), spec.mel)).clamp(-1.0, 1.0)
        y = voc(spec.to_mel(image))
        if y.ndim == 3:
            y = y[:, 0]
        out.append(y[..., : spec.loop_samples].float().cpu())
    if not out:
        return torch.zeros(0, audio.shape[-1])
    return peak_normalize(torch.cat(out), 0.9).clamp(-1.0, 1.0)


@functools.lru_cache(maxsize=1)
def grading_vocoder_id() -> str:
    """A hash naming the grading vocoder (``loop_vocoder``'s code and the vocoder files it may load)."""
    import hashlib
    import inspect

    from course_lib import hw2
    from course_lib.models.istft_vocoder import ISTFT_VOCODER_ASSET
    from course_lib.models.melgan import VOCODER_ASSET

    h = hashlib.sha256(inspect.getsource(hw2.loop_vocoder).encode())
    for path in (ISTFT_VOCODER_ASSET, VOCODER_ASSET):
        h.update(path.read_bytes() if path.is_file() else b"missing")
    return h.hexdigest()[:12]


def vocoded_training_logmels(preset: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training loops through the grading vocoder: audio and normalised log-mels, cached per vocoder."""
    import warnings

    from course_lib.data.config import cache_root, config_hash
    from grading import similarity

    ds = training_loops(preset)
    key = config_hash({**ds.config, "vocoder": grading_vocoder_id(),
                       "similarity": [similarity.MEL.to_dict(), similarity.DYNAMIC_RANGE, similarity.SMOOTH_FRAMES]})
    path = cache_root() / f"grading-training-vocoded-{key}.pt"
    if path.is_file():
        blob = torch.load(path, weights_only=True)
        return blob["audio"], blob["logmels"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Griffin-Lim fallback warns once per call
        audio = through_grading_vocoder(ds.audio)
    lm = similarity.normalised_logmel(audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"audio": audio, "logmels": lm}, tmp)
    tmp.replace(path)
    return audio, lm


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
    voc_audio, voc_lm = vocoded_training_logmels(preset)
    return ReferenceAssets(load_loop_classifier(device="cpu"), ReferenceSet.load(path), audio, lm, names,
                           voc_audio, voc_lm)
