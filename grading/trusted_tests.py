"""Trusted decisions for HW2's test cells: values computed outside the student's kernel.

nbgrader decides a test cell by whether its kernel reported an error, and a notebook controls its
kernel: it can hide a traceback (``showtraceback``, input transformers, ``sys.excepthook`` ...) or
make the comparisons lie (``torch.allclose = lambda *a, **k: True``, numpy, tensors whose
``__torch_function__`` answers ``True``). So the points of the four test cells are decided here:

1. :func:`write_inputs` draws fresh inputs (``.npy``; seeded by a secret of the grading folder
   and the student id, so a re-run is identical and a student cannot precompute answers);
2. :func:`run_probe` runs ``grading/probe.py`` **in the sandbox** (:mod:`grading.sandbox`) on the
   student's code cells; it writes what the student's functions returned as plain arrays, JSON
   and WAV files, nothing else (the course library is hidden from it);
3. :func:`decide` (this process, never the student's) reads them with ``allow_pickle=False``,
   computes the expected values with :mod:`course_lib.models.stylegan2` and decides each part;
   a solution cell that uses the library (AST: imports, ``importlib``, ``exec``, ...) fails its part.

:func:`apply_decisions` writes points = cell maximum if passed, else 0, over nbgrader's own
``auto_score`` of the test cells.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import secrets
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from grading.course import GRADING

PROBE_SCRIPT = GRADING / "probe.py"
SOURCE_NOTEBOOK = GRADING / "source" / "hw2" / "hw2.ipynb"

# part -> (solution cell, test cell)
PARTS: dict[str, tuple[str, str]] = {"modconv": ("modconv", "test_modconv"), "mapping": ("mapping", "test_mapping"),
                                     "r1": ("r1", "test_r1"), "export": ("export", "test_export")}
SKIPPED_CELLS = {"setup", "train", "generate"}  # setup comes from the trusted source; the others do no grading
FORBIDDEN_NAMES = {"course_lib", "importlib", "__import__", "exec", "eval", "compile", "runpy", "__loader__",
                   "__spec__", "stylegan2", "import_module"}
FORBIDDEN_ATTRIBUTES = {"course_lib", "stylegan2", "import_module", "__import__", "__loader__", "__spec__"}
FORBIDDEN_TEXT = ("course_lib", "stylegan")
ATOL = 1e-4
RTOL = 1e-4


@dataclass
class PartResult:
    """The trusted verdict on one part: passed, and why not."""

    part: str
    passed: bool
    reason: str = ""


# --------------------------------------------------------------------------- the notebook's code

def _cells(notebook: Path) -> list[dict]:
    try:
        nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
        return [c for c in nb["cells"] if isinstance(c, dict)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{notebook}: not a readable notebook ({exc})") from exc


def _meta(cell: dict) -> dict:
    meta = cell.get("metadata", {})
    nbg = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    return nbg if isinstance(nbg, dict) else {}


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def probe_cells(notebook: Path, source_notebook: Path = SOURCE_NOTEBOOK) -> list[dict]:
    """The cells the probe runs, in order: the trusted setup cell, then every student code cell
    that is neither a test cell nor locked nor training / generation (solution cells and helpers)."""
    setup = next(_source(c) for c in _cells(source_notebook) if _meta(c).get("grade_id") == "setup")
    out = [{"id": "setup", "source": setup}]
    for i, cell in enumerate(_cells(notebook)):
        meta = _meta(cell)
        if cell.get("cell_type") != "code" or meta.get("grade") or meta.get("locked") \
                or meta.get("grade_id") in SKIPPED_CELLS:
            continue
        out.append({"id": meta.get("grade_id") or f"#{i}", "source": _source(cell)})
    return out


def library_use(source: str) -> str | None:
    """Why a solution cell's code counts as using the course's implementation, or None.

    Refused: importing or naming ``course_lib`` / ``stylegan2`` (also inside strings), and the ways to
    reach a module without writing its name (``importlib``, ``__import__``, ``exec``, ``eval``,
    ``compile``, ``runpy``). Code that does not parse is left to the tests.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if getattr(node, "module", None) else [])
            for name in names:
                if name.split(".")[0] in FORBIDDEN_NAMES or any(t in name for t in FORBIDDEN_TEXT):
                    return f"imports {name}"
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            return f"uses {node.id}"
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            return f"uses .{node.attr}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and any(t in node.value.lower() for t in FORBIDDEN_TEXT):
            return f"names {node.value!r}"
    return None


