"""One place for the data settings every lesson shares: the course mel, loop geometry, cache.

``COURSE_MEL`` is the log-mel configuration used by every dataset, data card and metric of the
course (16 kHz, 1024-point FFT, hop 256 = 16 ms, 80 mel bands up to 8 kHz). Loops are one 4/4 bar
at 120 BPM, i.e. 2.0 s = 32 000 samples at 16 kHz. Generated datasets are cached on disk under
``$COURSE_DATA_DIR`` (else ``~/.cache/course_lib``) in a folder named by a hash of their config.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from course_lib import DEFAULT_SR
from course_lib.spectral import MelConfig

COURSE_MEL: MelConfig = MelConfig(sr=DEFAULT_SR, n_fft=1024, hop=256, n_mels=80, fmin=0.0, fmax=8000.0)

LOOP_BPM: float = 120.0
BEATS_PER_BAR: int = 4
STEPS_PER_BAR: int = 16
LOOP_SECONDS: float = 60.0 / LOOP_BPM * BEATS_PER_BAR  # 2.0 s
STEP_SECONDS: float = LOOP_SECONDS / STEPS_PER_BAR  # 0.125 s (a 16th note at 120 BPM)

NSYNTH_SR: int = 16_000
NSYNTH_SECONDS: float = 4.0
NSYNTH_HOLD_SECONDS: float = 3.0

# Bump when a generator changes what it produces, so stale caches are not reused.
GENERATOR_VERSION: int = 2


def cache_root() -> Path:
    """The folder for generated datasets: ``$COURSE_DATA_DIR`` or ``~/.cache/course_lib``."""
    env = os.environ.get("COURSE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "course_lib"


def config_hash(config: dict[str, Any], length: int = 12) -> str:
    """A short, stable hex digest of a JSON-serialisable config (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def stable_unit(key: str) -> float:
    """A number in [0, 1) that depends only on the string ``key`` (not on Python's hash seed)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed derived from ``parts`` (e.g. ``(seed, "house", 17)``), stable across runs."""
    digest = hashlib.sha256(repr(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1
