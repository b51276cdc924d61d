"""One call to score a set of generated clips against a reference set with every course metric.

``evaluate(generated, reference)`` embeds both sets (by default with the shipped loop
classifier, whose softmax also gives IS), then computes FAD (optionally with a bootstrap
interval and FAD-infinity), IS (mean ± std over splits), NDB/K and JSD, precision / recall /
density / coverage, and, when the conditioning pitches are given, PA / PE with the pitch
classifier. The result is an :class:`EvaluationResult` that prints as a table and records
every setting. A reference set can be embedded once and cached as ``.npz``
(:class:`ReferenceSet`), which is what the HW2 grader does.
"""

from __future__ import annotations

import json
import zipfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch

from course_lib import DEFAULT_SR
from course_lib.audio import load
from course_lib.metrics.embeddings import Embedder, _check_audio, embed_audio
from course_lib.metrics.fad import fad_bootstrap, fad_infinity
from course_lib.metrics.frechet import GaussianStats, gaussian_stats
from course_lib.metrics.inception_score import inception_score
from course_lib.metrics.ndb import NDBBins
from course_lib.metrics.pitch import pitch_accuracy, pitch_entropy
from course_lib.metrics.prdc import prdc
from course_lib.models.classifiers import load_loop_classifier, load_pitch_classifier
from course_lib.runtime.device import pick_device

PathLike = Union[str, Path]
AudioSource = Union[torch.Tensor, np.ndarray, PathLike]


def load_clips(folder: PathLike, sr: int = DEFAULT_SR, length: int | None = None) -> torch.Tensor:
    """Every audio file in ``folder`` (sorted by name, recursive) as mono clips ``(n, length)`` at ``sr`` Hz.

    Clips are cut or zero-padded to ``length`` samples (default: the longest clip).
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder of clips")
    if not folder.is_dir():
        raise ValueError(f"{folder}: expected a folder of audio clips, got a file")
    exts = {".wav", ".flac", ".ogg", ".aif", ".aiff"}
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts and p.is_file())
    if not files:
        raise ValueError(f"{folder}: holds no audio files ({', '.join(sorted(exts))})")
    clips = [load(p, sr=sr, mono=True)[0] for p in files]
    n = length if length is not None else max(c.shape[-1] for c in clips)
    out = torch.zeros(len(clips), n)
    for i, c in enumerate(clips):
        out[i, : min(n, c.shape[-1])] = c[:n]
    return out


def _as_audio(source: AudioSource, sr: int, length: int | None = None) -> torch.Tensor:
    if isinstance(source, (str, Path)):
        return load_clips(source, sr, length)
    return _check_audio(source)


@torch.no_grad()
def embed_and_proba(audio: torch.Tensor | np.ndarray, model: torch.nn.Module, sr: int = DEFAULT_SR,
                    batch_size: int = 64, device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One batched pass of a classifier over clips ``(n, samples)`` at ``sr`` Hz.

    Returns float64 embeddings ``(n, d)`` (the penultimate layer: FAD, NDB/K, PRDC) and class
    probabilities ``(n, C)`` (the softmax: IS, PA, PE). ``model`` is a course classifier (it has
    ``sr`` and ``embed_and_proba``); audio at another rate is resampled to ``model.sr``. ``device``
    defaults to where the model's weights are.
    """
    import torchaudio.functional as AF

    if not hasattr(model, "embed_and_proba") or not hasattr(model, "sr"):
        raise ValueError(f"{type(model).__name__} is not a course classifier (needs sr and embed_and_proba)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = _check_audio(audio)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    embs, probs = [], []
    for i in range(0, x.shape[0], batch_size):
        chunk = x[i:i + batch_size].to(dev)
        if sr != model.sr:
            chunk = AF.resample(chunk, sr, model.sr)
        e, p = model.embed_and_proba(chunk)
        embs.append(e.to("cpu", torch.float64))
        probs.append(p.to("cpu", torch.float64))
    return torch.cat(embs).numpy(), torch.cat(probs).numpy()


_embed_and_proba = embed_and_proba  # the name calibration.py and the benchmarks import


def _embedder_id(model: object) -> str | None:
    """The training-data hash of a shipped/trained classifier (from its card), else ``None``."""
    meta = getattr(model, "meta", None)
    return meta.get("data", {}).get("sha256_train") if isinstance(meta, dict) else None


@dataclass
class ReferenceSet:
    """Embeddings ``(n, d)`` of real clips and their Gaussian statistics, with how they were made."""

    embeddings: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings, dtype=np.float64)
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] < 2:
            raise ValueError(f"reference embeddings must be (n >= 2, d), got shape {self.embeddings.shape}")
        self.stats: GaussianStats = gaussian_stats(self.embeddings)
        self._bins: dict[tuple[int, int], NDBBins] = {}

    def ndb_bins(self, k: int, seed: int) -> NDBBins:
        """K-means bins on the reference embeddings (fitted once per ``(k, seed)`` and cached)."""
        if (k, seed) not in self._bins:
            self._bins[(k, seed)] = NDBBins(self.embeddings, k=k, seed=seed)
        return self._bins[(k, seed)]

    def save(self, path: PathLike) -> Path:
        """Write embeddings, ``mu``, ``sigma`` and the meta (JSON) to an ``.npz`` file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, embeddings=self.embeddings, mu=self.stats.mu, sigma=self.stats.sigma,
                 n=np.int64(self.stats.n), meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path: PathLike) -> "ReferenceSet":
        """Read a file written by :meth:`save` (``FileNotFoundError`` / ``ValueError`` when missing / invalid)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such reference file")
        try:
            with np.load(path, allow_pickle=False) as data:
                if "embeddings" not in data.files:
                    raise ValueError(f"{path}: not a reference set (no 'embeddings' array)")
                meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
                return cls(data["embeddings"], meta)
        except ValueError as exc:
            if str(path) in str(exc):
                raise
            raise ValueError(f"{path}: not a readable reference .npz ({exc})") from exc
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not a readable reference .npz ({exc})") from exc


