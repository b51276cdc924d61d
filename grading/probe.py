"""The HW2 probe: runs a student's code cells and records what their four functions return.

This script is the only grading code that runs *with* student code (in the sandbox, see
:mod:`grading.sandbox`). It decides nothing: it executes the cells, calls the student's
``modulated_conv2d``, ``MappingNetwork``, ``r1_penalty`` and ``export_loops`` on the inputs the
trusted grader wrote (``.npy`` files, fresh random values per grading folder) and writes what they
return as plain ``.npy`` arrays (``allow_pickle=False``), JSON and WAV files. The trusted grader
(:mod:`grading.trusted_tests`, another process) reads them and compares them with the course's
reference implementation. Whatever a notebook patches in this process (tracebacks, ``torch.allclose``,
numpy, ``assert``) cannot change a value the reference computes elsewhere.

Usage (the trusted grader builds the arguments)::

    python grading/probe.py CELLS.json INPUTS_DIR OUT_DIR

Standalone on purpose: it imports nothing from ``grading`` or ``course_lib`` (neither is needed, and
in the sandbox the library is not even visible, so a solution cannot hand in the reference).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path


class CellTimeout(BaseException):
    """Raised by the alarm when a cell or a probe runs past its time limit."""


def _alarm(_signum, _frame):
    raise CellTimeout("time limit")


def _save(out: Path, name: str, value) -> None:
    """Save one returned value as a float32 ``.npy`` (what is not a plain array is refused)."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        value = torch.Tensor.numpy(torch.Tensor.cpu(torch.Tensor.detach(value)).float())
    arr = np.array(value, dtype=np.float32, copy=True)
    np.save(out / f"{name}.npy", arr, allow_pickle=False)


def _load(inputs: Path, name: str):
    import numpy as np
    import torch

    return torch.from_numpy(np.load(inputs / f"{name}.npy", allow_pickle=False))


def probe_modconv(fn, inputs: Path, out: Path, meta: dict) -> None:
    x, weight, styles = _load(inputs, "mc_x"), _load(inputs, "mc_weight"), _load(inputs, "mc_styles")
    _save(out, "default", fn(x, weight, styles))
    _save(out, "plain_ones", fn(x, weight, _load(inputs, "mc_ones"), demodulate=False))
    for k in (1, 3):
        wk = _load(inputs, f"mc_w{k}")
        for demod in (True, False):
            _save(out, f"k{k}_demod{int(demod)}", fn(x, wk, styles, demodulate=demod))
    _save(out, "styles2_plain", fn(x, weight, _load(inputs, "mc_styles2"), demodulate=False))
    _save(out, "scaled", fn(x, weight, _load(inputs, "mc_styles7")))
    x2, w5, s3 = _load(inputs, "mc_x_odd"), _load(inputs, "mc_w5"), _load(inputs, "mc_styles_odd")
    _save(out, "odd_pad0", fn(x2, w5, s3, padding=0))
    _save(out, "odd_default", fn(x2, w5, s3))


def probe_mapping(cls, inputs: Path, out: Path, meta: dict) -> None:
    import torch

    configs = json.loads((inputs / "mapping.json").read_text())
    for i, cfg in enumerate(configs):
        torch.manual_seed(cfg["seed"])
        m = cls(z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], n_layers=cfg["n_layers"], lr_mul=cfg["lr_mul"])
        params = list(m.named_parameters())
        entry = {"names": [n for n, _ in params], "requires_grad": [bool(p.requires_grad) for _, p in params]}
        for j, (_, p) in enumerate(params):
            _save(out, f"m{i}_init{j}", p)
        if cfg["perturb"]:  # every parameter gets fresh values (non-zero biases), saved for the reference
            g = torch.Generator().manual_seed(cfg["seed"] + 1)
            with torch.no_grad():
                for j, (_, p) in enumerate(params):
                    p.copy_(torch.randn(p.shape, generator=g) / cfg["lr_mul"])
                    _save(out, f"m{i}_param{j}", p)
        z = _load(inputs, f"map_z{i}")
        w = m(z)
        _save(out, f"m{i}_w", w)
        _save(out, f"m{i}_w5", m(5.0 * z))
        w.square().mean().backward()
        entry["has_grad"] = [p.grad is not None for _, p in params]
        meta.setdefault("mapping", []).append(entry)


