"""Checkpoints: one ``torch.save`` dict with the model config, weights, optimizer state and step.

Layout of a checkpoint (all keys always present)::

    {"format": 1, "config": {...}, "model": state_dict, "optimizer": state_dict | None,
     "step": int, "history": {"loss": [...]}, "extra": {...}}

``config`` is a plain dict (JSON-able) that describes how to rebuild the model (and, by
convention, the data and training settings); the writer is atomic (a temp file then rename), so
an interrupted save never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

PathLike = Union[str, Path]
FORMAT = 1


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj, path)`` through a temp file in the same folder and ``os.replace``: a reader never sees a
    half-written file, and an interrupted save leaves the old file (or none) behind. Creates the folder; mode 0644."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is an ordinary shareable file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_checkpoint(path: PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    step: int = 0, config: dict | None = None, history: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write model weights (moved to CPU), optimizer state, step and config to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {"format": FORMAT, "config": dict(config or {}), "model": state,
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "step": int(step), "history": dict(history or {}), "extra": dict(extra or {})}
    atomic_save(ckpt, path)
    return path


def load_checkpoint(path: PathLike, model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                    map_location: str | torch.device = "cpu", rebuild: str | None = None) -> dict[str, Any]:
    """Read a checkpoint dict; if given, load its weights into ``model`` and its state into ``optimizer``.

    Raises FileNotFoundError for a missing file (naming ``rebuild``, the command that makes it, when given) and
    ValueError for a file that is not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}" + (f" (rebuild it with `{rebuild}`)" if rebuild else ""))
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle / zip errors vary by torch version
        raise ValueError(f"{path}: not a readable torch checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt or "step" not in ckpt:
        raise ValueError(f"{path}: not a course checkpoint (expected keys 'model' and 'step')")
    if model is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as err:  # another architecture: say so in one line, naming the file
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            raise ValueError(f"{path}: its weights do not fit this {type(model).__name__} (trained with another "
                             f"configuration? start afresh or use another folder): "
                             f"{lines[1] if len(lines) > 1 else lines[0][:200]}") from err
    if optimizer is not None:
        if ckpt.get("optimizer") is None:
            raise ValueError(f"{path}: checkpoint holds no optimizer state to resume from")
        optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt


def checkpoint_meta(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Everything of a loaded checkpoint but its tensors (``model``, ``optimizer``): config, step, history, extra.
    What a loader attaches to the model as ``.meta``."""
    return {k: v for k, v in ckpt.items() if k not in ("model", "optimizer")}


def load_plain_checkpoint(path: PathLike, kind: str, what: str, rebuild: str) -> dict[str, Any]:
    """A checkpoint written as one plain dict with ``"kind": kind`` (StyleGAN2, MelGAN, the iSTFT vocoder), loaded
    with ``weights_only=True``. A missing file raises ``FileNotFoundError`` naming ``rebuild``, another kind a
    ``ValueError``; ``what`` names the model in both messages."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {what} checkpoint there (train one with `{rebuild}`)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("kind") != kind:
        found = blob.get("kind") if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path}: not {'an' if what[0] in 'aeiouAEIOU' else 'a'} {what} checkpoint (kind={found!r})")
    return blob
