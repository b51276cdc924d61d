"""A demo class of fake HW2 submissions, each with a known expected outcome.

Used by ``make demo`` (grade the class and print the table) and by the end-to-end test. Every
student is an inner zip of an LMS bulk download, exactly as ``collect`` expects:

==================  ===================================================================
``ref_solution``    instructor solutions; loops from the course's generator checkpoint
``ref_real``        instructor solutions; held-out *real* loops (what a perfect model gives)
``blank``           the released notebook untouched; no loops/ folder
``collapse``        solutions; one real loop repeated (mode collapse)
``copycat``         solutions; training loops with gain, light noise and a time shift
``cheater``         solutions with test cells emptied and the metrics monkeypatched; noise loops
``hog_time``        a solution cell that never returns (time-out); silence
``hog_memory``      a solution cell that exhausts the memory limit; silence
``Zoë O'Brien``     blank notebook; real loops with a symlink, a corrupted and a non-audio .wav
==================  ===================================================================
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from grading.course import REPO

SOURCE_NB = REPO / "grading" / "source" / "hw2" / "hw2.ipynb"
RELEASE_NB = REPO / "hw2" / "hw2.ipynb"
HELD_OUT_SEED = 2  # neither the training (0) nor the reference (1) draw


@dataclass
class DemoClass:
    """Where the class went and what each student's loops are made of."""

    download: Path
    students: list[str]


def _wav(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.asarray(x, dtype=np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _notebook(path: Path, edit=None) -> bytes:
    nb = json.loads(path.read_text(encoding="utf-8"))
    if edit is not None:
        edit(nb)
    return json.dumps(nb, indent=1).encode("utf-8")


def _cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def _cheat(nb: dict) -> None:
    """Empty every test cell and monkeypatch the metrics and `assert`-like helpers in the kernel."""
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id", "").startswith("test_"):
            cell["source"] = "pass  # tests removed"
    hack = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": (
        "import course_lib.metrics.fad as _f, course_lib.metrics.inception_score as _i, builtins\n"
        "_f.fad_from_embeddings = lambda *a, **k: 0.0\n"
        "_i.inception_score = lambda *a, **k: (99.0, 0.0)\n"
        "import grading.score as _s\n_s.score_loops = lambda *a, **k: None\n"
        "builtins.AssertionError = type('Never', (Exception,), {})\n")}
    nb["cells"].insert(2, hack)


def _hog_time(nb: dict) -> None:
    """A solution cell that never returns."""
    _cell(nb, "modconv")["source"] = "import time\nwhile True:\n    time.sleep(0.1)\n"


def _hog_memory(nb: dict) -> None:
    """A solution cell that allocates until the memory limit stops it."""
    _cell(nb, "mapping")["source"] = "blocks = []\nwhile True:\n    blocks.append(bytearray(256 * 1024 * 1024))\n"


