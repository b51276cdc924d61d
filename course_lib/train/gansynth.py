"""Training GANSynth (Lesson 04): progressive trainer, presets, the notes it trains on, and a command line.

    python -m course_lib.train.gansynth --preset lecture --kind if --high-res --out PATH

The networks and :func:`~course_lib.models.gansynth.load_gansynth` live in :mod:`course_lib.models.gansynth`,
the losses in :mod:`course_lib.train.gansynth_losses`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

import torch

from course_lib import DEFAULT_SR
from course_lib.data.datasets import split_of
from course_lib.data.presets import choose_preset, get_preset as data_preset
from course_lib.data.synthetic_notes import generate_notes
from course_lib.models.gansynth import GANSynth, GANSynthConfig, resize_real
from course_lib.models.gansynth_repr import ImageNormalizer, SpecImageConfig, audio_to_image, config_for_duration
from course_lib.runtime.checkpoint import load_checkpoint
from course_lib.runtime.device import pick_device, seed_everything, set_threads
from course_lib.runtime.loop import run_steps
from course_lib.train.gansynth_losses import discriminator_loss, generator_loss

PathLike = Union[str, Path]


@dataclass
class TrainConfig:
    """Optimisation and progressive schedule.

    Attributes:
        steps_per_stage: discriminator+generator steps at each stage (one value per stage).
        fade_fraction: fraction of each stage (after the first) spent fading the new layers in.
        batch_size: notes per step. lr / betas: Adam (PGGAN: 1e-3, (0, 0.99)).
        n_critic: discriminator steps per generator step.
        seed: latent / batch sampling seed.
        max_seconds: wall-time budget of :meth:`GANSynthTrainer.train` (``None``: no limit; the step that starts
            after it is spent is the last, :func:`~course_lib.runtime.loop.run_steps`); the later
            stages of the schedule may then never be reached (a live demo's budget; a checkpoint can resume).
        harmonic_weight: weight of :func:`~course_lib.train.gansynth_losses.harmonic_loss` in G's loss (not in
            the paper; 0, the default, leaves it out and training unchanged): a hinge pushing the power of G's
            notes onto the harmonics of the requested pitch, read from G's own log-magnitude channel.
        harmonic_target_db: the hinge's target, dB of harmonic excess over a pitch-blind spectrum (the
            training notes: median 14.7 dB, 10 % below 8 dB at full resolution).
        clock_weight / clock_target: weight and hinge target of
            :func:`~course_lib.train.gansynth_losses.clock_motion_loss` (not in the paper; needs
            ``GANSynthConfig.pitch_clock``; 0 leaves it out): pushes G's loud cells to keep to the pitch clock.
    """

    steps_per_stage: tuple[int, ...] = (50, 50, 50, 50)
    fade_fraction: float = 0.5
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    n_critic: int = 1
    seed: int = 0
    max_seconds: float | None = None
    harmonic_weight: float = 0.0
    harmonic_target_db: float = 10.0
    clock_weight: float = 0.0
    clock_target: float = 0.05

    def to_dict(self) -> dict:
        d = asdict(self)
        d["steps_per_stage"], d["betas"] = list(self.steps_per_stage), list(self.betas)
        return d


class GANSynthTrainer:
    """Progressive WGAN-GP / NS-R1 training of a :class:`GANSynth` on normalised images.

    Args:
        model: the model (its normaliser must be the one the images were made with).
        images: normalised training images ``(N, 2, n_freq, n_frames)`` (CPU is fine; batches move); with
            ``cfg.pitch_clock`` the trainer takes them relative to each note's clock (:meth:`GANSynth.working_images`).
        pitches: MIDI pitch of each image ``(N,)``.
        train_cfg: :class:`TrainConfig`. device: where to train (default: the model's).
    """

    def __init__(self, model: GANSynth, images: torch.Tensor, pitches: Sequence[int] | torch.Tensor,
                 train_cfg: TrainConfig, device: torch.device | str | None = None) -> None:
        if len(train_cfg.steps_per_stage) != model.cfg.n_stages:
            raise ValueError(f"steps_per_stage needs {model.cfg.n_stages} values, got {train_cfg.steps_per_stage}")
        spec = model.spec
        if images.ndim != 4 or tuple(images.shape[1:]) != spec.image_shape:
            raise ValueError(f"images must be (N, {', '.join(map(str, spec.image_shape))}), got {tuple(images.shape)}")
        if train_cfg.clock_weight > 0 and not model.cfg.pitch_clock:
            raise ValueError("clock_weight > 0 needs a model with GANSynthConfig.pitch_clock=True (--pitch-clock)")
        self.classes = model.midi_to_class(pitches)
        if self.classes.shape[0] != images.shape[0]:
            raise ValueError(f"{self.classes.shape[0]} pitches for {images.shape[0]} images")
        self.device = torch.device(device) if device is not None else model._device()
        self.model = model.to(self.device)
        self.images = model.working_images(images, pitches)  # relative to each note's pitch clock if cfg.pitch_clock
        self.tc = train_cfg
        self.g_opt = torch.optim.Adam(model.generator.parameters(), lr=train_cfg.lr, betas=train_cfg.betas)
        self.d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=train_cfg.lr, betas=train_cfg.betas)
        self.rng = torch.Generator().manual_seed(train_cfg.seed)
        self.step = 0
        self.history: list[dict] = []
        self._set_progress(0)

    @property
    def total_steps(self) -> int:
        """Steps in the whole progressive schedule."""
        return int(sum(self.tc.steps_per_stage))

    def schedule(self, step: int) -> tuple[int, float]:
        """``(stage, alpha)`` at global ``step`` (alpha ramps 0 -> 1 over the first ``fade_fraction`` of a stage)."""
        start = 0
        for s, n in enumerate(self.tc.steps_per_stage):
            if step < start + n or s == len(self.tc.steps_per_stage) - 1:
                if s == 0:
                    return 0, 1.0
                fade = max(1, int(round(self.tc.fade_fraction * n)))
                return s, min(1.0, (step - start) / fade)
            start += n
        return len(self.tc.steps_per_stage) - 1, 1.0

    def _set_progress(self, step: int) -> None:
        self.model.stage, self.model.alpha = self.schedule(step)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, self.images.shape[0], (self.tc.batch_size,), generator=self.rng)
        return self.images[idx].to(self.device), self.classes[idx].to(self.device)

    def warmup_discriminator(self, steps: int) -> dict:
        """Train only the discriminator for ``steps`` steps at the current stage (a critic warm-up,
        as WGAN trainings often do first); returns the last step's statistics."""
        stats: dict = {}
        for _ in range(int(steps)):
            stats = self.train_step(generator_step=False)
        return stats

    def train_step(self, generator_step: bool = True) -> dict:
        """One generator step after ``n_critic`` discriminator steps; returns the step's statistics.

        With ``generator_step=False`` only one discriminator step is taken and the schedule
        does not advance.
        """
        m, cfg = self.model, self.model.cfg
        stage, alpha = self.schedule(self.step)
        m.stage, m.alpha = stage, alpha
        m.generator.train()
        m.discriminator.train()
        stats: dict = {}
        for _ in range(self.tc.n_critic if generator_step else 1):
            real, cls = self._batch()
            real = resize_real(real, cfg, stage, alpha)
            z = torch.randn(real.shape[0], cfg.latent_dim, generator=self.rng).to(self.device)
            with torch.no_grad():
                fake = m.generator(z, cls, stage, alpha)
            loss, stats = discriminator_loss(m.discriminator, real, fake, cls, cfg, stage, alpha, self.rng)
            self.d_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.d_opt.step()
        if not generator_step:
            return stats
        cls = self.classes[torch.randint(0, self.classes.shape[0], (self.tc.batch_size,), generator=self.rng)]
        cls = cls.to(self.device)
        z = torch.randn(cls.shape[0], cfg.latent_dim, generator=self.rng).to(self.device)
        for p in m.discriminator.parameters():
            p.requires_grad_(False)
        g_loss, g_stats = generator_loss(m.discriminator, m.generator(z, cls, stage, alpha), cls, cfg, stage, alpha,
                                         self.tc.harmonic_weight, m.normalizer, self.tc.harmonic_target_db,
                                         self.tc.clock_weight, self.tc.clock_target)
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        for p in m.discriminator.parameters():
            p.requires_grad_(True)
        stats.update(g_stats)
        stats.update(step=self.step, stage=stage, alpha=alpha)
        self.step += 1
        self._set_progress(self.step)
        self.history.append(stats)
        return stats

    def train(self, steps: int | None = None, progress: bool = True,
              callback: Callable[[dict], None] | None = None) -> list[dict]:
        """Run ``steps`` steps (default: the rest of the schedule) with a tqdm bar, stopping early once
        ``max_seconds`` of the train config have passed; returns the stats of the steps run."""
        n = self.total_steps - self.step if steps is None else int(steps)
        out: list[dict] = []

        def train_step(step: int, log: bool) -> dict:
            st = self.train_step()
            out.append(st)
            return st

        def after_step(done: int, st: dict) -> bool:
            if callback is not None:
                callback(st)
            return False

        run = run_steps(train_step, self.step, self.step + n, max_seconds=self.tc.max_seconds, after_step=after_step,
                        progress=progress, desc="GANSynth",
                        postfix=lambda done, st: {"stage": st["stage"], "d": f"{st['d_adv']:.2f}",
                                                  "g": f"{st['g_adv']:.2f}"})
        self.model.meta.update(train_seconds=self.model.meta.get("train_seconds", 0.0) + run.seconds,
                               steps=self.step, train=self.tc.to_dict())
        self.model.eval()
        return out

    def save(self, path: PathLike) -> Path:
        """A resumable checkpoint: the model, both optimisers, the step, the RNG and the history."""
        self.model.meta.update(steps=self.step)
        return self.model.save(path, trainer_state=self.state_dict(), history=self.history)

    def resume(self, path: PathLike) -> None:
        """Load weights and optimiser state written by :meth:`save` and continue from its step."""
        ckpt = load_checkpoint(path, self.model)
        if "trainer" not in ckpt.get("extra", {}):
            raise ValueError(f"{path}: holds no trainer state to resume from")
        self.load_state_dict(ckpt["extra"]["trainer"])
        self.history = list(ckpt.get("history", {}).get("steps", []))
        done = ckpt.get("config", {}).get("meta", {}).get("train_seconds")
        if done is not None:  # the training time so far, so a resumed run's card counts all of it
            self.model.meta["train_seconds"] = float(done)

    def state_dict(self) -> dict:
        """Optimiser states, step and RNG state (to resume)."""
        return {"step": self.step, "g_opt": self.g_opt.state_dict(), "d_opt": self.d_opt.state_dict(),
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict`."""
        self.step = int(state["step"])
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        self.rng.set_state(state["rng"])
        self._set_progress(self.step)


@torch.no_grad()
def critic_separation(model: GANSynth, real: torch.Tensor, pitches: Sequence[int] | torch.Tensor,
                      z: torch.Tensor) -> float:
    """How well the current discriminator separates real from generated notes: AUC in [0.5, 1]-ish.

    The probability that D scores a real image above a generated one, over all (real, fake)
    pairs, for a fixed real batch ``(n, 2, F, T)`` (normalised, full size) and fixed latents
    ``(n, latent_dim)`` generated at ``pitches`` (MIDI). 1 = perfect separation, 0.5 = chance.
    """
    m = model
    cls = m.midi_to_class(pitches).to(m._device())
    fake = m.generator(z.to(m._device()), cls, m.stage, m.alpha)
    r = resize_real(m.working_images(real.to(m._device()), pitches), m.cfg, m.stage, m.alpha)
    m.discriminator.eval()
    rs, _ = m.discriminator(r, m.stage, m.alpha, cls)
    fs, _ = m.discriminator(fake, m.stage, m.alpha, cls)
    return float((rs[:, None] > fs[None, :]).float().mean() + 0.5 * (rs[:, None] == fs[None, :]).float().mean())


# --------------------------------------------------------------------------- presets

@dataclass(frozen=True)
class Preset:
    """One size setting: note length, representation geometry, model and schedule."""

    name: str
    duration: float
    n_fft: int
    model: dict
    train: dict

    def spec(self, kind: str = "if", sr: int = DEFAULT_SR, high_res: bool = False) -> SpecImageConfig:
        """The representation for ``kind`` (``high_res``: the +H variant of the same duration)."""
        return config_for_duration(self.duration, kind, sr, self.n_fft, high_res)

    def model_config(self, kind: str = "if", sr: int = DEFAULT_SR, high_res: bool = False,
                     **overrides) -> GANSynthConfig:
        """A :class:`GANSynthConfig` for ``kind`` (overrides change any field)."""
        d = dict(self.model)
        d.update(overrides)
        return GANSynthConfig(spec=self.spec(kind, sr, high_res).to_dict(), **d)

    def train_config(self, **overrides) -> TrainConfig:
        """A :class:`TrainConfig` (overrides change any field)."""
        d = dict(self.train)
        d.update(overrides)
        return TrainConfig(**d)


PRESETS: dict[str, Preset] = {
    # tests and COURSE_FAST lessons: 0.25 s notes, 128 x 64 images (+H: 256 x 32), seconds on a CPU
    "fast": Preset("fast", 0.25, 256,
                   model=dict(n_stages=4, channels=(32, 32, 16, 8), latent_dim=32, pitch_comb=True),
                   train=dict(steps_per_stage=(8, 8, 8, 8), batch_size=8)),
    # lecture: 0.5 s notes, 128 x 128 images (+H: 256 x 64, what the shipped checkpoints use),
    # about ten minutes on one busy CPU core, a few on a laptop
    "lecture": Preset("lecture", 0.5, 256,
                      model=dict(n_stages=5, channels=(32, 32, 32, 16, 8), latent_dim=32, pitch_comb=True),
                      train=dict(steps_per_stage=(60, 80, 100, 250, 400), batch_size=8)),
    # the paper's geometry (4 s, 512 x 256; +H 1024 x 128): a GPU and hours
    "full": Preset("full", 4.0, 1024,
                   model=dict(n_stages=7, channels=(256, 256, 256, 256, 128, 64, 32), latent_dim=256),
                   train=dict(steps_per_stage=(20000,) * 7, batch_size=32, lr=8e-4)),
}


def get_preset(name: str | Preset) -> Preset:
    """The :class:`Preset` called ``name`` (``"fast"``, ``"lecture"``, ``"full"``)."""
    return choose_preset(name, PRESETS, Preset, "GANSynth")


def build(preset: str | Preset, audio: torch.Tensor, kind: str = "if", sr: int = DEFAULT_SR,
          high_res: bool = False, seed: int = 0, **model_overrides) -> tuple[GANSynth, torch.Tensor]:
    """A fresh model for ``preset`` and the normalised training images of ``audio`` ``(N, samples)``.

    Clips are cut to the preset's duration; the normaliser is fitted on these images.
    Returns ``(model, images (N, 2, n_freq, n_frames))``.
    """
    p = get_preset(preset)
    cfg = p.model_config(kind, sr, high_res, **model_overrides)
    spec = cfg.spec_config
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"audio must be (N >= 1, samples), got {tuple(x.shape)}")
    n = min(x.shape[-1], int(round(p.duration * sr)))
    raw = torch.cat([audio_to_image(x[i:i + 64, :n], spec) for i in range(0, x.shape[0], 64)])
    normalizer = ImageNormalizer.fit(raw, spec)
    model = GANSynth(cfg, normalizer, seed=seed)
    model.meta.update(preset=p.name, kind=kind, high_res=high_res, n_train=int(x.shape[0]), sr=sr)
    return model, normalizer.normalize(raw)


def train(preset: str | Preset, audio: torch.Tensor, pitches: Sequence[int] | torch.Tensor, kind: str = "if",
          sr: int = DEFAULT_SR, high_res: bool = False, seed: int = 0, device: torch.device | str | None = None,
          progress: bool = True, out: PathLike | None = None, model_overrides: dict | None = None,
          **train_overrides) -> tuple[GANSynth, list[dict]]:
    """Build and train a model on notes ``audio`` ``(N, samples)`` with MIDI ``pitches`` ``(N,)``.

    ``model_overrides`` change :class:`GANSynthConfig` fields (e.g. ``{"pitch_clock": True}``), ``train_overrides``
    :class:`TrainConfig` fields (e.g. ``harmonic_weight=10``). Returns ``(model in eval mode, per-step
    statistics)``; with ``out`` the model is saved there.
    """
    model, images = build(preset, audio, kind, sr, high_res, seed, **(model_overrides or {}))
    tc = get_preset(preset).train_config(seed=seed, **train_overrides)
    trainer = GANSynthTrainer(model, images, pitches, tc, device=pick_device(device))
    history = trainer.train(progress=progress)
    if out is not None:
        trainer.save(out)
    return model.to("cpu"), history


# --------------------------------------------------------------------------- data and command line

_NOTES_CACHE: dict = {}


def training_notes(duration: float = 0.5, split: str = "train", seed: int = 0, pitch_step: int = 1,
                   velocities: tuple[int, ...] = (100,), pitch_range: tuple[int, int] = (24, 84),
                   progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Notes of the synthetic mini-NSynth (``course_lib.data``'s ``fast`` instruments) for GANSynth.

    Every instrument plays every ``pitch_step``-th pitch of its range inside ``pitch_range`` (MIDI,
    inclusive; GANSynth: 24-84) at ``velocities``, for ``duration`` seconds at 16 kHz. ``split`` keeps
    the NSynth-style hash split of each note (``"train"``, ``"valid"``, ``"test"`` or ``"all"``).
    Returns ``(audio (N, samples), MIDI pitches (N,), NSynth examples)``.
    """
    if split not in ("train", "valid", "test", "all"):
        raise ValueError(f"split must be train, valid, test or all, got {split!r}")
    key = (float(duration), int(seed), int(pitch_step), tuple(int(v) for v in velocities))
    if key not in _NOTES_CACHE:  # the three splits of one set are rendered once per session
        preset = data_preset("fast").with_(note_seconds=duration, pitch_step=pitch_step, velocities=key[3])
        _NOTES_CACHE.clear()
        _NOTES_CACHE[key] = generate_notes(preset, seed=seed, progress=progress)
    audio, examples = _NOTES_CACHE[key]
    keep = [i for i, e in enumerate(examples) if pitch_range[0] <= e.pitch <= pitch_range[1]
            and (split == "all" or split_of(e.note_str) == split)]
    if not keep:
        raise ValueError(f"no notes in MIDI {pitch_range} for split {split!r}")
    return audio[keep].clone(), torch.tensor([examples[i].pitch for i in keep]), [examples[i] for i in keep]


PITCH_PATH_KEYS: tuple[str, ...] = ("d_pitch_acc", "d_pitch_acc_fake", "d_aux", "g_aux")
"""Per-step statistics that show whether pitch reaches G: the critic's pitch head on real notes and on G's
notes (accuracy against the requested pitch), its real cross-entropy and G's pitch cross-entropy (nats)."""


def pitch_path_curve(history: Sequence[dict], every: int = 500, window: int = 100) -> list[dict]:
    """Means of :data:`PITCH_PATH_KEYS` over the ``window`` steps before every ``every``-th step (and the last).

    ``history``: per-step statistics (:attr:`GANSynthTrainer.history`). Returns JSON-able rows
    ``{"step", "stage", key: mean, ...}``; keys missing from the history are left out.
    """
    if every < 1 or window < 1:
        raise ValueError(f"every and window must be >= 1 steps, got {every}, {window}")
    ends = sorted({n for n in range(every, len(history) + 1, every)} | ({len(history)} if history else set()))
    rows = []
    for end in ends:
        part = history[max(0, end - window):end]
        row = {"step": end, "stage": int(part[-1].get("stage", -1))}
        for k in PITCH_PATH_KEYS:
            if all(k in h for h in part):
                row[k] = round(sum(h[k] for h in part) / len(part), 3)
        rows.append(row)
    return rows


def pitch_path_logger(every: int) -> Callable[[dict], None]:
    """A :meth:`GANSynthTrainer.train` callback printing the pitch-path means of the last ``every`` steps as JSON."""
    window: list[dict] = []

    def log(stats: dict) -> None:
        window.append(stats)
        if len(window) == every:
            print(json.dumps(pitch_path_curve(window, every, every)[-1] | {"step": stats["step"] + 1}), flush=True)
            window.clear()

    return log


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_lib.train.gansynth --preset lecture --kind if --high-res --out PATH``: train and save.

    With ``--work DIR`` a resumable trainer checkpoint is written every ``--save-every`` steps and a
    re-run continues from it (same command), so a long CPU run can be stopped and resumed.
    """
    ap = argparse.ArgumentParser(description="Train a GANSynth model on the synthetic mini-NSynth.")
    ap.add_argument("--preset", default="lecture", choices=sorted(PRESETS))
    ap.add_argument("--kind", default="if", choices=["phase", "if", "mel_if"])
    ap.add_argument("--high-res", action="store_true", help="the +H representation (2x FFT size)")
    ap.add_argument("--steps-per-stage", default=None,
                    help="comma-separated steps per stage, overriding the preset's schedule (e.g. 100,150,200,600,3000)")
    ap.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--work", default=None, help="folder of a resumable trainer checkpoint (resumed if present)")
    ap.add_argument("--save-every", type=int, default=200, help="steps between resumable checkpoints (with --work)")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="stop at this global step (the schedule stays the full one; resume later)")
    ap.add_argument("--aux-real-only", action="store_true",
                    help="train the critic's pitch head on real notes only (GANSynthConfig.aux_on_fake=False)")
    ap.add_argument("--conditional-critic", action="store_true",
                    help="critic_pitch_comb=True with the pitch head on real notes only (aux_on_fake=False); "
                         "see GANSynthConfig.critic_pitch_comb for what it measured")
    ap.add_argument("--harmonic-weight", type=float, default=0.0,
                    help="weight of the harmonic pitch loss on G's log-magnitude (TrainConfig.harmonic_weight; 0: off)")
    ap.add_argument("--harmonic-target-db", type=float, default=None,
                    help="the harmonic loss's hinge target in dB over a pitch-blind spectrum (default 10)")
    ap.add_argument("--pitch-clock", action="store_true",
                    help="G and D work on phase / IF relative to the requested pitch's clock (GANSynthConfig.pitch_clock)")
    ap.add_argument("--clock-weight", type=float, default=0.0,
                    help="weight of the clock-motion loss on G's second channel (TrainConfig.clock_weight; needs "
                         "--pitch-clock; 0: off)")
    ap.add_argument("--log-every", type=int, default=0,
                    help="print the pitch-path statistics (means over the last LOG_EVERY steps) every LOG_EVERY steps")
    ap.add_argument("--generator-only", action="store_true", help="save without the discriminator (to ship)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.clock_weight and not args.pitch_clock:
        ap.error("--clock-weight needs --pitch-clock (the loss reads the channel painted relative to the clock)")
    set_threads(args.threads)
    seed_everything(args.seed)
    p = get_preset(args.preset)
    overrides: dict = {"seed": args.seed}
    if args.steps_per_stage:
        overrides["steps_per_stage"] = tuple(int(v) for v in args.steps_per_stage.split(","))
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.harmonic_weight:
        overrides["harmonic_weight"] = args.harmonic_weight
    if args.clock_weight:
        overrides["clock_weight"] = args.clock_weight
    if args.harmonic_target_db is not None:
        overrides["harmonic_target_db"] = args.harmonic_target_db
    audio, pitches, _ = training_notes(p.duration, "train", progress=True)
    model_overrides: dict = {}
    if args.conditional_critic:
        model_overrides.update(critic_pitch_comb=True, aux_on_fake=False)
    if args.aux_real_only:
        model_overrides["aux_on_fake"] = False
    if args.pitch_clock:
        model_overrides["pitch_clock"] = True
    model, images = build(p, audio, kind=args.kind, high_res=args.high_res, seed=args.seed, **model_overrides)
    trainer = GANSynthTrainer(model, images, pitches, p.train_config(**overrides), device=pick_device(args.device))
    work = None
    if args.work:
        work = Path(args.work) / (Path(args.out).stem + "_trainer.pt")
        work.parent.mkdir(parents=True, exist_ok=True)
        if work.is_file():
            trainer.resume(work)
            print(f"resumed {work} at step {trainer.step}")
    end = trainer.total_steps if args.stop_after is None else min(trainer.total_steps, args.stop_after)
    log = pitch_path_logger(args.log_every) if args.log_every > 0 else None
    while trainer.step < end:
        chunk = end - trainer.step if work is None else min(args.save_every, end - trainer.step)
        trainer.train(chunk, progress=log is None, callback=log)
        if work is not None:
            trainer.save(work)
    model = trainer.model.to("cpu").eval()
    model.meta.update(data="synthetic mini-NSynth (fast instruments), train split, MIDI 24-84, velocity 100",
                      n_train=int(audio.shape[0]),
                      command="python -m course_lib.train.gansynth " + " ".join(argv or sys.argv[1:]))
    path = model.save(args.out, include_discriminator=not args.generator_only, history=trainer.history)
    print(json.dumps({"out": str(path), "steps": trainer.step, "seconds": round(model.meta["train_seconds"], 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