def build_reference(audio: AudioSource, embedder: Embedder | None = None, sr: int = DEFAULT_SR,
                    batch_size: int = 64, device: torch.device | str | None = None) -> ReferenceSet:
    """Embed real clips ``(n, samples)`` (or a folder) once; default embedder: the shipped loop classifier."""
    model = embedder if embedder is not None else load_loop_classifier()
    x = _as_audio(audio, sr)
    emb = embed_audio(x, model, sr, batch_size, device)
    meta = {"embedder": type(model).__name__, "embedder_id": _embedder_id(model),
            "sr": sr, "clip_samples": int(x.shape[-1]), "n": int(x.shape[0])}
    return ReferenceSet(emb, meta)


@dataclass
class EvaluationResult:
    """All metrics of one generated set, with the settings they were computed with.

    Arrows in the table say which direction is better. ``None`` marks a metric not computed.
    """

    n_generated: int
    n_reference: int
    fad: float
    is_mean: float
    is_std: float
    ndb: int
    ndb_k: float
    jsd: float
    precision: float
    recall: float
    density: float
    coverage: float
    fad_ci: tuple[float, float] | None = None
    fad_inf: float | None = None
    pa: float | None = None
    pe: float | None = None
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)

    def table(self) -> str:
        """The metrics as an aligned two-column text table."""
        rows = [("FAD ↓", f"{self.fad:.4f}" + (f"  [{self.fad_ci[0]:.4f}, {self.fad_ci[1]:.4f}]" if self.fad_ci else "")),
                ("FAD∞ ↓", None if self.fad_inf is None else f"{self.fad_inf:.4f}"),
                ("IS ↑", f"{self.is_mean:.3f} ± {self.is_std:.3f}"),
                ("NDB/K ↓", f"{self.ndb_k:.3f}  ({self.ndb}/{self.settings.get('ndb_k', '?')} bins)"),
                ("JSD ↓", f"{self.jsd:.4f}"),
                ("precision ↑", f"{self.precision:.3f}"), ("recall ↑", f"{self.recall:.3f}"),
                ("density ↑", f"{self.density:.3f}"), ("coverage ↑", f"{self.coverage:.3f}"),
                ("PA (%) ↑", None if self.pa is None else f"{self.pa:.1f}"),
                ("PE (nats) ↓", None if self.pe is None else f"{self.pe:.3f}")]
        rows = [(k, v) for k, v in rows if v is not None]
        width = max(len(k) for k, _ in rows)
        head = f"{self.n_generated} generated vs {self.n_reference} reference clips ({self.seconds:.1f} s)"
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return "\n".join([head, "-" * len(head)] + [f"{k:<{width}}  {v}" for k, v in rows] + [f"settings: {settings}"])

    def __str__(self) -> str:
        return self.table()


