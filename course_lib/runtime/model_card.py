"""A shipped checkpoint's data card: ``<stem>.json`` (the measured figures) and ``<stem>.md`` (their reading).

Every card writer (GANSynth, DDSP, ...) measures its own figures and renders its own Markdown; this module writes
the two files beside the checkpoint the same way for all of them, keeping a hand-written ``## Limitations``
section already in the ``.md`` (a person's reading of the figures survives a regeneration). Dataset cards are a
different thing: :mod:`course_lib.data.card`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Union

PathLike = Union[str, Path]
LIMITATIONS_HEADING = "## Limitations"


def kept_limitations(md_path: PathLike) -> str:
    """The ``## Limitations`` section (to the end of the file) of an existing card ``md_path``; ``""`` if none."""
    md_path = Path(md_path)
    if not md_path.is_file():
        return ""
    text = md_path.read_text(encoding="utf-8")
    return text[text.index(LIMITATIONS_HEADING):] if LIMITATIONS_HEADING in text else ""


def write_model_card(checkpoint: PathLike, card: dict, markdown: Callable[[dict, str], str]) -> tuple[Path, Path]:
    """Write ``card`` as ``<checkpoint stem>.json`` and ``markdown(card, kept limitations)`` as ``.md`` beside the
    checkpoint; returns ``(json_path, md_path)``."""
    checkpoint = Path(checkpoint)
    json_path, md_path = checkpoint.with_suffix(".json"), checkpoint.with_suffix(".md")
    limitations = kept_limitations(md_path)
    json_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(card, limitations), encoding="utf-8")
    return json_path, md_path


def read_model_card(checkpoint: PathLike) -> dict:
    """The ``<checkpoint stem>.json`` card beside ``checkpoint`` as a dict; ``{}`` when there is none."""
    json_path = Path(checkpoint).with_suffix(".json")
    return json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else {}