# --------------------------------------------------------------------------- inputs

def probe_seed(course_dir: Path, student: str) -> int:
    """A seed known only to the grading folder (``.probe_secret``, created once) and the student id."""
    path = Path(course_dir) / ".probe_secret"
    if not path.is_file():
        path.write_text(secrets.token_hex(16), encoding="utf-8")
        path.chmod(0o600)
    digest = hashlib.sha256(f"{path.read_text(encoding='utf-8').strip()}:{student}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


MAPPING_CONFIGS = [  # (z_dim, w_dim, n_layers, lr_mul, perturb): the visible and hidden tests' networks
    (32, 48, 3, 0.01, False), (64, 64, 1, 0.01, False), (64, 64, 4, 0.01, False), (64, 64, 2, 0.01, False),
    (16, 24, 2, 0.1, True), (20, 20, 3, 1.0, True),
]
MAPPING_BATCH = {0: 10, 1: 256, 2: 256}


def write_inputs(folder: Path, seed: int) -> Path:
    """The probe's inputs for ``seed`` as ``.npy`` files (and ``mapping.json``) in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def put(name: str, arr: np.ndarray) -> None:
        np.save(folder / f"{name}.npy", np.asarray(arr, dtype=np.float32), allow_pickle=False)

    put("mc_x", rng.standard_normal((4, 8, 16, 32)))
    put("mc_weight", rng.standard_normal((6, 8, 3, 3)))
    styles = rng.random((4, 8)) + 0.5
    put("mc_styles", styles)
    put("mc_ones", np.ones((4, 8)))
    put("mc_w1", rng.standard_normal((5, 8, 1, 1)))
    put("mc_w3", rng.standard_normal((5, 8, 3, 3)))
    s2 = styles.copy()
    s2[1] *= 3.0
    put("mc_styles2", s2)
    put("mc_styles7", 7.0 * styles)
    put("mc_x_odd", rng.standard_normal((2, 3, 7, 9)))
    put("mc_w5", rng.standard_normal((4, 3, 5, 5)))
    put("mc_styles_odd", rng.random((2, 3)) + 0.5)
    configs = []
    for i, (z_dim, w_dim, n_layers, lr_mul, perturb) in enumerate(MAPPING_CONFIGS):
        configs.append({"z_dim": z_dim, "w_dim": w_dim, "n_layers": n_layers, "lr_mul": lr_mul, "perturb": perturb,
                        "seed": int(rng.integers(0, 2 ** 31))})
        put(f"map_z{i}", rng.standard_normal((MAPPING_BATCH.get(i, 12), z_dim)))
    (folder / "mapping.json").write_text(json.dumps(configs), encoding="utf-8")
    put("r1_a", rng.standard_normal((1, 3, 4, 5)))
    put("r1_x", rng.standard_normal((6, 3, 4, 5)))
    put("r1_c", rng.random((1, 3, 4, 5)) + 0.5)
    put("r1_xq", rng.standard_normal((6, 3, 4, 5)))
    put("r1_a2", rng.standard_normal((1, 3, 4, 5)))
    put("r1_x2", rng.standard_normal((2, 3, 4, 5)))
    put("ex_clips", 0.5 * rng.standard_normal((3, 1000)))
    return folder


# --------------------------------------------------------------------------- running the probe

def run_probe(notebook: Path, work: Path, seed: int, sandbox: bool, timeout_s: float = 900,
              cell_timeout_s: int | None = None, memory_mb: int | None = None, hide: list[Path] = ()) -> Path:
    """Run the probe on ``notebook``'s code in ``work/out`` (sandboxed unless ``sandbox`` is False;
    ``hide``: more folders the sandbox hides, e.g. the grading folder); returns the output folder.
    Never raises for the student's fault (a dead probe leaves no results)."""
    from grading.sandbox import limits, sandboxed

    work = Path(work).resolve()
    inputs, out, cells = work / "inputs", work / "out", work / "cells.json"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_inputs(inputs, seed)
    timeout = cell_timeout_s or int(os.environ.get("HW2_CELL_TIMEOUT", "120"))
    cells.write_text(json.dumps({"cells": probe_cells(notebook), "timeout": timeout}), encoding="utf-8")
    cmd = [sys.executable, str(PROBE_SCRIPT), str(cells), str(inputs), str(out)]
    if sandbox:
        cmd = sandboxed(cmd, writable=[out], readonly=[inputs, cells], hide=hide, hide_library=True, chdir=out)
    env = {**os.environ, "PYTHONPATH": "", "NBGRADER_EXECUTION": "autograde"}
    log = work / "probe.log"
    with open(log, "w", encoding="utf-8") as fh:
        try:
            subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=out, timeout=timeout_s,
                           preexec_fn=limits(memory_mb), start_new_session=True, check=False)
        except subprocess.TimeoutExpired:
            fh.write(f"\nprobe stopped after {timeout_s} s\n")
    return out