def evaluate(generated: AudioSource, reference: ReferenceSet | AudioSource, sr: int = DEFAULT_SR,
             classifier: torch.nn.Module | None = None, embedder: Embedder | None = None,
             is_splits: int = 10, ndb_k: int | None = None, ndb_alpha: float = 0.05, prdc_k: int = 5,
             fad_boot: int = 0, fad_inf: bool = False, pitch_targets: Sequence[int] | torch.Tensor | None = None,
             pitch_classifier: torch.nn.Module | None = None, batch_size: int = 64,
             device: torch.device | str | None = None, seed: int = 0) -> EvaluationResult:
    """Score generated clips against a reference with FAD, IS, NDB/K, JSD, PRDC (and PA/PE).

    Args:
        generated: clips ``(m, samples)`` at ``sr`` Hz, or a folder of audio files.
        reference: a :class:`ReferenceSet` (or its ``.npz`` path), real clips ``(n, samples)`` or a folder.
            A cached reference must have been made with the same embedder.
        classifier: gives IS (softmax) and, unless ``embedder`` is set, the embedding
            (default: the shipped loop classifier). embedder: e.g. VGGish for a standard FAD.
        is_splits: IS splits (clamped to ``m``). ndb_k: k-means bins (default ``min(50, n // 10)``, >= 2).
        prdc_k: neighbours for the PRDC radii. fad_boot: bootstrap resamples for a 95 % FAD CI (0 = none).
        fad_inf: also extrapolate FAD-infinity. pitch_targets: MIDI pitch per generated clip; with it,
            PA / PE come from ``pitch_classifier`` (default: the shipped pitch classifier).
        device: where the networks run; seed: k-means / bootstrap / FAD-inf randomness.
    """
    t0 = time.perf_counter()
    dev = pick_device(device)
    clf = classifier if classifier is not None else load_loop_classifier(device=dev)
    if isinstance(reference, (str, Path)) and Path(reference).suffix == ".npz":
        reference = ReferenceSet.load(reference)
    if not isinstance(reference, ReferenceSet):
        reference = build_reference(reference, embedder or clf, sr, batch_size, dev)
    ref_id, our_id = reference.meta.get("embedder_id"), _embedder_id(embedder or clf)
    if ref_id and our_id and ref_id != our_id:
        raise ValueError(f"the reference was embedded with another network (id {ref_id[:12]}...) than the one "
                         f"used now ({our_id[:12]}...); rebuild the reference with build_reference()")
    length = reference.meta.get("clip_samples")
    gen = _as_audio(generated, sr, length)
    if gen.shape[0] < 2:
        raise ValueError(f"need at least 2 generated clips, got {gen.shape[0]}")
    emb, probs = _embed_and_proba(gen, clf, sr, batch_size, dev)
    if embedder is not None:
        emb = embed_audio(gen, embedder, sr, batch_size, dev)
    if emb.shape[1] != reference.stats.dim:
        raise ValueError(f"generated embeddings have {emb.shape[1]} dims but the reference has "
                         f"{reference.stats.dim}: was the reference made with another embedder?")
    m, n = gen.shape[0], reference.embeddings.shape[0]
    k = ndb_k if ndb_k is not None else max(2, min(50, n // 10))
    splits = max(1, min(is_splits, m))
    gen_stats = gaussian_stats(emb)
    ndb_res = reference.ndb_bins(k, seed).score(emb, alpha=ndb_alpha)
    pr = prdc(reference.embeddings, emb, k=prdc_k)
    is_mean, is_std = inception_score(probs, splits=splits)
    ci = None
    if fad_boot:
        b = fad_bootstrap(reference.stats, emb, n_boot=fad_boot, seed=seed)
        ci = (b.low, b.high)
    finf = fad_infinity(reference.stats, emb, seed=seed).value if fad_inf else None
    pa = pe = None
    if pitch_targets is not None:
        pclf = pitch_classifier if pitch_classifier is not None else load_pitch_classifier(device=dev)
        targets = torch.as_tensor(pitch_targets).long().cpu()
        if targets.shape != (m,):
            raise ValueError(f"pitch_targets must hold one MIDI pitch per generated clip ({m}), got {tuple(targets.shape)}")
        _, pprobs = _embed_and_proba(gen, pclf, sr, batch_size, dev)
        pa = pitch_accuracy(pprobs, pclf.midi_to_class(targets).numpy())
        pe = pitch_entropy(pprobs)
    settings = {"embedder": type(embedder or clf).__name__, "classifier": type(clf).__name__, "sr": sr,
                "is_splits": splits, "ndb_k": k, "ndb_alpha": ndb_alpha, "prdc_k": prdc_k, "fad_boot": fad_boot,
                "seed": seed, "device": str(dev)}
    return EvaluationResult(
        n_generated=m, n_reference=n, fad=reference.stats.distance(gen_stats), is_mean=is_mean, is_std=is_std,
        ndb=ndb_res.ndb, ndb_k=ndb_res.ndb_k, jsd=ndb_res.jsd, precision=pr.precision, recall=pr.recall,
        density=pr.density, coverage=pr.coverage, fad_ci=ci, fad_inf=finf, pa=pa, pe=pe,
        seconds=time.perf_counter() - t0, settings=settings)
