"""Training of the iSTFT vocoder (:mod:`course_lib.models.istft_vocoder`) on the HW2 loops.

Loss per step on random crops of training loops: multi-resolution STFT loss
(:func:`course_lib.models.melgan.multi_resolution_stft_loss`) + ``mel_weight`` x L1 between the
course log-mels of the output and of the crop. No discriminator: the network runs at frame rate,
so a CPU trains it in tens of minutes.

Data: ``LoopDataset(split="train", preset=data_preset, seed=0)`` to train; the first ``n_valid``
loops of ``split="valid"`` (same seed; disjoint keys) to select the checkpoint (lowest validation
MR-STFT + mel L1, measured every ``valid_every`` steps). Nothing here sees the grader's networks
or its held-out loops.

A run folder holds ``state.pt`` (weights, optimizer, step, history: resumable at any time),
``best.pt`` (the best validated vocoder, loadable with
:func:`~course_lib.models.istft_vocoder.load_istft_vocoder`) and ``history.json``.

    python -m course_lib.train.vocoder --preset lecture --out runs/vocoder [--threads 1] [--export]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F

from course_lib.data.datasets import LoopDataset
from course_lib.models.istft_vocoder import (ISTFT_VOCODER_ASSET, ISTFTVocoder, ISTFTVocoderConfig,
                                             load_istft_vocoder, save_istft_vocoder)
from course_lib.models.melgan import multi_resolution_stft_loss
from course_lib.runtime.checkpoint import load_checkpoint, save_checkpoint
from course_lib.runtime.loop import run_steps, step_generator
from course_lib.spectral import MelConfig, log_mel

PathLike = Union[str, Path]

__all__ = ["VocoderTrainConfig", "PRESETS", "get_config", "VocoderTask", "VocoderRun", "train_vocoder",
           "validation_loss", "export_best", "main"]


@dataclass
class VocoderTrainConfig:
    """Everything a vocoder run depends on.

    Attributes:
        preset: name of the preset it came from. arch: :class:`ISTFTVocoderConfig` fields.
        steps: optimizer steps in total (the cosine schedule spans them). batch_size: crops per step.
        segment_frames: mel frames per training crop (``segment_frames * hop`` samples).
        lr, lr_min, warmup: AdamW peak / final learning rate, linear warm-up steps. weight_decay: AdamW.
        mel_weight: weight of the log-mel L1 beside the MR-STFT loss.
        gain_db: range of a random gain (dB) applied to each training crop.
        data_preset / data_seed: the loop set (``LoopDataset(split="train", ...)``).
        n_valid: validation loops (``split="valid"``). valid_every / checkpoint_every: steps.
        max_seconds: wall-time budget (0 = no limit; the step that starts after it is spent is the last; the run
            can be resumed).
        seed: model init and batch sampling. threads: torch threads (0 = leave as is). progress: tqdm.
    """

    preset: str = "lecture"
    arch: dict = field(default_factory=dict)
    steps: int = 3000
    batch_size: int = 16
    segment_frames: int = 48
    lr: float = 1e-3
    lr_min: float = 5e-5
    warmup: int = 200
    weight_decay: float = 0.01
    mel_weight: float = 1.0
    gain_db: tuple[float, float] = (-12.0, 0.0)
    data_preset: str = "lecture"
    data_seed: int = 0
    n_valid: int = 32
    valid_every: int = 250
    checkpoint_every: int = 250
    max_seconds: float = 0.0
    seed: int = 0
    threads: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "segment_frames", "n_valid", "valid_every", "checkpoint_every"):
            if int(getattr(self, name)) < (0 if name == "steps" else 1):
                raise ValueError(f"{name} must be >= {0 if name == 'steps' else 1}, got {getattr(self, name)}")
        if not 0 < self.lr_min <= self.lr:
            raise ValueError(f"need 0 < lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        if self.gain_db[0] > self.gain_db[1]:
            raise ValueError(f"gain_db must be (low, high), got {self.gain_db}")
        self.gain_db = tuple(float(g) for g in self.gain_db)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    # seconds: a tiny network, for the tests and COURSE_FAST lessons
    "fast": dict(arch=dict(dim=32, layers=2, mlp_ratio=2), steps=40, batch_size=4, segment_frames=16, lr=3e-3,
                 warmup=5, n_valid=4, valid_every=20, checkpoint_every=20, data_preset="fast"),
    # a lecture run: ~15 CPU minutes on one thread
    "lecture": dict(arch=dict(dim=128, layers=8), steps=3000, batch_size=16, segment_frames=48),
    # the shipped checkpoint
    "full": dict(arch=dict(dim=128, layers=8), steps=15000, batch_size=16, segment_frames=48, valid_every=500,
                 checkpoint_every=250),
}


def get_config(preset: str = "lecture", **overrides) -> VocoderTrainConfig:
    """The :class:`VocoderTrainConfig` of a preset (``fast``, ``lecture``, ``full``) with ``overrides``."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    kw = {**PRESETS[preset], "preset": preset}
    kw["arch"] = {**kw.get("arch", {}), **overrides.pop("arch", {})}
    kw.update(overrides)
    return VocoderTrainConfig(**kw)