def _submission(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(f"hw2/{name}", data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(f"hw2/{name}")
            info.external_attr = (0o120777) << 16
            z.writestr(info, target)
    return buf.getvalue()


def shuffled(audio: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The clips ``(n, samples)`` in a seeded random order (datasets come sorted by class)."""
    return audio[torch.randperm(audio.shape[0], generator=torch.Generator().manual_seed(seed))]


def tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """An untrained fast-preset generator saved as a checkpoint (stands in for a student's)."""
    from course_lib.models.stylegan2 import Generator, MelImageSpec, StyleGAN2Config, save_generator
    from course_lib.train.gan import PRESETS

    torch.manual_seed(seed)
    arch = PRESETS["stylegan2"]["fast"]["arch"]
    spec = MelImageSpec()
    gen = Generator(StyleGAN2Config(image_size=spec.size, **arch))
    return save_generator(gen, spec, path, meta={"note": "untrained demo generator"})


def build_demo_class(out_dir: Path, n_loops: int, preset: str, checkpoint: Path | None = None,
                     include_slow: bool = True) -> DemoClass:
    """Write ``out_dir/lms_download.zip`` holding the demo class (``n_loops`` loops per student).

    ``checkpoint``: the generator whose loops ``ref_solution`` hands in (default: an untrained one).
    ``include_slow``: add the ``hog_time`` student (it costs a cell time-out per run).
    """
    from course_lib.data.datasets import LoopDataset
    from course_lib.hw2 import generate_loops
    from grading.reference import TRAINING_SEED

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sr = 16000
    ckpt_path = Path(checkpoint) if checkpoint else tiny_checkpoint(out_dir / "demo_checkpoint.pt")
    ckpt = ckpt_path.read_bytes()
    # the datasets are ordered by class: shuffle (seeded) so that any n loops cover every class
    held_out = shuffled(LoopDataset(split="all", preset=preset, seed=HELD_OUT_SEED, precompute_mel=False).audio).numpy()
    training = shuffled(LoopDataset(split="all", preset=preset, seed=TRAINING_SEED, precompute_mel=False).audio).numpy()
    if held_out.shape[0] < n_loops or training.shape[0] < n_loops:
        raise ValueError(f"preset {preset!r} has fewer than {n_loops} loops")
    rng = np.random.default_rng(0)
    real = {f"loops/loop_{i:03d}.wav": _wav(held_out[i], sr) for i in range(n_loops)}
    generated = generate_loops(ckpt_path, n_loops, seed=0).numpy()
    copies = np.roll(training[:n_loops], 3000, axis=1) * 0.7 + 0.001 * rng.standard_normal(training[:n_loops].shape)
    noise = np.clip(0.3 * rng.standard_normal((n_loops, 2 * sr)), -1, 1)
    solution, release = _notebook(SOURCE_NB), _notebook(RELEASE_NB)

    students = {
        "ref_solution": _submission({"hw2.ipynb": solution, "checkpoint.pt": ckpt,
                                     **{f"loops/loop_{i:03d}.wav": _wav(generated[i], sr) for i in range(n_loops)}}),
        "ref_real": _submission({"hw2.ipynb": solution, "checkpoint.pt": ckpt, **real}),
        "blank": _submission({"hw2.ipynb": release}),
        "collapse": _submission({"hw2.ipynb": solution, "checkpoint.pt": ckpt,
                                 **{f"loops/loop_{i:03d}.wav": _wav(held_out[0], sr) for i in range(n_loops)}}),
        "copycat": _submission({"hw2.ipynb": solution, "checkpoint.pt": ckpt,
                                **{f"loops/loop_{i:03d}.wav": _wav(copies[i], sr) for i in range(n_loops)}}),
        "cheater": _submission({"hw2.ipynb": _notebook(SOURCE_NB, _cheat), "checkpoint.pt": ckpt,
                                **{f"loops/loop_{i:03d}.wav": _wav(noise[i], sr) for i in range(n_loops)}}),
        "Zoë O'Brien": _submission(
            {"hw2.ipynb": release, **{k: v for k, v in list(real.items())[3:]},
             "loops/loop_001.wav": _wav(held_out[1], sr)[:1000], "loops/loop_002.wav": b"not audio" * 100},
            symlinks={"loops/loop_000.wav": "/etc/passwd"}),
    }
    silence = {f"loops/loop_{i:03d}.wav": _wav(np.zeros(2 * sr), sr) for i in range(n_loops)}
    students["hog_memory"] = _submission({"hw2.ipynb": _notebook(SOURCE_NB, _hog_memory), **silence})
    if include_slow:
        students["hog_time"] = _submission({"hw2.ipynb": _notebook(SOURCE_NB, _hog_time), **silence})
    download = out_dir / "lms_download.zip"
    with zipfile.ZipFile(download, "w") as z:
        for sid, data in students.items():
            z.writestr(f"{sid}__20261120T120000.zip", data)
    return DemoClass(download, list(students))
