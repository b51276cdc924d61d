"""Train the evaluation classifiers and write their checkpoints and data cards.

    python -m course_lib.metrics.train_classifier --task loops --preset lecture \\
        --out course_lib/assets/loop_classifier.pt
    python -m course_lib.metrics.train_classifier --task pitch --preset lecture \\
        --out course_lib/assets/pitch_classifier.pt

``--task loops`` trains the short-chunk CNN on the synthetic loop set's classes
(:class:`course_lib.data.datasets.LoopDataset`); ``--task pitch`` trains the pitch classifier on
synthetic NSynth-style notes labelled by MIDI pitch (:class:`~course_lib.data.datasets.NSynthDataset`).
The data set's ``train`` split is used for training and ``valid`` + ``test`` together as the
held-out split (no model selection is done on it). Beside ``OUT.pt`` the command writes
``OUT.json`` and ``OUT.md`` (the data card): data config and SHA-256 of the audio, architecture,
training settings, held-out accuracy, an extra check on freshly generated data (another
seed) and the command line that rebuilds the file. The ``fast`` preset is a seconds-long smoke
rebuild used by the tests; ``lecture`` makes the shipped checkpoints (``default``, its old name, still works).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.data.datasets import LoopDataset, NSynthDataset
from course_lib.data.presets import get_preset, preset_name
from course_lib.models.classifiers import (PitchClassifier, PitchConfig, ShortChunkCNN, ShortChunkConfig,
                                           save_classifier)
from course_lib.runtime.device import pick_device, seed_everything
from course_lib.runtime.loop import run_steps

PITCH_MIN, PITCH_MAX = 21, 108  # the course's NSynth pitch range (piano keys)


@dataclass(frozen=True)
class TrainPreset:
    """Data and optimisation settings of one rebuild (sizes in clips, learning rate per Adam step)."""

    data: dict
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    arch: dict
    crop_seconds: float | None = None  # train on random crops of this length (short chunks); None = whole clips
    check_seed: int = 1  # seed of the independent check set
    check_data: dict | None = None  # data settings of the check set (None: the loops' fast preset / same as data)


def _note_preset(instruments: int, velocities: tuple[int, ...]) -> dict:
    return {"instruments_per_family": instruments, "pitch_step": 1, "velocities": velocities, "note_seconds": 1.0}


# independent check set for the pitch classifier: other instruments (seed 1), every other pitch
_CHECK_NOTES = {"notes": {**_note_preset(1, (100,)), "pitch_step": 2}}

TRAIN_PRESETS: dict[str, dict[str, TrainPreset]] = {
    "loops": {
        "fast": TrainPreset(data={"preset": "fast", "seed": 0}, epochs=12, batch_size=16, lr=3e-3, weight_decay=1e-4,
                            arch={"channels": (8, 16, 32, 64), "emb_dim": 64, "dropout": 0.2}, crop_seconds=None),
        "lecture": TrainPreset(data={"preset": "lecture", "seed": 0}, epochs=16, batch_size=32, lr=2e-3,
                               weight_decay=1e-4, arch={"channels": (16, 32, 64, 128), "emb_dim": 128, "dropout": 0.3},
                               crop_seconds=1.0),
    },
    "pitch": {
        "fast": TrainPreset(data={"notes": _note_preset(1, (100,)), "seed": 0}, epochs=25, batch_size=32, lr=3e-3,
                            weight_decay=1e-4, arch={"channels": (16, 16, 16), "emb_dim": 64, "dropout": 0.2},
                            check_data=_CHECK_NOTES),
        "lecture": TrainPreset(data={"notes": _note_preset(2, (100,)), "seed": 0}, epochs=20, batch_size=32,
                               lr=2e-3, weight_decay=1e-4, arch={"channels": (32, 32, 32), "emb_dim": 128, "dropout": 0.2},
                               check_data=_CHECK_NOTES),
    },
}


def audio_hash(audio: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of the float32 audio bytes and int64 labels (identifies the exact training data)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(audio.detach().cpu().numpy().astype(np.float32)).tobytes())
    h.update(np.ascontiguousarray(labels.detach().cpu().numpy().astype(np.int64)).tobytes())
    return h.hexdigest()


def load_task_data(task: str, data: dict, split: str, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str], dict]:
    """Audio ``(n, samples)``, labels ``(n,)``, class names and data config of one split (``"heldout"`` = valid + test)."""
    seed = data["seed"] if seed is None else seed
    splits = ["valid", "test"] if split == "heldout" else [split]
    parts = []
    if task == "loops":
        for s in splits:
            ds = LoopDataset(split=s, preset=data["preset"], seed=seed, precompute_mel=False)
            parts.append((ds.audio, ds.labels))
        names, config = list(ds.class_names), dict(ds.config)
    elif task == "pitch":
        preset = get_preset("fast").with_(name="pitch", **{k: tuple(v) if isinstance(v, list) else v
                                                          for k, v in data["notes"].items()})
        for s in splits:
            ds = NSynthDataset(split=s, preset=preset, seed=seed, label="pitch")
            keep = (ds.labels >= PITCH_MIN) & (ds.labels <= PITCH_MAX)
            parts.append((ds.audio[keep], ds.labels[keep] - PITCH_MIN))
        names = [str(p) for p in range(PITCH_MIN, PITCH_MAX + 1)]
        config = {"kind": "nsynth", "preset": preset.to_dict(), "seed": seed}
    else:
        raise ValueError(f"unknown task {task!r}; expected 'loops' or 'pitch'")
    audio = torch.cat([a for a, _ in parts])
    labels = torch.cat([lab for _, lab in parts])
    if audio.shape[0] == 0:
        raise ValueError(f"task {task!r}: split {split!r} of the data set is empty")
    return audio, labels, names, config


def _augment(x: torch.Tensor, task: str, g: torch.Generator, crop: int | None = None) -> torch.Tensor:
    gain = torch.exp(torch.empty(x.shape[0], 1).uniform_(-0.7, 0.3, generator=g))  # -6 .. +2.6 dB
    x = x * gain
    if task == "loops":  # loops are periodic: a circular shift is another valid loop
        shifts = torch.randint(0, x.shape[-1], (x.shape[0],), generator=g)
        n = crop if crop is not None else x.shape[-1]
        idx = (torch.arange(n)[None, :] + shifts[:, None]) % x.shape[-1]
        x = torch.gather(x, 1, idx)
    elif crop is not None:
        x = x[:, :crop]
    return x.clamp(-1.0, 1.0)


def fit(model: torch.nn.Module, audio: torch.Tensor, labels: torch.Tensor, epochs: int, batch_size: int = 32,
        lr: float = 2e-3, weight_decay: float = 1e-4, task: str = "loops", seed: int = 0,
        device: torch.device | str | None = None, progress: bool = False, crop: int | None = None) -> list[float]:
    """Train ``model`` with Adam (one-cycle schedule) on clips ``(n, samples)`` / labels ``(n,)``.

    Each batch is augmented (random gain; loops: random circular shift) and, if ``crop`` is set,
    cut to ``crop`` samples (short-chunk training; the model pools globally, so it is evaluated on
    whole clips). Returns the mean loss per epoch.
    """
    if audio.shape[0] != labels.shape[0] or audio.shape[0] < 2:
        raise ValueError(f"need >= 2 clips with one label each; got {audio.shape[0]} clips and {labels.shape[0]} labels")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    per_epoch = int(np.ceil(audio.shape[0] / batch_size))
    steps = epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    losses: list[float] = []
    order, total = torch.empty(0, dtype=torch.long), 0.0

    def train_step(step: int, log: bool) -> None:
        nonlocal order, total
        j = step % per_epoch
        if j == 0:  # a new epoch: a new order of the clips
            order, total = torch.randperm(audio.shape[0], generator=g), 0.0
        idx = order[j * batch_size:(j + 1) * batch_size]
        if len(idx) >= 2:  # BatchNorm needs two items
            x = _augment(audio[idx], task, g, crop).to(dev)
            loss = F.cross_entropy(model(x), labels[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if j == per_epoch - 1:
            losses.append(total / len(order))

    run_steps(train_step, 0, steps, progress=progress, desc=f"training {type(model).__name__}",
              postfix=lambda done, logs: {"loss": f"{losses[-1]:.3f}"} if done % per_epoch == 0 else None,
              bar_options={"unit": "batch"})
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: torch.nn.Module, audio: torch.Tensor, labels: torch.Tensor, batch_size: int = 64,
             device: torch.device | str | None = None) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on clips ``(n, samples)`` with labels ``(n,)``."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    model.to(dev).eval()
    preds = torch.cat([model(audio[i:i + batch_size].to(dev)).argmax(-1).cpu()
                       for i in range(0, audio.shape[0], batch_size)])
    return float((preds == labels).double().mean())


def build_model(task: str, arch: dict, class_names: Sequence[str]) -> ShortChunkCNN | PitchClassifier:
    """A fresh classifier for ``task`` with architecture settings ``arch``."""
    if task == "loops":
        return ShortChunkCNN(ShortChunkConfig(n_classes=len(class_names), class_names=list(class_names),
                                              channels=tuple(arch["channels"]), emb_dim=arch["emb_dim"],
                                              dropout=arch["dropout"]))
    return PitchClassifier(PitchConfig(n_classes=PITCH_MAX - PITCH_MIN + 1, pitch_min=PITCH_MIN, seconds=1.0,
                                       channels=tuple(arch["channels"]), emb_dim=arch["emb_dim"],
                                       dropout=arch["dropout"]))


def train(task: str, preset: str = "lecture", seed: int = 0, out: str | Path | None = None,
          device: torch.device | str | None = None, progress: bool = True) -> tuple[torch.nn.Module, dict]:
    """Train the ``task`` classifier at ``preset``; write checkpoint + data card to ``out`` if given.

    Returns ``(model, card)`` where ``card`` holds the data config/hash, settings and accuracies.
    """
    if task not in TRAIN_PRESETS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TRAIN_PRESETS)}")
    preset = preset_name(preset)
    if preset not in TRAIN_PRESETS[task]:
        raise ValueError(f"unknown preset {preset!r} for task {task!r}; expected one of {sorted(TRAIN_PRESETS[task])}")
    p = TRAIN_PRESETS[task][preset]
    dev = pick_device(device)
    t0 = time.perf_counter()
    x_tr, y_tr, names, data_cfg = load_task_data(task, p.data, "train")
    x_ho, y_ho, _, _ = load_task_data(task, p.data, "heldout")
    t_data = time.perf_counter() - t0
    model = build_model(task, p.arch, names)
    crop = int(p.crop_seconds * model.sr) if p.crop_seconds else None
    losses = fit(model, x_tr, y_tr, p.epochs, p.batch_size, p.lr, p.weight_decay, task, seed, dev, progress, crop)
    acc_tr = accuracy(model, x_tr, y_tr, device=dev)
    acc_ho = accuracy(model, x_ho, y_ho, device=dev)
    check_data = {**p.data, **(p.check_data or ({"preset": "fast"} if task == "loops" else {}))}
    x_ck, y_ck, _, _ = load_task_data(task, check_data, "all", seed=p.check_seed)
    acc_ck = accuracy(model, x_ck, y_ck, device=dev)
    cmd = f"python -m course_lib.metrics.train_classifier --task {task} --preset {preset} --seed {seed}"
    card = {
        "task": task, "preset": preset, "seed": seed, "classes": names, "n_classes": len(names),
        "data": {"config": data_cfg, "train_split": "train", "heldout_split": "valid+test",
                 "n_train": int(x_tr.shape[0]), "n_heldout": int(x_ho.shape[0]),
                 "sha256_train": audio_hash(x_tr, y_tr), "sha256_heldout": audio_hash(x_ho, y_ho)},
        "train": {**asdict(p), "final_loss": losses[-1], "device": str(dev)},
        "train_accuracy": acc_tr, "heldout_accuracy": acc_ho,
        "check": {"description": f"all clips of the data config below generated with seed {p.check_seed} "
                                 f"(never seen in training)",
                  "seed": p.check_seed, "data": check_data,
                  "n": int(x_ck.shape[0]), "sha256": audio_hash(x_ck, y_ck), "accuracy": acc_ck},
        "seconds": {"data": round(t_data, 1), "total": round(time.perf_counter() - t0, 1)},
        "environment": {"torch": torch.__version__, "python": platform.python_version()},
        "command": cmd + (f" --out {out}" if out is not None else ""),
    }
    if out is not None:
        write_card(model, card, out)
    return model, card


def check_accuracy(model: torch.nn.Module, card: dict, device: torch.device | str | None = None) -> tuple[float, str]:
    """Regenerate a card's independent check set; return the model's accuracy on it and the data's SHA-256."""
    ck = card["check"]
    x, y, _, _ = load_task_data(card["task"], ck["data"], "all", seed=ck["seed"])
    return accuracy(model, x, y, device=device), audio_hash(x, y)


