"""The course's evaluation classifiers: a short-chunk CNN for loops and a pitch classifier for notes.

* :class:`ShortChunkCNN` (after Won et al., 2020): log-mel input (the course's ``MelConfig``
  defaults), a stack of 3x3 conv + BatchNorm + ReLU + 2x2 max-pool blocks, global pooling,
  a penultimate embedding layer and a linear classifier. Trained on the synthetic loop set's
  labels, its softmax gives the Inception Score and its penultimate layer the embedding for
  FAD, NDB/K, JSD and PRDC (the FID / Inception pattern).
* :class:`PitchClassifier`: a log-frequency spectrum (a few bins per semitone, averaged over
  time) read by dilated 1-D convolutions along frequency, so a harmonic pattern is recognised
  wherever it sits, then a dense layer that knows *where* it sits (the pitch). Its softmax
  gives GANSynth's pitch accuracy and pitch entropy.

Both map audio ``(batch, samples)`` at ``model.sr`` Hz to logits ``(batch, n_classes)`` and
offer ``embed``, ``predict_proba`` and ``embed_and_proba``. Checkpoints are plain dicts
(``kind``, ``config``, ``state_dict``) written by :func:`save_classifier`; the trained ones ship in
``course_lib/assets/`` with data cards and are loaded without any download.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import DEFAULT_SR
from course_lib.runtime.checkpoint import atomic_save
from course_lib.spectral import MelConfig, log_mel, stft

PathLike = Union[str, Path]
ASSETS = Path(__file__).resolve().parent.parent / "assets"
LOOP_CLASSIFIER_PATH = ASSETS / "loop_classifier.pt"
PITCH_CLASSIFIER_PATH = ASSETS / "pitch_classifier.pt"


# --------------------------------------------------------------------------- short-chunk CNN

@dataclass
class ShortChunkConfig:
    """Architecture of :class:`ShortChunkCNN` (mel settings in Hz / samples; channels per conv block)."""

    n_classes: int
    class_names: list[str] = field(default_factory=list)
    mel: dict = field(default_factory=lambda: MelConfig().to_dict())
    channels: tuple[int, ...] = (16, 32, 64, 128)
    emb_dim: int = 128
    dropout: float = 0.3


class ShortChunkCNN(nn.Module):
    """Loop classifier: audio ``(batch, samples)`` -> log-mel -> conv blocks -> embedding -> logits."""

    kind = "short_chunk_cnn"

    def __init__(self, config: ShortChunkConfig) -> None:
        super().__init__()
        if config.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {config.n_classes}")
        if config.class_names and len(config.class_names) != config.n_classes:
            raise ValueError(f"{len(config.class_names)} class names for {config.n_classes} classes")
        self.config = config
        self.mel_config = MelConfig(**config.mel)
        self.sr = self.mel_config.sr
        self.embedding_dim = config.emb_dim
        self.input_norm = nn.BatchNorm2d(1)
        blocks: list[nn.Module] = []
        c_in = 1
        for c in config.channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.embedding = nn.Sequential(nn.Linear(2 * c_in, config.emb_dim), nn.BatchNorm1d(config.emb_dim),
                                       nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.emb_dim, config.n_classes)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel input ``(batch, 1, n_mels, frames)`` of audio ``(batch, samples)`` at ``self.sr`` Hz."""
        return log_mel(audio, self.mel_config).unsqueeze(1)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer embedding ``(batch, emb_dim)`` (after ReLU) of audio ``(batch, samples)``."""
        h = self.blocks(self.input_norm(self.features(audio)))
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)  # global average + max pooling
        return self.embedding(pooled)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Class logits ``(batch, n_classes)`` of audio ``(batch, samples)``."""
        return self.head(self.dropout(self.embed(audio)))

    def embed_and_proba(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embedding (batch, emb_dim), softmax probabilities (batch, n_classes))`` in one pass."""
        e = self.embed(audio)
        return e, F.softmax(self.head(e), dim=-1)

    def predict_proba(self, audio: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities ``(batch, n_classes)``."""
        return F.softmax(self(audio), dim=-1)