def validation_loss(model: ISTFTVocoder, audio: torch.Tensor, batch_size: int = 16) -> dict[str, float]:
    """Whole-clip validation: audio ``(n, samples)`` -> its log-mel -> vocoder -> ``{"mrstft", "mel_l1", "score"}``.

    ``score`` = MR-STFT + mel L1 (the selection criterion; lower is better).
    """
    hop = model.hop
    frames = audio.shape[-1] // hop
    audio = audio[:, : frames * hop]
    mr, ml = 0.0, 0.0
    was = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, audio.shape[0], batch_size):
            x = audio[i:i + batch_size]
            m = log_mel(x, model.mel)[..., :frames]
            y = model(m)
            mr += float(multi_resolution_stft_loss(y, x)) * x.shape[0]
            ml += float(F.l1_loss(log_mel(y, model.mel)[..., :frames], m)) * x.shape[0]
    model.train(was)
    n = audio.shape[0]
    return {"mrstft": mr / n, "mel_l1": ml / n, "score": (mr + ml) / n}


class VocoderTask:
    """Model, optimizer, schedule and the loss of one step; the loop in :func:`train_vocoder` drives it."""

    def __init__(self, cfg: VocoderTrainConfig, mel: MelConfig, device: torch.device | str = "cpu") -> None:
        self.cfg, self.mel, self.device = cfg, mel, torch.device(device)
        torch.manual_seed(cfg.seed)
        arch = ISTFTVocoderConfig(**{"n_mels": mel.n_mels, "hop": mel.hop, "n_fft": mel.n_fft, **cfg.arch})
        self.model = ISTFTVocoder(arch, mel).to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=(0.8, 0.99),
                                     weight_decay=cfg.weight_decay)

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine decay to ``lr_min`` at ``steps``."""
        c = self.cfg
        if step < c.warmup:
            return c.lr * (step + 1) / c.warmup
        t = min(1.0, (step - c.warmup) / max(1, c.steps - c.warmup))
        return c.lr_min + 0.5 * (c.lr - c.lr_min) * (1 + math.cos(math.pi * t))

    def batch(self, audio: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops ``(B, segment_frames * hop)`` of random loops (random start and gain) and their log-mels."""
        c, hop = self.cfg, self.mel.hop
        g = step_generator(c.seed, step)
        seg = c.segment_frames * hop
        idx = torch.randint(audio.shape[0], (c.batch_size,), generator=g)
        start = torch.randint(audio.shape[-1] - seg + 1, (c.batch_size,), generator=g)
        x = torch.gather(audio[idx], 1, start.unsqueeze(1) + torch.arange(seg))
        gain = 10 ** ((c.gain_db[0] + (c.gain_db[1] - c.gain_db[0]) * torch.rand(c.batch_size, 1, generator=g)) / 20)
        x = (x * gain).to(self.device)
        return x, log_mel(x, self.mel)[..., : c.segment_frames]

    def step(self, audio: torch.Tensor, step: int) -> dict[str, float]:
        """One optimizer step; returns the losses."""
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(step)
        x, m = self.batch(audio, step)
        y = self.model(m)
        mr = multi_resolution_stft_loss(y, x)
        ml = F.l1_loss(log_mel(y, self.mel)[..., : m.shape[-1]], m)
        loss = mr + self.cfg.mel_weight * ml
        if not torch.isfinite(loss):
            raise ValueError(f"loss became {loss.item()} at step {step}; lower lr")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return {"loss": float(loss.detach()), "mrstft": float(mr.detach()), "mel_l1": float(ml.detach())}


@dataclass
class VocoderRun:
    """What :func:`train_vocoder` did: steps done, wall seconds of this call, the history, the best model."""

    steps_done: int
    seconds: float
    history: dict
    best: ISTFTVocoder
    best_step: int
    best_score: float
    out_dir: Path | None


def _load_audio(cfg: VocoderTrainConfig) -> tuple[torch.Tensor, torch.Tensor, MelConfig]:
    train = LoopDataset(split="train", preset=cfg.data_preset, seed=cfg.data_seed, precompute_mel=False)
    valid = LoopDataset(split="valid", preset=cfg.data_preset, seed=cfg.data_seed, precompute_mel=False)
    return train.audio.float(), valid.audio[: cfg.n_valid].float(), train.mel_config