# --------------------------------------------------------------------------- decisions

class _Fail(Exception):
    pass


def _array(folder: Path, name: str) -> np.ndarray:
    path = folder / f"{name}.npy"
    if path.is_symlink() or not path.is_file():
        raise _Fail(f"no result for {name}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 (any unreadable file is a failed check)
        raise _Fail(f"{name}: unreadable result ({type(exc).__name__})") from exc


def _close(ours: np.ndarray, ref, what: str, atol: float = ATOL, rtol: float = RTOL) -> None:
    ref = np.asarray(ref.detach().cpu().numpy() if hasattr(ref, "detach") else ref, dtype=np.float64)
    if ours.shape != ref.shape:
        raise _Fail(f"{what}: shape {ours.shape}, expected {ref.shape}")
    ours = ours.astype(np.float64)
    if not np.all(np.isfinite(ours)) or not np.all(np.abs(ours - ref) <= atol + rtol * np.abs(ref)):
        err = float(np.nanmax(np.abs(ours - ref))) if ours.size else 0.0
        raise _Fail(f"{what}: differs from the reference (max abs error {err:.3g})")


def _torch(inputs: Path, name: str):
    import torch

    return torch.from_numpy(np.load(inputs / f"{name}.npy", allow_pickle=False))


def _decide_modconv(inputs: Path, out: Path, meta: dict) -> None:
    from course_lib.models.stylegan2 import modulated_conv2d as ref

    x, weight, styles = _torch(inputs, "mc_x"), _torch(inputs, "mc_weight"), _torch(inputs, "mc_styles")
    _close(_array(out, "default"), ref(x, weight, styles), "demodulated output")
    _close(_array(out, "plain_ones"), ref(x, weight, _torch(inputs, "mc_ones"), demodulate=False),
           "styles of 1 without demodulation (a plain convolution)")
    for k in (1, 3):
        for demod in (True, False):
            _close(_array(out, f"k{k}_demod{int(demod)}"), ref(x, _torch(inputs, f"mc_w{k}"), styles, demodulate=demod),
                   f"{k}x{k} kernel, demodulate={demod}")
    _close(_array(out, "styles2_plain"), ref(x, weight, _torch(inputs, "mc_styles2"), demodulate=False),
           "one sample's style changed")
    _close(_array(out, "scaled"), ref(x, weight, _torch(inputs, "mc_styles7")), "styles scaled by 7")
    x2, w5, s3 = _torch(inputs, "mc_x_odd"), _torch(inputs, "mc_w5"), _torch(inputs, "mc_styles_odd")
    _close(_array(out, "odd_pad0"), ref(x2, w5, s3, padding=0), "5x5 kernel, padding=0")
    _close(_array(out, "odd_default"), ref(x2, w5, s3), "5x5 kernel, default padding")


def _reference_mapping(weights: list[np.ndarray], biases: list[np.ndarray], lr_mul: float, z):
    import torch

    from course_lib.models.stylegan2 import MappingNetwork

    ref = MappingNetwork(z_dim=weights[0].shape[1], w_dim=weights[0].shape[0], n_layers=len(weights), lr_mul=lr_mul)
    with torch.no_grad():
        for layer, w, b in zip(ref.layers, weights, biases):
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))
        return ref(z)