# --------------------------------------------------------------------------- pitch classifier

@dataclass
class PitchConfig:
    """Architecture of :class:`PitchClassifier`.

    Classes are MIDI pitches ``pitch_min .. pitch_min + n_classes - 1``. The front end is a
    log-frequency spectrum from ``fmin`` to ``fmax`` Hz with ``bins_per_semitone`` bins per
    semitone, from an ``n_fft``-point STFT (``hop`` samples) averaged over the first
    ``seconds`` of the note.
    """

    n_classes: int
    pitch_min: int
    sr: int = DEFAULT_SR
    n_fft: int = 2048
    hop: int = 512
    fmin: float = 25.0
    fmax: float = 7900.0
    bins_per_semitone: int = 2
    seconds: float = 1.5
    channels: tuple[int, ...] = (32, 32, 32)
    kernel: int = 7
    emb_dim: int = 128
    dropout: float = 0.2


def log_frequency_filterbank(sr: int, n_fft: int, fmin: float, fmax: float, bins_per_semitone: int,
                             device: torch.device | str | None = None) -> torch.Tensor:
    """Triangular filters ``(n_bins, n_fft // 2 + 1)`` centred on a log-frequency grid (Hz).

    Centres are ``fmin * 2^(i / (12 * bins_per_semitone))`` up to ``fmax``; each triangle spans
    the neighbouring centres, widened to at least one FFT bin on each side so that low,
    narrow filters still interpolate between FFT bins. Rows sum to 1.
    """
    if not 0 < fmin < fmax <= sr / 2:
        raise ValueError(f"need 0 < fmin < fmax <= sr/2; got fmin={fmin} Hz, fmax={fmax} Hz, sr={sr} Hz")
    step = 2.0 ** (1.0 / (12 * bins_per_semitone))
    n_bins = int(math.floor(math.log(fmax / fmin) / math.log(step))) + 1
    centres = fmin * step ** torch.arange(n_bins, dtype=torch.float64)
    df = sr / n_fft
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * df
    left = torch.maximum(centres * (1 - 1 / step), torch.full_like(centres, df))
    right = torch.maximum(centres * (step - 1), torch.full_like(centres, df))
    rise = (freqs[None, :] - (centres - left)[:, None]) / left[:, None]
    fall = ((centres + right)[:, None] - freqs[None, :]) / right[:, None]
    w = torch.minimum(rise, fall).clamp_min(0.0)
    w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return w.to(torch.float32).to(device or "cpu")