def probe_r1(fn, inputs: Path, out: Path, meta: dict) -> None:
    import torch

    a, x = _load(inputs, "r1_a"), _load(inputs, "r1_x").requires_grad_(True)
    _save(out, "linear", fn(x, (x * a).flatten(1).sum(1)))
    c, xq = _load(inputs, "r1_c"), _load(inputs, "r1_xq").requires_grad_(True)
    _save(out, "quadratic", fn(xq, (c * xq.square()).flatten(1).sum(1, keepdim=True)))
    a2, x2 = _load(inputs, "r1_a2").requires_grad_(True), _load(inputs, "r1_x2").requires_grad_(True)
    (grad_a,) = torch.autograd.grad(fn(x2, (x2 * a2).flatten(1).sum(1)), a2)
    _save(out, "grad_a", grad_a)


def probe_export(fn, inputs: Path, out: Path, meta: dict) -> None:
    import torch

    clips = _load(inputs, "ex_clips")
    paths = fn(out / "first", clips, 16000)
    meta["first_names"] = [Path(p).name for p in paths]
    fn(out / "loops", torch.zeros(5, 100) + 0.1, 8000)
    paths = fn(out / "loops", 3.0 * torch.ones(2, 200), 8000)  # stale files go, loud audio is clipped
    meta["loops_names"] = [Path(p).name for p in paths]
    bad = torch.zeros(1, 10)
    bad[0, 3] = float("nan")
    try:
        fn(out / "nan", bad, 8000)
    except ValueError:
        meta["nan_raised"] = "ValueError"
    except Exception as exc:  # noqa: BLE001 (recorded, decided by the grader)
        meta["nan_raised"] = type(exc).__name__
    else:
        meta["nan_raised"] = None


PROBES = {"modconv": ("modulated_conv2d", probe_modconv), "mapping": ("MappingNetwork", probe_mapping),
          "r1": ("r1_penalty", probe_r1), "export": ("export_loops", probe_export)}


def _block_course_lib() -> None:
    """Make ``import course_lib`` fail in this process (where the sandbox could not hide it)."""
    import importlib.abc

    class _Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "course_lib" or name.startswith("course_lib."):
                raise ImportError("the course library is not available to HW2 solutions while grading")
            return None

    for name in [n for n in sys.modules if n == "course_lib" or n.startswith("course_lib.")]:
        del sys.modules[name]
    sys.meta_path.insert(0, _Refuse())


def main(argv: list[str]) -> int:
    cells_json, inputs, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    spec = json.loads(cells_json.read_text(encoding="utf-8"))
    timeout = int(spec.get("timeout", 120))
    out.mkdir(parents=True, exist_ok=True)
    os.environ["NBGRADER_EXECUTION"] = "autograde"  # the notebook's AUTOGRADING flag: no training
    _block_course_lib()
    signal.signal(signal.SIGALRM, _alarm)
    import numpy  # noqa: F401  (imported before any student code)
    import torch  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    meta: dict = {"cells": []}
    for cell in spec["cells"]:
        signal.alarm(timeout)
        try:
            result = shell.run_cell(cell["source"], store_history=False)
            error = result.error_in_exec or result.error_before_exec
        except CellTimeout as exc:  # raised outside the user code's own try blocks
            error = exc
        finally:
            signal.alarm(0)
        name = None if error is None else type(error).__name__
        meta["cells"].append({"id": cell["id"], "error": name})
    for part, (symbol, probe) in PROBES.items():
        folder = out / part
        folder.mkdir(exist_ok=True)
        part_meta: dict = {}
        obj = shell.user_ns.get(symbol)
        if obj is None:
            part_meta["error"] = f"{symbol} is not defined"
        else:
            part_meta["module"] = str(getattr(obj, "__module__", ""))
            signal.alarm(timeout)
            try:
                probe(obj, inputs, folder, part_meta)
            except BaseException as exc:  # noqa: BLE001 (a failing solution is data, not a crash)
                part_meta["error"] = f"{type(exc).__name__}: {exc}"[:500]
                traceback.print_exc()
            finally:
                signal.alarm(0)
        (folder / "meta.json").write_text(json.dumps(part_meta), encoding="utf-8")
    (out / "cells.json").write_text(json.dumps(meta), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