def _decide_mapping(inputs: Path, out: Path, meta: dict) -> None:
    entries = meta.get("mapping", [])
    if len(entries) != len(MAPPING_CONFIGS):
        raise _Fail("the mapping network could not be built and run for every test configuration")
    for i, ((z_dim, w_dim, n_layers, lr_mul, perturb), entry) in enumerate(zip(MAPPING_CONFIGS, entries)):
        what = f"MappingNetwork(z_dim={z_dim}, w_dim={w_dim}, n_layers={n_layers}, lr_mul={lr_mul})"
        n = len(entry.get("names", []))
        params = [_array(out, f"m{i}_{'param' if perturb else 'init'}{j}") for j in range(n)]
        weights = [p for p in params if p.ndim == 2]
        biases = [p for p in params if p.ndim == 1]
        dims = [z_dim] + [w_dim] * n_layers
        if [w.shape for w in weights] != [(o, k) for k, o in zip(dims, dims[1:])] or \
                [b.shape for b in biases] != [(w_dim,)] * n_layers or len(weights) + len(biases) != n:
            raise _Fail(f"{what}: parameters {[p.shape for p in params]}, expected one (out, in) weight and "
                        "one (out,) bias per layer")
        if not all(entry.get("requires_grad", [])) or not all(entry.get("has_grad", [])):
            raise _Fail(f"{what}: some parameters get no gradient")
        if not perturb and lr_mul == 0.01 and not all(50 < float(w.std()) < 200 for w in weights if w.size > 64):
            raise _Fail(f"{what}: stored weights should be randn / lr_mul (std {[float(w.std()) for w in weights]})")
        z = _torch(inputs, f"map_z{i}")
        expected = _reference_mapping(weights, biases, lr_mul, z)
        _close(_array(out, f"m{i}_w"), expected, f"{what}: w", atol=1e-4, rtol=1e-3)
        _close(_array(out, f"m{i}_w5"), expected, f"{what}: w for 5 z (pixel norm)", atol=1e-4, rtol=1e-3)


def _decide_r1(inputs: Path, out: Path, meta: dict) -> None:
    import torch

    from course_lib.models.stylegan2 import r1_penalty as ref

    a, x = _torch(inputs, "r1_a"), _torch(inputs, "r1_x").requires_grad_(True)
    _close(_array(out, "linear"), ref(x, (x * a).flatten(1).sum(1)).detach(), "linear D (R1 = ||a||^2)", rtol=1e-4)
    c, xq = _torch(inputs, "r1_c"), _torch(inputs, "r1_xq").requires_grad_(True)
    _close(_array(out, "quadratic"), ref(xq, (c * xq.square()).flatten(1).sum(1, keepdim=True)).detach(),
           "quadratic D with (B, 1) logits", rtol=1e-4)
    a2, x2 = _torch(inputs, "r1_a2").requires_grad_(True), _torch(inputs, "r1_x2").requires_grad_(True)
    (grad_a,) = torch.autograd.grad(ref(x2, (x2 * a2).flatten(1).sum(1)), a2)
    _close(_array(out, "grad_a"), grad_a, "gradient of R1 with respect to D's parameters (create_graph)", rtol=1e-4)


