"""Training DDSP on one instrument of the mini-NSynth (Lesson 07): data, features, presets, command line.

    python -m course_lib.train.ddsp --preset full --threads 1 --out course_lib/assets/ddsp_organ.pt

The instrument is the organ of the synthetic mini-NSynth (``course_lib.data``, data preset ``fast``,
seed 0: ``organ_electronic_000``, the organ Lesson 03's WaveNets heard). Its notes are rendered with
the NSynth protocol (held 3/4 of the clip, then released) at every pitch of MIDI 36-84 except the
held-out pitches :data:`HELDOUT_PITCHES`, which are played at velocities no training note has
(:func:`heldout_notes`: the notes every model of Lesson 07 is measured on).

Each step draws ``batch_size`` random crops of ``crop_seconds`` from random notes (aligned to the
control frames) with their f0 and loudness, and minimises the multi-scale spectral distance between
the crop and DDSP's resynthesis. Features are computed once per note set and cached on disk
(``course_lib.data.config.cache_root()``), since pYIN is the slow part.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence, Union

import torch

from course_lib import DEFAULT_SR
from course_lib.data.config import cache_root
from course_lib.data.note_data import NoteData
from course_lib.data.presets import choose_preset, get_preset as data_preset
from course_lib.data.synthetic_notes import instrument_pitches, make_instruments, render_notes
from course_lib.models.ddsp import DDSP, DDSPConfig, model_config_dict
from course_lib.models.ddsp_features import Features, extract_features
from course_lib.runtime.checkpoint import load_checkpoint, save_checkpoint
from course_lib.runtime.device import pick_device, set_threads
from course_lib.runtime.loop import TrainHistory, fit

Device = Union[str, torch.device, None]
PathLike = Union[str, Path]

INSTRUMENT = dict(family="organ", data_preset="fast", seed=0)
"""The instrument DDSP learns: the first (only) organ of the ``fast`` mini-NSynth, seed 0."""
TRAIN_PITCH_RANGE = (36, 84)
HELDOUT_PITCHES = (50, 56, 62, 68, 74, 80)
"""MIDI pitches never used for training (halfway between the mini-NSynth's 6-semitone grid, so Lesson 03's
WaveNet autoencoder never heard them either)."""
HELDOUT_VELOCITIES = (64, 112)
SEEN_PITCHES = (53, 59, 65, 71, 77, 83)
"""Pitches the mini-NSynth organ was recorded at in MIDI 48-84: Lesson 03's WaveNet autoencoder trained on them
(its one-hot pitch input knows them), DDSP trains on them too. :func:`heldout_velocity_notes` plays them at the
held-out velocities."""
TRAIN_VELOCITIES = (25, 50, 75, 100, 127)
NOTE_SECONDS = 1.0


@dataclass(frozen=True)
class DDSPPreset:
    """A training recipe: model width, optimizer steps, crops per batch and their length, Adam lr, and the notes.

    ``pitch_step`` keeps every n-th training pitch, ``velocities`` the velocities rendered.
    """

    hidden: int
    steps: int
    batch_size: int
    crop_seconds: float
    lr: float
    velocities: tuple[int, ...]
    pitch_step: int = 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["velocities"] = list(self.velocities)
        return d


PRESETS: dict[str, DDSPPreset] = {
    # tests and COURSE_FAST: seconds
    "fast": DDSPPreset(hidden=32, steps=40, batch_size=4, crop_seconds=0.25, lr=3e-3, velocities=(100,), pitch_step=6),
    # the lesson's live run: a few minutes on one CPU thread
    "lecture": DDSPPreset(hidden=128, steps=600, batch_size=8, crop_seconds=0.5, lr=2e-3, velocities=(25, 75, 127),
                          pitch_step=2),
    # the shipped checkpoint
    "full": DDSPPreset(hidden=256, steps=3000, batch_size=8, crop_seconds=0.5, lr=1e-3, velocities=TRAIN_VELOCITIES),
}


def get_preset(preset: str | DDSPPreset) -> DDSPPreset:
    """The preset named ``preset`` (``fast``, ``lecture``, ``full``) or ``preset`` itself."""
    return choose_preset(preset, PRESETS, DDSPPreset, "DDSP")


def _instrument():
    return make_instruments(INSTRUMENT["data_preset"], INSTRUMENT["seed"], [INSTRUMENT["family"]])[0]


def instrument_notes(pitches: Sequence[int], velocities: Sequence[int], seconds: float = NOTE_SECONDS,
                     device: Device = None) -> NoteData:
    """Every (pitch, velocity) pair of :data:`INSTRUMENT`, rendered NSynth-style and scaled like the mini-NSynth.

    The gain is the one :func:`course_lib.data.synthetic_notes.generate_notes` gives the instrument (its
    loudest note of the data preset peaks at 0.9), so levels match the mini-NSynth's organ.
    """
    inst = _instrument()
    grid = [(p, v) for p in pitches for v in velocities]
    if not grid:
        raise ValueError("no notes requested: give at least one pitch and one velocity")
    dp = data_preset(INSTRUMENT["data_preset"])
    ref_grid = [(p, v) for p in instrument_pitches(inst, dp.pitch_step) for v in dp.velocities]
    ref = render_notes(inst, [g[0] for g in ref_grid], [g[1] for g in ref_grid], DEFAULT_SR, dp.note_seconds, device)
    gain = 0.9 / max(float(ref.abs().max()), 1e-9)
    audio = render_notes(inst, [g[0] for g in grid], [g[1] for g in grid], DEFAULT_SR, seconds, device) * gain
    desc = {"kind": "instrument_notes", "instrument": inst.name, **INSTRUMENT, "pitches": [int(p) for p in pitches],
            "velocities": [int(v) for v in velocities], "seconds": seconds, "gain": round(gain, 6),
            "notes": len(grid), "sr": DEFAULT_SR}
    return NoteData(audio.cpu().float().contiguous(), torch.tensor([g[0] for g in grid]),
                    torch.tensor([g[1] for g in grid]), DEFAULT_SR, desc)


def train_pitches(pitch_step: int = 1) -> list[int]:
    """The training pitches: MIDI 36-84 without :data:`HELDOUT_PITCHES`, every ``pitch_step``-th one."""
    kept = [p for p in range(TRAIN_PITCH_RANGE[0], TRAIN_PITCH_RANGE[1] + 1) if p not in HELDOUT_PITCHES]
    return kept[::pitch_step]


def training_notes(preset: str | DDSPPreset = "lecture", device: Device = None) -> NoteData:
    """The notes a preset trains on (``NoteData.instrument`` holds each note's velocity)."""
    p = get_preset(preset)
    return instrument_notes(train_pitches(p.pitch_step), p.velocities, NOTE_SECONDS, device)


def heldout_notes(seconds: float = NOTE_SECONDS, pitches: Sequence[int] = HELDOUT_PITCHES,
                  velocities: Sequence[int] = HELDOUT_VELOCITIES) -> NoteData:
    """The held-out notes: :data:`HELDOUT_PITCHES` x :data:`HELDOUT_VELOCITIES`, never in any training set."""
    return instrument_notes(pitches, velocities, seconds)


def heldout_velocity_notes(seconds: float = NOTE_SECONDS) -> NoteData:
    """:data:`SEEN_PITCHES` x :data:`HELDOUT_VELOCITIES`: unseen notes at pitches every model has trained on."""
    return instrument_notes(SEEN_PITCHES, HELDOUT_VELOCITIES, seconds)


def note_features(data: NoteData, hop: int = 64, cache: bool = True, progress: bool = False,
                  chunk: int = 16) -> Features:
    """f0 / voicing / loudness of every note of ``data`` at ``hop`` (cached on disk by the notes' hash)."""
    path = cache_root() / f"ddsp-features-{data.content_hash()}-hop{hop}.pt"
    if cache and path.is_file():
        try:
            d = torch.load(path, weights_only=True)
            return Features(d["f0_hz"], d["voiced"], d["loudness_db"], hop, data.sr)
        except Exception:  # a damaged cache file is recomputed
            pass
    parts = []
    starts = range(0, data.audio.shape[0], chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="f0 + loudness", unit="chunk", leave=False)
    for i in starts:
        parts.append(extract_features(data.audio[i: i + chunk], data.sr, hop))
    feats = Features(torch.cat([p.f0_hz for p in parts]), torch.cat([p.voiced for p in parts]),
                     torch.cat([p.loudness_db for p in parts]), hop, data.sr)
    if cache:  # atomic: a temporary file renamed into place
        import os
        import tempfile

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        torch.save({"f0_hz": feats.f0_hz, "voiced": feats.voiced, "loudness_db": feats.loudness_db}, tmp)
        os.replace(tmp, path)
    return feats


def loudness_statistics(features: Features) -> tuple[float, float]:
    """Mean and standard deviation (dB) of the loudness of the voiced frames (all frames if none is voiced)."""
    ld = features.loudness_db[features.voiced] if bool(features.voiced.any()) else features.loudness_db.flatten()
    return float(ld.mean()), max(float(ld.std()), 1.0)


def model_for(preset: str | DDSPPreset, features: Features, device: Device = None, **overrides) -> DDSP:
    """A fresh DDSP of the preset's width, normalising loudness with the statistics of ``features``."""
    p = get_preset(preset)
    mean, std = loudness_statistics(features)
    f0 = features.f0_hz[features.voiced] if bool(features.voiced.any()) else features.f0_hz.flatten()
    f0 = f0[torch.isfinite(f0)]
    cfg = DDSPConfig(hop=features.hop, sr=features.sr, hidden=p.hidden, loudness_mean_db=round(mean, 3),
                     loudness_std_db=round(std, 3),
                     f0_range_hz=(round(float(f0.min()), 2), round(float(f0.max()), 2)) if f0.numel() else (50.0, 1600.0))
    cfg = replace(cfg, **overrides)
    return DDSP(cfg, device=device)


def random_feature_crops(data: NoteData, features: Features, batch: int, frames: int, generator: torch.Generator,
                         device: Device = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch`` random crops of ``frames`` control frames -> (audio ``(batch, frames * hop)``, f0, loudness
    ``(batch, frames + 1)``): the crop starts on a frame centre and its last frame covers its end."""
    hop = features.hop
    n, samples = data.audio.shape
    total = features.f0_hz.shape[1]
    last = min(total - frames - 1, (samples - frames * hop) // hop)
    if last < 0:
        raise ValueError(f"crops of {frames} frames (hop {hop}) do not fit into notes of {samples} samples")
    idx = torch.randint(0, n, (batch,), generator=generator)
    start = torch.randint(0, last + 1, (batch,), generator=generator)
    fr = start.unsqueeze(1) + torch.arange(frames + 1).unsqueeze(0)
    sm = (start * hop).unsqueeze(1) + torch.arange(frames * hop).unsqueeze(0)
    dev = device if device is not None else "cpu"
    rows = idx.unsqueeze(1)
    return (data.audio[rows, sm].to(dev), features.f0_hz[rows, fr].to(dev), features.loudness_db[rows, fr].to(dev))


def train_ddsp(preset: str | DDSPPreset = "fast", *, model: DDSP | None = None, data: NoteData | None = None,
               features: Features | None = None, steps: int | None = None, seed: int = 0,
               checkpoint: PathLike | None = None, checkpoint_every: int = 0, resume: bool = True,
               progress: bool = True, callback: Callable[[TrainHistory], None] | None = None,
               device: Device = None) -> tuple[DDSP, TrainHistory]:
    """Train DDSP on the instrument's notes -> (model in eval mode, history of the loss per step).

    Args:
        preset: ``fast`` (seconds), ``lecture`` (a few CPU minutes), ``full`` (the shipped model) or a
            :class:`DDSPPreset`. ``steps`` overrides its step count.
        model, data, features: default to a fresh model, :func:`training_notes` and :func:`note_features`.
        checkpoint: resumable training checkpoint (model, optimizer, step, configs), saved every
            ``checkpoint_every`` steps and at the end.
        callback: called with the :class:`TrainHistory` after every step (the lesson's live loss curve).
    """
    p = get_preset(preset)
    if data is None:
        data = training_notes(p, device=None)
    hop = model.config.hop if model is not None else 64
    if features is None:
        features = note_features(data, hop, progress=progress)
    if features.f0_hz.shape[0] != data.audio.shape[0]:
        raise ValueError(f"{features.f0_hz.shape[0]} feature rows for {data.audio.shape[0]} notes")
    if not torch.isfinite(features.f0_hz).all():
        bad = (~torch.isfinite(features.f0_hz).all(dim=1)).nonzero().flatten().tolist()
        raise ValueError(f"notes {bad[:10]} have no voiced frame (no f0): remove them from the training data")
    if model is None:
        torch.manual_seed(seed)  # the initial weights depend on the seed only
        model = model_for(p, features, device=pick_device(device) if device is not None else "cpu")
    total = p.steps if steps is None else int(steps)
    frames = max(1, int(round(p.crop_seconds * data.sr / hop)))
    dev = model.device
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    config = {"model": model_config_dict(model), "data": {**data.description, "hash": data.content_hash()},
              "train": {**p.to_dict(), "steps": total, "seed": seed}}

    def batch_fn(step: int, g: torch.Generator):
        return random_feature_crops(data, features, p.batch_size, frames, g, dev)

    def loss_fn(m: DDSP, batch) -> torch.Tensor:
        audio, f0, ld = batch
        return m.loss(audio, f0, ld)

    hist = fit(model, opt, batch_fn, loss_fn, total, seed=seed, checkpoint=checkpoint,
               checkpoint_every=checkpoint_every, resume=resume, config=config, progress=progress,
               desc="DDSP", callback=callback, grad_clip=5.0)
    return model, hist


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train a preset on the organ and write the weights (.pt); ``python -m course_lib.metrics.ddsp_card``
    then measures them and writes their data card (metrics sit above training, so the trainer does not call it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="full", help="fast, lecture or full")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's optimizer steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="weights (.pt, no optimizer state)")
    ap.add_argument("--work", default="build/ddsp_train", help="folder of the resumable training checkpoint")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-resume", action="store_true")
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)
    device = pick_device(args.device)
    p = get_preset(args.preset)
    start = time.perf_counter()
    data = training_notes(p)
    feats = note_features(data, 64, progress=True)
    feature_seconds = time.perf_counter() - start
    torch.manual_seed(args.seed)
    model = model_for(p, feats, device=device)
    out = Path(args.out)
    work = Path(args.work) / out.name
    t0 = time.perf_counter()
    model, hist = train_ddsp(p, model=model, data=data, features=feats, steps=args.steps, seed=args.seed,
                             checkpoint=work, checkpoint_every=100, resume=not args.no_resume)
    train_seconds = time.perf_counter() - t0
    ckpt = load_checkpoint(work)
    extra = {"train_wall_seconds": round(train_seconds, 1), "feature_seconds": round(feature_seconds, 1),
             "threads": threads, "device": str(device), "resumed_from": hist.resumed_from}
    save_checkpoint(out, model, None, hist.step, ckpt["config"], {"loss": hist.loss}, extra)
    cmd = "python -m course_lib.train.ddsp " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"{out}: {hist.step} steps in {train_seconds / 60:.1f} min, final loss {hist.smoothed(50):.3f}")
    print(f"its data card: python -m course_lib.metrics.ddsp_card {out} --command {shlex.quote(cmd)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