def train_vocoder(cfg: VocoderTrainConfig, out_dir: PathLike | None = None, *, train_audio: torch.Tensor | None = None,
                  valid_audio: torch.Tensor | None = None, mel: MelConfig | None = None,
                  device: torch.device | str = "cpu", resume: bool = True) -> VocoderRun:
    """Train (or resume, from ``out_dir/state.pt``) an iSTFT vocoder; returns the best validated model.

    ``train_audio`` / ``valid_audio`` ``(n, samples)`` replace the loop dataset (tests); ``mel``
    defaults to the dataset's (the course mel).
    """
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if train_audio is None or valid_audio is None:
        train_audio, valid_audio, data_mel = _load_audio(cfg)
        mel = mel or data_mel
    mel = mel or MelConfig()
    if train_audio.ndim != 2 or train_audio.shape[-1] < cfg.segment_frames * mel.hop:
        raise ValueError(f"train_audio must be (n, >= {cfg.segment_frames * mel.hop}) samples, got {tuple(train_audio.shape)}")
    out = Path(out_dir) if out_dir is not None else None
    task = VocoderTask(cfg, mel, device)
    history: dict = {"train": [], "valid": [], "seconds": 0.0}
    step, best_step, best_score = 0, -1, math.inf
    best_state = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if resume and (out / "state.pt").is_file():
            ckpt = load_checkpoint(out / "state.pt", task.model, task.opt)
            step, history = int(ckpt["step"]), ckpt["history"]
            best_step, best_score = int(ckpt["extra"]["best_step"]), float(ckpt["extra"]["best_score"])
            if (out / "best.pt").is_file():
                best_state = load_istft_vocoder(out / "best.pt").state_dict()
    torch.manual_seed(cfg.seed + step)
    start_time, t_prev = time.perf_counter(), history.get("seconds", 0.0)

    def save_state() -> None:
        if out is None:
            return
        history["seconds"] = t_prev + time.perf_counter() - start_time
        save_checkpoint(out / "state.pt", task.model, task.opt, step, cfg.to_dict(), history,
                        {"best_step": best_step, "best_score": best_score})
        (out / "history.json").write_text(json.dumps({"config": cfg.to_dict(), "step": step, "best_step": best_step,
                                                      "best_score": best_score, "history": history}, indent=1))

    def validate() -> None:
        nonlocal best_step, best_score, best_state
        v = validation_loss(task.model, valid_audio.to(task.device))
        v["step"] = step
        history["valid"].append(v)
        if v["score"] < best_score:
            best_step, best_score = step, v["score"]
            best_state = {k: t.detach().clone() for k, t in task.model.state_dict().items()}
            if out is not None:
                save_istft_vocoder(task.model, out / "best.pt", _meta(cfg, step, v, history, t_prev, start_time))

    audio = train_audio.float()

    def train_step(i: int, log: bool) -> dict[str, float]:
        nonlocal step
        logs = task.step(audio, i)
        step = i + 1
        history["train"].append([step, round(logs["loss"], 5), round(logs["mrstft"], 5), round(logs["mel_l1"], 5)])
        return logs

    def after_step(done: int, logs: dict[str, float]) -> bool:
        if done % cfg.valid_every == 0 or done == cfg.steps:
            validate()
        if done % cfg.checkpoint_every == 0:
            save_state()
        return False

    run_steps(train_step, step, cfg.steps, max_seconds=cfg.max_seconds or None, after_step=after_step,
              progress=cfg.progress, desc="istft-vocoder",
              postfix=lambda done, logs: {"loss": f"{logs['loss']:.3f}", "best": f"{best_score:.3f}"}
              if done % 10 == 0 else None, bar_options={"unit": "step", "mininterval": 5.0})
    if best_state is None:
        validate()
    save_state()
    best = ISTFTVocoder(task.model.config, mel)
    best.load_state_dict(best_state)
    best.meta = _meta(cfg, best_step, next((v for v in history["valid"] if v["step"] == best_step), {}), history,
                      t_prev, start_time)
    return VocoderRun(step, time.perf_counter() - start_time, history, best.eval(), best_step, best_score, out)


def _meta(cfg: VocoderTrainConfig, step: int, valid: dict, history: dict, t_prev: float, start: float) -> dict:
    return {"preset": cfg.preset, "step": step, "steps_planned": cfg.steps, "valid": valid,
            "train_seconds": round(t_prev + time.perf_counter() - start, 1), "config": cfg.to_dict()}


def export_best(run_dir: PathLike, dest: PathLike = ISTFT_VOCODER_ASSET, extra_meta: dict | None = None) -> Path:
    """Copy a run's ``best.pt`` to ``dest`` (default the shipped asset), adding ``extra_meta``, atomically."""
    model = load_istft_vocoder(Path(run_dir) / "best.pt")
    return save_istft_vocoder(model, dest, {**model.meta, **(extra_meta or {})})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.train.vocoder", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="lecture", choices=sorted(PRESETS))
    p.add_argument("--out", required=True, help="run folder (state.pt, best.pt, history.json); resumed if present")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--export", nargs="?", const=str(ISTFT_VOCODER_ASSET), default=None,
                   help="after training, write the best model here (default: the shipped asset)")
    a = p.parse_args(argv)
    over = {"seed": a.seed, "threads": a.threads, "progress": not a.no_progress}
    if a.steps is not None:
        over["steps"] = a.steps
    if a.max_seconds is not None:
        over["max_seconds"] = a.max_seconds
    cfg = get_config(a.preset, **over)
    run = train_vocoder(cfg, a.out)
    print(f"steps {run.steps_done}, best step {run.best_step}, validation score {run.best_score:.4f}, "
          f"{run.seconds:.0f} s this call", flush=True)
    if a.export:
        print("exported", export_best(a.out, a.export))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