def _wavs(folder: Path) -> list[Path]:
    if not folder.is_dir() or folder.is_symlink():
        raise _Fail(f"no folder {folder.name}/ was written")
    return sorted(folder.glob("*.wav"))


def _decide_export(inputs: Path, out: Path, meta: dict) -> None:
    import soundfile as sf

    names = [f"loop_{i:03d}.wav" for i in range(3)]
    if meta.get("first_names") != names:
        raise _Fail(f"returned paths {meta.get('first_names')}, expected {names}")
    files = _wavs(out / "first")
    if [p.name for p in files] != names or any(p.is_symlink() for p in files):
        raise _Fail(f"wrote {[p.name for p in files]}, expected {names}")
    clips = np.clip(np.load(inputs / "ex_clips.npy", allow_pickle=False), -1, 1)
    for i, path in enumerate(files):
        try:
            info = sf.info(str(path))
            data, rate = sf.read(str(path), dtype="float32")
        except Exception as exc:  # noqa: BLE001
            raise _Fail(f"{path.name}: not a readable WAV ({type(exc).__name__})") from exc
        if rate != 16000 or info.subtype != "PCM_16" or info.channels != 1 or len(data) != clips.shape[1]:
            raise _Fail(f"{path.name}: {rate} Hz, {info.subtype}, {info.channels} channel(s), {len(data)} samples; "
                        f"expected 16000 Hz, PCM_16, mono, {clips.shape[1]}")
        _close(data, clips[i], f"{path.name} samples", atol=1 / 2 ** 14, rtol=0)
    files = _wavs(out / "loops")
    if [p.name for p in files] != ["loop_000.wav", "loop_001.wav"] or meta.get("loops_names") != [p.name for p in files]:
        raise _Fail(f"after a second export of 2 loops the folder holds {[p.name for p in files]} (stale files kept?)")
    for path in files:
        data, rate = sf.read(str(path), dtype="float32")
        if rate != 8000 or len(data) != 200 or float(np.abs(data).max()) > 1.0 or float(data.min()) <= 0.99:
            raise _Fail(f"{path.name}: loud audio must be clipped to [-1, 1] and written at 8000 Hz")
    if meta.get("nan_raised") != "ValueError":
        raise _Fail(f"audio with NaN must raise ValueError (got {meta.get('nan_raised')})")


DECIDERS = {"modconv": _decide_modconv, "mapping": _decide_mapping, "r1": _decide_r1, "export": _decide_export}


def decide(notebook: Path, inputs: Path, out: Path) -> dict[str, PartResult]:
    """The trusted verdict on every part, from the probe's files in ``out`` and the student's notebook."""
    cells = {(_meta(c).get("grade_id")): _source(c) for c in _cells(notebook) if c.get("cell_type") == "code"}
    try:
        cell_errors = {c["id"]: c["error"] for c in json.loads((Path(out) / "cells.json").read_text())["cells"]}
    except (OSError, ValueError, KeyError, TypeError):
        cell_errors = {}
    results = {}
    for part, (solution_id, _) in PARTS.items():
        source = cells.get(solution_id)
        if source is None:
            results[part] = PartResult(part, False, f"solution cell '{solution_id}' is missing")
            continue
        used = library_use(source)
        if used is not None:
            results[part] = PartResult(part, False, f"the solution cell {used}: it must be your own code")
            continue
        folder = Path(out) / part
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            results[part] = PartResult(part, False, "the probe did not finish (time or memory limit?)")
            continue
        if not isinstance(meta, dict):
            meta = {}
        if str(meta.get("module", "")).startswith("course_lib"):
            results[part] = PartResult(part, False, "the object handed in is the course library's own")
            continue
        if meta.get("error"):
            cell_error = cell_errors.get(solution_id)
            why = f"its cell raised {cell_error}" if cell_error else f"raised {meta['error']}"
            results[part] = PartResult(part, False, why[:300])
            continue
        try:
            DECIDERS[part](Path(inputs), folder, meta)
        except _Fail as exc:
            results[part] = PartResult(part, False, str(exc)[:300])
        except Exception as exc:  # noqa: BLE001 (malformed results fail the part, never the grader)
            results[part] = PartResult(part, False, f"malformed results ({type(exc).__name__}: {exc})"[:300])
        else:
            results[part] = PartResult(part, True)
    return results