class PitchClassifier(nn.Module):
    """Pitch classifier: audio ``(batch, samples)`` -> log-frequency spectrum -> 1-D convs -> logits over MIDI pitches."""

    kind = "pitch"

    def __init__(self, config: PitchConfig) -> None:
        super().__init__()
        if config.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {config.n_classes}")
        self.config = config
        self.sr = config.sr
        self.embedding_dim = config.emb_dim
        self.register_buffer("filterbank", log_frequency_filterbank(
            config.sr, config.n_fft, config.fmin, config.fmax, config.bins_per_semitone), persistent=False)
        n_bins = self.filterbank.shape[0]
        self.input_norm = nn.BatchNorm1d(1)
        layers: list[nn.Module] = []
        c_in = 1
        for i, c in enumerate(config.channels):
            dil = 2**i
            layers += [nn.Conv1d(c_in, c, config.kernel, padding=dil * (config.kernel // 2), dilation=dil, bias=False),
                       nn.BatchNorm1d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.embedding = nn.Sequential(nn.Linear(c_in * n_bins, config.emb_dim), nn.BatchNorm1d(config.emb_dim),
                                       nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.emb_dim, config.n_classes)

    def class_to_midi(self, index: torch.Tensor | int) -> torch.Tensor | int:
        """Class index -> MIDI pitch."""
        return index + self.config.pitch_min

    def midi_to_class(self, midi: torch.Tensor | int) -> torch.Tensor | int:
        """MIDI pitch -> class index (no range check)."""
        return midi - self.config.pitch_min

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-frequency spectrum ``(batch, 1, n_bins)``: log of the filterbank magnitude, averaged over time."""
        x = audio[..., : max(int(self.config.seconds * self.sr), self.config.n_fft)]
        mag = stft(x, self.config.n_fft, self.config.hop).abs()  # (batch, freq, frames)
        spec = torch.matmul(self.filterbank, mag)  # (batch, n_bins, frames)
        return torch.log(spec.mean(dim=-1) + 1e-5).unsqueeze(1)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding ``(batch, emb_dim)`` of audio ``(batch, samples)``."""
        h = self.convs(self.input_norm(self.features(audio)))
        return self.embedding(h.flatten(1))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Logits over MIDI pitch classes ``(batch, n_classes)``."""
        return self.head(self.dropout(self.embed(audio)))

    def embed_and_proba(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embedding, softmax probabilities)`` in one pass."""
        e = self.embed(audio)
        return e, F.softmax(self.head(e), dim=-1)

    def predict_proba(self, audio: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities over pitch classes ``(batch, n_classes)``."""
        return F.softmax(self(audio), dim=-1)


# --------------------------------------------------------------------------- checkpoints

_KINDS = {ShortChunkCNN.kind: (ShortChunkCNN, ShortChunkConfig), PitchClassifier.kind: (PitchClassifier, PitchConfig)}


def build_classifier(kind: str, config: dict) -> nn.Module:
    """A fresh classifier of ``kind`` (``"short_chunk_cnn"`` or ``"pitch"``) from its config dict."""
    if kind not in _KINDS:
        raise ValueError(f"unknown classifier kind {kind!r}; expected one of {sorted(_KINDS)}")
    model_cls, cfg_cls = _KINDS[kind]
    cfg = dict(config)
    if "channels" in cfg:
        cfg["channels"] = tuple(cfg["channels"])
    return model_cls(cfg_cls(**cfg))


def save_classifier(model: ShortChunkCNN | PitchClassifier, path: PathLike, meta: dict | None = None) -> Path:
    """Write ``{"kind", "config", "state_dict", "meta"}`` to ``path`` atomically (float32 tensors on CPU)."""
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    plain = lambda obj: json.loads(json.dumps(obj, default=str))  # noqa: E731  (weights-only loadable)
    return atomic_save({"kind": model.kind, "config": plain(asdict(model.config)), "state_dict": state,
                        "meta": plain(meta or {})}, path)


def load_classifier(path: PathLike, device: torch.device | str | None = None) -> nn.Module:
    """Load a checkpoint written by :func:`save_classifier`, in eval mode on ``device``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for one that is not such a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no classifier checkpoint; rebuild it with "
            f"`python -m course_lib.metrics.train_classifier --task loops|pitch --out {path}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or not {"kind", "config", "state_dict"} <= set(ckpt):
        raise ValueError(f"{path}: not a course classifier checkpoint (needs kind, config, state_dict)")
    model = build_classifier(ckpt["kind"], ckpt["config"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit the stored config ({exc})") from exc
    model.meta = ckpt.get("meta", {})
    return model.to(device or "cpu").eval()


def load_loop_classifier(path: PathLike | None = None, device: torch.device | str | None = None) -> ShortChunkCNN:
    """The shipped loop classifier (``course_lib/assets/loop_classifier.pt``) or the one at ``path``."""
    return load_classifier(LOOP_CLASSIFIER_PATH if path is None else path, device)


def load_pitch_classifier(path: PathLike | None = None, device: torch.device | str | None = None) -> PitchClassifier:
    """The shipped pitch classifier (``course_lib/assets/pitch_classifier.pt``) or the one at ``path``."""
    return load_classifier(PITCH_CLASSIFIER_PATH if path is None else path, device)