def write_card(model: torch.nn.Module, card: dict, out: str | Path) -> Path:
    """Write ``out`` (checkpoint with the card as meta), ``out.json`` and a markdown ``out.md`` data card."""
    out = Path(out)
    if out.suffix != ".pt":
        raise ValueError(f"--out must end in .pt, got {out}")
    save_classifier(model, out, meta=card)
    out.with_suffix(".json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    d = card["data"]
    lines = [
        f"# Data card: `{out.name}` ({card['task']} classifier)", "",
        f"- **Task**: {card['task']} — {card['n_classes']} classes",
        f"- **Training data**: synthetic, config `{json.dumps(d['config'], default=str)}`",
        f"- **Split**: {d['n_train']} training clips (`train`), {d['n_heldout']} held-out clips (`valid`+`test`)",
        f"- **SHA-256** of train audio+labels: `{d['sha256_train']}`; held-out: `{d['sha256_heldout']}`",
        f"- **Accuracy**: train {card['train_accuracy']:.3f}, **held-out {card['heldout_accuracy']:.3f}**, "
        f"independent check {card['check']['accuracy']:.3f} ({card['check']['description']}, n={card['check']['n']})",
        f"- **Training**: {card['train']['epochs']} epochs, batch {card['train']['batch_size']}, Adam lr "
        f"{card['train']['lr']} (one-cycle), weight decay {card['train']['weight_decay']}, "
        f"architecture `{card['train']['arch']}`, {card['seconds']['total']} s on {card['train']['device']}",
        f"- **Rebuild**: `{card['command']}`",
        *([f"- **FAST rebuild** (tests): `{card['fast_rebuild']['command']}` gives held-out accuracy "
           f"{card['fast_rebuild']['heldout_accuracy']:.3f} on {card['fast_rebuild']['n_heldout']} clips"]
          if "fast_rebuild" in card else []),
        "- **Use**: `course_lib.models.classifiers.load_loop_classifier()` / `load_pitch_classifier()`; "
        "the softmax feeds IS / PA / PE, the penultimate layer the FAD, NDB/K, JSD and PRDC embedding.",
        "- **Limits**: trained only on the course's synthetic data; on real recordings its embedding is a "
        "domain-specific stand-in for VGGish, not a replacement.", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m course_lib.metrics.train_classifier", description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=sorted(TRAIN_PRESETS), required=True)
    ap.add_argument("--preset", choices=["fast", "lecture", "default"], default="lecture",
                    help="fast (tests) or lecture (the shipped classifiers); default is the old name of lecture")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="checkpoint path ending in .pt (card written beside it)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--fast-reference", action="store_true",
                    help="also train the fast preset and record its held-out accuracy in the card (for the tests)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, card = train(args.task, args.preset, args.seed, args.out, args.device, progress=not args.quiet)
    if args.fast_reference:
        _, fast = train(args.task, "fast", args.seed, None, args.device, progress=not args.quiet)
        card["fast_rebuild"] = {"command": fast["command"] + f" --threads {torch.get_num_threads()} --out FAST.pt",
                                "heldout_accuracy": fast["heldout_accuracy"],
                                "check_accuracy": fast["check"]["accuracy"],
                                "sha256_train": fast["data"]["sha256_train"], "n_heldout": fast["data"]["n_heldout"],
                                "note": "what the FAST preset gives; tests rebuild it and compare"}
        if args.out is not None:
            write_card(model, card, args.out)
    print(json.dumps({k: card[k] for k in ("task", "preset", "train_accuracy", "heldout_accuracy")}
                     | {"check_accuracy": card["check"]["accuracy"], "seconds": card["seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