def memory_error_cell(out: Path) -> str | None:
    """The first probed cell that ran out of memory, if any."""
    try:
        meta = json.loads((Path(out) / "cells.json").read_text(encoding="utf-8"))
        return next((c["id"] for c in meta["cells"] if c.get("error") == "MemoryError"), None)
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None


def trusted_grade(notebook: Path, work: Path, seed: int, sandbox: bool, **kwargs) -> dict[str, PartResult]:
    """Probe ``notebook`` in ``work`` and decide every part (the whole trusted test run)."""
    out = run_probe(notebook, work, seed, sandbox, **kwargs)
    return decide(notebook, Path(work) / "inputs", out)


def apply_decisions(course_dir: Path, student: str, results: dict[str, PartResult], tries: int = 5) -> dict[str, float]:
    """Write each test cell's points (maximum if its part passed, else 0) as its ``auto_score``
    (retried while another student's nbgrader holds the gradebook's lock)."""
    import time

    from sqlalchemy.exc import OperationalError

    for attempt in range(tries):
        try:
            return _apply_decisions(course_dir, student, results)
        except OperationalError:
            if attempt == tries - 1:
                raise
            time.sleep(2.0 * (attempt + 1))
    return {}


def _apply_decisions(course_dir: Path, student: str, results: dict[str, PartResult]) -> dict[str, float]:
    from nbgrader.api import Gradebook, MissingEntry

    from grading.course import ASSIGNMENT, NOTEBOOK, db_url

    points = {}
    with Gradebook(db_url(course_dir), course_id="music-synthesis") as gb:
        for part, (_, test_id) in PARTS.items():
            try:
                grade = gb.find_grade(test_id, NOTEBOOK, ASSIGNMENT, student)
            except MissingEntry:
                continue
            grade.auto_score = float(grade.max_score) if results[part].passed else 0.0
            points[test_id] = grade.auto_score
        gb.db.commit()
    return points


def save_decisions(path: Path, results: dict[str, PartResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=2), encoding="utf-8")


def summary(results: dict[str, PartResult]) -> str:
    """One line for the feedback: the failed parts and why."""
    failed = [f"{r.part}: {r.reason}" for r in results.values() if not r.passed]
    return "tests decided outside the notebook: " + ("all parts passed" if not failed else "; ".join(failed))


def check_lines(notebook: Path) -> list[str]:
    """Students' ``python -m grading check``: the grader's decision on each code part of ``notebook``
    (fixed inputs; in the bubblewrap sandbox when installed, else directly: it is the student's own code)."""
    import tempfile

    from grading.sandbox import available

    sandbox = available()
    with tempfile.TemporaryDirectory(prefix="hw2-check-") as tmp:
        results = trusted_grade(Path(notebook), Path(tmp), seed=0, sandbox=sandbox, hide=[])
    lines = [f"code part {r.part}: {'passes' if r.passed else 'FAILS: ' + r.reason}" for r in results.values()]
    if not sandbox:
        lines.append("(bubblewrap is not installed here: your code ran without the grader's sandbox)")
    return lines
