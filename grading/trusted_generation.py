"""Trusted generation: the scorer makes the graded loops itself from a student's ``checkpoint.pt``.

The loops a student hands in are not graded (anyone can render good-sounding loops without a
model); the scorer loads the checkpoint in its own process, outside every student kernel, and
generates the graded loops with :func:`course_lib.hw2.generate_loops` (the course's vocoder) at the
policy's seed. Steps, every refusal a :class:`CheckpointRefused` whose message names the file and
what was wrong:

1. :func:`inspect_checkpoint`: a regular file under ``max_bytes``; ``torch.load(weights_only=True)``
   (no code runs); ``kind == "stylegan2_generator"``; the config's sizes (channels, z/w dims,
   mapping layers, n_up, image size) within :class:`~grading.policy.CheckpointLimits` and the mel
   spec the course's vocoder expects — all *before* any model is built; then the state dict is
   compared, name by name and shape by shape, with the architecture built on PyTorch's ``meta``
   device (no memory), and the parameter count and an upper bound of the multiply-accumulates per
   loop are checked. ``meta["truncation_psi"]`` is read and clamped into the policy's range.
2. :func:`write_clean_checkpoint`: only the checked entries are saved again, in a private folder.
3. :func:`generate`: a child process (``python -m grading.trusted_generation``) with an
   address-space limit (``RLIMIT_AS``) and a wall-clock limit runs ``generate_loops`` for the
   graded loops (policy seed) and the preview loops (``preview_seed``, as the notebook makes them)
   and writes them as ``.npz``; the parent reads them back with ``allow_pickle=False``.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from grading.policy import CheckpointLimits, GenerationPolicy, SubmissionPolicy

REPO = Path(__file__).resolve().parent.parent
KIND = "stylegan2_generator"


class CheckpointRefused(ValueError):
    """A checkpoint the scorer will not run (the message is the student's feedback)."""


@dataclass
class CheckpointInfo:
    """What :func:`inspect_checkpoint` found: the checked entries and the figures the limits apply to."""

    path: str
    size_bytes: int
    config: dict
    spec: dict
    state_dict: dict = field(repr=False)
    parameters: int = 0
    gmacs_per_loop: float = 0.0
    truncation_psi: float = 1.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-safe description for the score report (no tensors)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("state_dict", "spec")}
        d["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.config.items()}
        return d


def _int(name: str, value, path: Path, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointRefused(f"{path}: config {name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise CheckpointRefused(f"{path}: config {name} = {value} is outside the allowed {low}..{high} "
                                f"(grading/thresholds.toml [checkpoint]); the scorer refuses to build it")
    return value


def _float(name: str, value, path: Path, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckpointRefused(f"{path}: config {name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise CheckpointRefused(f"{path}: config {name} = {value} is outside {low}..{high}")
    return float(value)


def _check_config(raw, path: Path, limits: CheckpointLimits, spec) -> dict:
    """Validate the StyleGAN2Config dict field by field against the limits (nothing is built)."""
    from course_lib.models.stylegan2 import StyleGAN2Config

    if not isinstance(raw, dict):
        raise CheckpointRefused(f"{path}: 'config' must be a dict of StyleGAN2Config fields")
    allowed = {f.name for f in fields(StyleGAN2Config)}
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise CheckpointRefused(f"{path}: unknown config entries {unknown} (not the course's StyleGAN2)")
    cfg = {}
    n_up = _int("n_up", raw.get("n_up", StyleGAN2Config.n_up), path, 1, limits.max_n_up)
    cfg["n_up"] = n_up
    channels = raw.get("channels", StyleGAN2Config.channels)
    if not isinstance(channels, (list, tuple)) or len(channels) != n_up + 1:
        raise CheckpointRefused(f"{path}: config channels must list n_up + 1 = {n_up + 1} integers, got "
                                f"{channels if isinstance(channels, (list, tuple)) and len(channels) < 20 else type(channels).__name__}")
    cfg["channels"] = tuple(_int(f"channels[{i}]", c, path, 1, limits.max_channels) for i, c in enumerate(channels))
    cfg["z_dim"] = _int("z_dim", raw.get("z_dim", StyleGAN2Config.z_dim), path, 1, limits.max_z_dim)
    cfg["w_dim"] = _int("w_dim", raw.get("w_dim", StyleGAN2Config.w_dim), path, 1, limits.max_w_dim)
    cfg["mapping_layers"] = _int("mapping_layers", raw.get("mapping_layers", StyleGAN2Config.mapping_layers),
                                 path, 1, limits.max_mapping_layers)
    cfg["mapping_lr_mul"] = _float("mapping_lr_mul", raw.get("mapping_lr_mul", StyleGAN2Config.mapping_lr_mul),
                                   path, 1e-6, 1e3)
    cfg["mbstd_group"] = _int("mbstd_group", raw.get("mbstd_group", StyleGAN2Config.mbstd_group), path, 0, 64)
    cfg["w_avg_beta"] = _float("w_avg_beta", raw.get("w_avg_beta", StyleGAN2Config.w_avg_beta), path, 0.0, 1.0)
    cfg["n_classes"] = _int("n_classes", raw.get("n_classes", StyleGAN2Config.n_classes), path, 0, limits.max_classes)
    # how a conditional generator reads its class changes what it computes: both travel with the weights
    cfg["class_lr_mul"] = _float("class_lr_mul", raw.get("class_lr_mul", StyleGAN2Config.class_lr_mul), path, 1e-6, 1e3)
    cfg["input_map_init"] = _float("input_map_init", raw.get("input_map_init", StyleGAN2Config.input_map_init),
                                   path, 0.0, 1e3)
    for name in ("class_mapping", "input_from_w"):  # switches that change what the generator computes
        value = raw.get(name, getattr(StyleGAN2Config, name))
        if not isinstance(value, bool):
            raise CheckpointRefused(f"{path}: config {name} must be true or false, got {value!r}")
        cfg[name] = value
    size = raw.get("image_size", StyleGAN2Config.image_size)
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise CheckpointRefused(f"{path}: config image_size must be (height, width)")
    h = _int("image_size[0]", size[0], path, 1, 4096)
    w = _int("image_size[1]", size[1], path, 1, 4096)
    if (h, w) != tuple(spec.size):
        raise CheckpointRefused(f"{path}: config image_size {(h, w)} does not match the mel image {tuple(spec.size)}")
    if h % 2 ** n_up or w % 2 ** n_up:
        raise CheckpointRefused(f"{path}: image_size {(h, w)} is not divisible by 2**n_up = {2 ** n_up}")
    cfg["image_size"] = (h, w)
    return cfg


def _check_spec(raw, path: Path, limits: CheckpointLimits, sub: SubmissionPolicy):
    """The mel-image spec must be the one the course's vocoder reads, at the policy's loop length."""
    from course_lib.models.stylegan2 import MelImageSpec

    if not isinstance(raw, dict) or not isinstance(raw.get("mel"), dict):
        raise CheckpointRefused(f"{path}: 'spec' must be a MelImageSpec dict with a 'mel' entry")
    width = raw.get("width", MelImageSpec.width)
    _int("spec width", width, path, 1, limits.max_image_width)
    try:
        spec = MelImageSpec.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise CheckpointRefused(f"{path}: spec is not a valid MelImageSpec ({exc})") from None
    course = MelImageSpec()
    if spec.mel != course.mel:
        raise CheckpointRefused(f"{path}: spec mel settings {spec.mel.to_dict()} differ from the course's "
                                f"{course.mel.to_dict()} (the grading vocoder reads only those)")
    if spec.loop_samples != sub.samples or spec.mel.sr != sub.sample_rate:
        raise CheckpointRefused(f"{path}: spec makes {spec.loop_samples} samples at {spec.mel.sr} Hz; the policy "
                                f"requires {sub.samples} at {sub.sample_rate} Hz")
    if not (math.isfinite(spec.lo) and math.isfinite(spec.hi)):
        raise CheckpointRefused(f"{path}: spec lo / hi must be finite")
    return spec


def gmacs_per_loop(cfg: dict) -> float:
    """Upper bound of the generator's multiply-accumulates per loop (10^9), from the config alone.

    Each 3x3 modulated conv at output size ``(h, w)`` costs ``c_in * c_out * 9 * h * w``, each ToMel
    ``c_in * h * w``, the mapping network ``layers * w_dim * max(z_dim, w_dim)``.
    """
    c, n_up = cfg["channels"], cfg["n_up"]
    h0, w0 = cfg["image_size"][0] // 2 ** n_up, cfg["image_size"][1] // 2 ** n_up
    macs = cfg["mapping_layers"] * cfg["w_dim"] * max(cfg["z_dim"], cfg["w_dim"])
    macs += c[0] * c[0] * 9 * h0 * w0 + c[0] * h0 * w0
    for k in range(1, n_up + 1):
        hw = h0 * w0 * 4 ** k
        macs += c[k - 1] * c[k] * 9 * hw + c[k] * c[k] * 9 * hw + c[k] * hw
    return macs / 1e9


def _clamp_psi(meta, path: Path, gen: GenerationPolicy, notes: list[str]) -> float:
    lo, hi = gen.truncation_psi_min, gen.truncation_psi_max
    psi = meta.get("truncation_psi") if isinstance(meta, dict) else None
    if psi is None:
        return gen.truncation_psi_default
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi):
        notes.append(f"meta['truncation_psi'] = {psi!r} is not a finite number; the default "
                     f"{gen.truncation_psi_default:g} was used")
        return gen.truncation_psi_default
    if not lo <= psi <= hi:
        clamped = min(max(float(psi), lo), hi)
        notes.append(f"meta['truncation_psi'] = {psi:g} is outside the allowed range [{lo:g}, {hi:g}]; "
                     f"{clamped:g} was used")
        return clamped
    return float(psi)


def inspect_checkpoint(path: Path, limits: CheckpointLimits, gen: GenerationPolicy,
                       sub: SubmissionPolicy) -> CheckpointInfo:
    """Check a handed-in checkpoint without running anything from it; raises :class:`CheckpointRefused`."""
    from course_lib.models.stylegan2 import Generator, StyleGAN2Config

    path = Path(path)
    if path.is_symlink():
        raise CheckpointRefused(f"{path.name}: is a symbolic link (not followed; hand in the file itself)")
    if not path.exists():
        raise CheckpointRefused(f"{path.name}: no checkpoint.pt handed in (the graded loops are generated from it)")
    if not path.is_file():
        raise CheckpointRefused(f"{path.name}: is not a regular file")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise CheckpointRefused(f"{path.name}: is {size} bytes (limit {limits.max_bytes}); not loaded")
    try:  # a zip whose members inflate beyond the limit (a zip bomb) is refused before torch reads it
        import zipfile

        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                unpacked = sum(i.file_size for i in z.infolist())
            if unpacked > limits.max_bytes:
                raise CheckpointRefused(f"{path.name}: unpacks to {unpacked} bytes (limit {limits.max_bytes}); not loaded")
    except (zipfile.BadZipFile, OSError):
        pass  # not a valid zip: torch.load below says so
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses pickled code; corrupt zips raise many types
        raise CheckpointRefused(f"{path.name}: not a readable weights-only PyTorch checkpoint "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    if not isinstance(blob, dict) or blob.get("kind") != KIND:
        kind = blob.get("kind") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointRefused(f"{path.name}: not a StyleGAN2 generator checkpoint (kind={kind!r}; save it with "
                                f"course_lib.hw2.train_generator or stylegan2.save_generator)")
    spec = _check_spec(blob.get("spec"), Path(path.name), limits, sub)
    cfg = _check_config(blob.get("config"), Path(path.name), limits, spec)
    macs = gmacs_per_loop(cfg)
    if macs > limits.max_gmacs_per_loop:
        raise CheckpointRefused(f"{path.name}: about {macs:.1f} GMAC per loop exceeds the limit "
                                f"{limits.max_gmacs_per_loop:g} (time limit; [checkpoint] max_gmacs_per_loop)")
    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = Generator(StyleGAN2Config(**cfg)).state_dict()
    n_params = sum(t.numel() for t in expected.values())
    if n_params > limits.max_parameters:
        raise CheckpointRefused(f"{path.name}: {n_params} parameters exceed the limit {limits.max_parameters} "
                                f"(memory limit)")
    state = blob.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointRefused(f"{path.name}: 'state_dict' missing or not a dict")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(str(k) for k in set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointRefused(f"{path.name}: state_dict does not match the config's architecture "
                                f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    clean = {}
    for name, ref in expected.items():
        t = state[name]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or tuple(t.shape) != tuple(ref.shape):
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise CheckpointRefused(f"{path.name}: state_dict[{name!r}] is {shape}, expected a float tensor "
                                    f"{tuple(ref.shape)}")
        clean[name] = t.detach().to(torch.float32).contiguous()
    notes: list[str] = []
    psi = _clamp_psi(blob.get("meta", {}), Path(path.name), gen, notes)
    return CheckpointInfo(path=path.name, size_bytes=size, config=cfg, spec=spec.to_dict(), state_dict=clean,
                          parameters=n_params, gmacs_per_loop=round(macs, 3), truncation_psi=psi, notes=notes)


def write_clean_checkpoint(info: CheckpointInfo, dest: Path) -> Path:
    """Save only the checked entries (a fresh file the student never touched) for ``generate_loops``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in info.config.items()}
    torch.save({"kind": KIND, "config": cfg, "spec": info.spec, "state_dict": info.state_dict,
                "meta": {"truncation_psi": info.truncation_psi}}, dest)
    return dest


@dataclass
class Generated:
    """The scorer's loops: ``loops`` ``(n, samples)`` at the policy seed, ``preview`` ``(k, samples)`` at seed 0."""

    loops: np.ndarray
    preview: np.ndarray
    seconds: float


def _limits(memory_mb: int):
    def apply() -> None:
        limit = int(memory_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "DefaultCPUAllocator", "failed to map segment",
                   "bad_alloc", "out of memory")


def generate(checkpoint: Path, n: int, gen: GenerationPolicy, limits: CheckpointLimits, psi: float,
             workdir: Path, samples: int) -> Generated:
    """Run ``generate_loops`` in a limited child process; raises :class:`CheckpointRefused` on any failure."""
    out = Path(workdir) / "generated.npz"
    cmd = [sys.executable, "-m", "grading.trusted_generation", "--checkpoint", str(checkpoint), "--n", str(n),
           "--seed", str(gen.seed), "--psi", repr(float(psi)), "--preview-n", str(gen.preview_loops),
           "--preview-seed", str(gen.preview_seed), "--batch-size", str(gen.batch_size), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, timeout=limits.time_limit_s, capture_output=True, text=True,
                              preexec_fn=_limits(limits.memory_mb), check=False)
    except subprocess.TimeoutExpired:
        raise CheckpointRefused(f"checkpoint.pt: generating {n + gen.preview_loops} loops took longer than "
                                f"{limits.time_limit_s:g} s (time limit)") from None
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()
        last = tail[-1][:200] if tail else f"exit status {proc.returncode}"
        if any(m in (proc.stderr or "") for m in _MEMORY_MARKERS) or proc.returncode < 0:
            raise CheckpointRefused(f"checkpoint.pt: generation stopped at the memory limit of "
                                    f"{limits.memory_mb} MB ({last})")
        raise CheckpointRefused(f"checkpoint.pt: generation failed ({last})")
    try:
        with np.load(out, allow_pickle=False) as data:
            loops, preview = np.asarray(data["loops"], np.float32), np.asarray(data["preview"], np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointRefused(f"checkpoint.pt: generation wrote no readable loops ({type(exc).__name__})") from None
    if loops.shape != (n, samples) or preview.shape != (gen.preview_loops, samples):
        raise CheckpointRefused(f"checkpoint.pt: generation made loops of shape {loops.shape} / {preview.shape}, "
                                f"expected ({n}, {samples}) / ({gen.preview_loops}, {samples})")
    return Generated(loops, preview, round(seconds, 2))


def _child(argv: list[str] | None = None) -> int:
    """The generation process: ``generate_loops`` for the graded and the preview loops -> ``.npz``."""
    ap = argparse.ArgumentParser(description="(internal) trusted loop generation for the HW2 scorer")
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--psi", type=float, required=True)
    ap.add_argument("--preview-n", type=int, required=True)
    ap.add_argument("--preview-seed", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from course_lib.hw2 import generate_loops

    loops = generate_loops(args.checkpoint, args.n, seed=args.seed, truncation_psi=args.psi,
                           batch_size=args.batch_size, device="cpu")
    if args.preview_n:
        preview = generate_loops(args.checkpoint, args.preview_n, seed=args.preview_seed, truncation_psi=args.psi,
                                 batch_size=args.batch_size, device="cpu")
    else:
        preview = torch.zeros(0, loops.shape[-1])
    tmp = args.out.with_suffix(".tmp.npz")
    np.savez(tmp, loops=loops.numpy().astype(np.float32), preview=preview.numpy().astype(np.float32))
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(_child())
