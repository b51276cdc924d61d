"""Training Lesson 03's WaveNets on notes: random crops, the loss, ``train_wavenet`` and a command line.

    python -m course_lib.train.wavenet --model wavenet --preset lecture --out ckpt.pt
    python -m course_lib.train.wavenet --model autoencoder --preset lecture --out ae.pt

Training data is a :class:`~course_lib.data.note_data.NoteData`: notes ``(N, samples)`` with their MIDI
pitch and instrument id, e.g. the synthetic mini-NSynth (:func:`~course_lib.data.note_data.synthetic_note_data`)
or one sine (:func:`~course_lib.data.note_data.sine_note_data`).
Each step takes random crops of ``crop + 1`` samples (a crop may start up to one receptive field
before the note onset, padded with silence, so that generation from silence is learned too).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data.note_data import LESSON_DATA, NoteData, sine_note_data, synthetic_note_data
from course_lib.models.wavenet import WaveNet, WaveNetAutoencoder, audio_to_classes, build_model, model_config_dict
from course_lib.models.wavenet_presets import TrainPreset, autoencoder_preset, train_preset, wavenet_preset
from course_lib.runtime.checkpoint import load_checkpoint, save_checkpoint
from course_lib.runtime.device import pick_device, set_threads
from course_lib.runtime.loop import TrainHistory, fit
from course_lib.synth.core import midi_to_hz

__all__ = ["LESSON_DATA", "NoteData", "sine_note_data", "synthetic_note_data", "random_crops",
           "wavenet_crop_loss", "train_wavenet", "write_data_card", "main"]

Device = Union[str, torch.device, None]
PathLike = Union[str, Path]


def note_clocks(data: NoteData, search_cents: float = 60.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Each note's own clock: the frequency (Hz) and phase (radians at the onset) of its fundamental ->
    ``(f0 (N,), phase (N,))``, so that the fundamental is close to ``a cos(2 pi f0 n / sr + phase)`` at sample ``n``.

    Found as the peak of the note's discrete-time Fourier transform within ``search_cents`` of its MIDI pitch
    (1-cent grid, then 0.02 cents around the best), the phase as that peak's angle. A pitched WaveNet trained with
    these phase tracks (:func:`random_crops` ``clocks``) learns to play in phase with its excitation.
    """
    x = data.audio.double().cpu()
    n = torch.arange(x.shape[1], dtype=torch.float64)
    nominal = midi_to_hz(data.pitch.cpu(), dtype=torch.float64)

    def peak(centre: torch.Tensor, cents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = centre.view(-1, 1) * 2.0 ** (cents.view(1, -1) / 1200.0)  # (N, K) Hz
        best_f, best_c = torch.empty(len(x), dtype=torch.float64), torch.empty(len(x), dtype=torch.complex128)
        for i in range(len(x)):  # one note at a time: (K, samples) at most
            basis = torch.exp(-2j * math.pi * freqs[i].view(-1, 1) * n.view(1, -1) / data.sr)
            coeff = basis @ x[i].to(torch.complex128)
            k = int(coeff.abs().argmax())
            best_f[i], best_c[i] = freqs[i, k], coeff[k]
        return best_f, best_c

    coarse, _ = peak(nominal, torch.arange(-search_cents, search_cents + 0.5, 1.0, dtype=torch.float64))
    f0, coeff = peak(coarse, torch.arange(-1.0, 1.01, 0.02, dtype=torch.float64))
    return f0.float(), torch.angle(coeff).float()


def random_crops(data: NoteData, batch: int, length: int, generator: torch.Generator, lead_in: int = 0,
                 device: Device = None, pitch_shift: float = 0.0,
                 clocks: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
    """``batch`` random crops ``(batch, length)`` of random notes -> (audio, pitch ``(batch,)``, instrument ``(batch,)``).

    A crop starts anywhere from ``lead_in`` samples before the onset (zero-padded) to the note's end minus ``length``.
    ``pitch_shift`` > 0 (semitones): each crop is also resampled by a random ``u`` in ``[-pitch_shift, pitch_shift]``
    semitones (read at a step of ``2 ** (u / 12)`` samples, linear interpolation) and its pitch is returned as the
    real number ``pitch + u`` (float), for a model with a Gaussian pitch code.
    ``clocks`` (:func:`note_clocks` of ``data``): a fourth item, each crop's phase track ``(batch, length)`` in
    radians, ``phase + 2 pi f0 m / sr`` at the note's sample ``m`` that each crop sample reads (no extra draws).
    """
    n, samples = data.audio.shape
    if length < 2:
        raise ValueError(f"crop length must be >= 2 samples, got {length}")
    if not (pitch_shift >= 0 and math.isfinite(pitch_shift)):
        raise ValueError(f"pitch_shift must be a finite number of semitones >= 0, got {pitch_shift}")
    span = length if pitch_shift == 0 else int(math.ceil((length - 1) * 2 ** (pitch_shift / 12))) + 2
    padded = F.pad(data.audio, (lead_in, max(0, span - samples)))
    last = padded.shape[1] - span
    idx = torch.randint(0, n, (batch,), generator=generator)
    start = torch.randint(0, last + 1, (batch,), generator=generator)
    dev = device if device is not None else data.audio.device

    def with_phase(items: tuple, pos: torch.Tensor) -> tuple:
        if clocks is None:
            return items
        f0, phase0 = (c.double().cpu()[idx].unsqueeze(1) for c in clocks)
        track = phase0 + 2 * math.pi * f0 * (pos.double() - lead_in) / data.sr  # note sample 0 = the onset
        return (*items, torch.remainder(track, 2 * math.pi).float().to(dev))

    if pitch_shift == 0:
        pos = start.unsqueeze(1) + torch.arange(length).unsqueeze(0)
        rows = padded[idx.unsqueeze(1), pos]
        return with_phase((rows.to(dev), data.pitch[idx].to(dev), data.instrument[idx].to(dev)), pos)
    shift = (torch.rand(batch, generator=generator) * 2 - 1) * pitch_shift
    pos = start.unsqueeze(1) + 2 ** (shift.unsqueeze(1) / 12) * torch.arange(length).unsqueeze(0)  # (batch, length)
    left = pos.floor().long().clamp(max=padded.shape[1] - 2)
    frac = pos - left
    rows = (1 - frac) * padded[idx.unsqueeze(1), left] + frac * padded[idx.unsqueeze(1), left + 1]
    return with_phase((rows.to(dev), (data.pitch[idx].float() + shift).to(dev), data.instrument[idx].to(dev)), pos)


def wavenet_crop_loss(model: WaveNet, crops: torch.Tensor, pitch: torch.Tensor | None = None,
                      instrument: torch.Tensor | None = None, phase: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (nats/sample) of predicting samples ``1..L-1`` of audio crops ``(batch, L)`` from their past.

    ``phase`` ``(batch, L)``: the excitation's phase track of the crops (a model with ``excitation_harmonics``).
    """
    cfg = model.config
    classes = audio_to_classes(crops, cfg.n_classes)
    logits = model(classes[:, :-1], pitch if cfg.n_pitches else None, instrument if cfg.n_instruments else None,
                   phase=None if phase is None else phase[:, 1:])  # output j predicts crop sample j + 1
    return F.cross_entropy(logits, classes[:, 1:])


def train_wavenet(model: nn.Module, data: NoteData, preset: TrainPreset | str = "fast", *, seed: int = 0,
                  checkpoint: PathLike | None = None, checkpoint_every: int = 0, resume: bool = True,
                  progress: bool = True, steps: int | None = None, pitch_shift: float = 0.0) -> TrainHistory:
    """Train a :class:`WaveNet` (next-sample loss) or :class:`WaveNetAutoencoder` (reconstruction loss) on crops of ``data``.

    ``steps`` overrides the preset's step count; ``pitch_shift`` (semitones) resamples every crop by a random
    shift and labels it with the shifted, real-valued pitch (:func:`random_crops`; it needs a Gaussian pitch code).
    A model (or decoder) with a pitch excitation gets each crop's own phase track (:func:`note_clocks`).
    The checkpoint stores the model, data and training configs.
    """
    tp = train_preset(preset) if isinstance(preset, str) else preset
    total = tp.steps if steps is None else int(steps)
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=tp.lr)
    if isinstance(model, WaveNetAutoencoder):
        lead_in, length = model.config.decoder.receptive_field, tp.crop

        def loss_fn(m: nn.Module, batch) -> torch.Tensor:
            audio, pitch, _, *phase = batch
            return m.loss(audio, pitch, phase[0] if phase else None)
    elif isinstance(model, WaveNet):
        lead_in, length = model.config.receptive_field, tp.crop + 1

        def loss_fn(m: nn.Module, batch) -> torch.Tensor:
            return wavenet_crop_loss(m, *batch)
    else:
        raise ValueError(f"train_wavenet trains a WaveNet or WaveNetAutoencoder, got {type(model).__name__}")
    if pitch_shift and not getattr(model.config, "pitch_sigma", 0):
        raise ValueError("pitch_shift labels crops with real-valued pitches: it needs a model with pitch_sigma > 0")
    config = {"model": model_config_dict(model), "data": {**data.description, "hash": data.content_hash()},
              "train": {**tp.to_dict(), "steps": total, "seed": seed,
                        **({"pitch_shift_semitones": pitch_shift} if pitch_shift else {})}}
    decoder = model.decoder if isinstance(model, WaveNetAutoencoder) else model
    clocks = note_clocks(data) if decoder.config.excitation_harmonics else None  # each note's phase, for its crops
    return fit(model, opt, lambda step, g: random_crops(data, tp.batch_size, length, g, lead_in, device, pitch_shift,
                                                       clocks),
               loss_fn, total, seed=seed, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
               resume=resume, config=config, progress=progress, desc=type(model).__name__,
               lr_schedule=None if tp.lr_final is None else (lambda step: tp.lr_at(step, total)))


def write_data_card(path: PathLike, checkpoint: PathLike, history: TrainHistory, command: str,
                    seconds: float) -> Path:
    """Write a JSON data card next to a checkpoint: configs, data hash, steps, final loss, rebuild command."""
    ckpt = load_checkpoint(checkpoint)
    card = {"checkpoint": Path(checkpoint).name, "bytes": Path(checkpoint).stat().st_size,
            "model": ckpt["config"].get("model"), "data": ckpt["config"].get("data"),
            "train": ckpt["config"].get("train"), "steps": history.step,
            "final_loss_nats_per_sample": round(history.smoothed(50), 4),
            "first_loss_nats_per_sample": round(history.loss[0], 4) if history.loss else None,
            "train_wall_seconds": round(seconds, 1), "torch": torch.__version__,
            "rebuild": command}
    path = Path(path)
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train a WaveNet / autoencoder preset on synthetic notes and write checkpoint + data card."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("wavenet", "autoencoder"), default="wavenet")
    p.add_argument("--preset", default="lecture", help="model and training preset: fast, lecture, full")
    p.add_argument("--pitch", action="store_true", help="condition the WaveNet on pitch (one-hot, 128 MIDI notes)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's optimizer steps")
    p.add_argument("--crop", type=int, default=None, help="override the preset's crop length (samples)")
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--lr-final", type=float, default=None,
                   help="anneal the learning rate to this value by the last step (half cosine); default: constant")
    p.add_argument("--pitch-sigma", type=float, default=0.0,
                   help="pitch code width in semitones: 0 = one-hot, > 0 = Gaussian bump over the MIDI bins "
                        "(neighbouring pitches share weights; any real-valued pitch can be asked for)")
    p.add_argument("--pitch-shift", type=float, default=0.0,
                   help="resample each training crop by a random shift of up to this many semitones, labelled with "
                        "the shifted pitch (needs --pitch-sigma > 0)")
    p.add_argument("--excitation-harmonics", type=int, default=0,
                   help="add a per-sample pitch excitation with this many harmonics (sines and cosines of the note's "
                        "f0: the pitch arrives as a period; a WaveNet needs --pitch, an autoencoder's decoder has "
                        "it); 0 = none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--out", required=True, help="shipped weights (.pt, no optimizer state); a .json data card beside it")
    p.add_argument("--work", default="build/wavenet_train", help="folder of the resumable training checkpoint")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-resume", action="store_true")
    args = p.parse_args(argv)
    set_threads(args.threads)
    device = pick_device(args.device)
    data = synthetic_note_data(**LESSON_DATA, seed=args.data_seed)
    if args.model == "autoencoder":
        model = build_model(autoencoder_preset(args.preset, excitation_harmonics=args.excitation_harmonics),
                            device=device)
    else:
        if (args.pitch_sigma or args.excitation_harmonics) and not args.pitch:
            raise SystemExit("--pitch-sigma and --excitation-harmonics need --pitch (they shape the pitch conditioning)")
        model = build_model(wavenet_preset(args.preset, n_pitches=128 if args.pitch else 0,
                                           pitch_sigma=args.pitch_sigma,
                                           excitation_harmonics=args.excitation_harmonics), device=device)
    out = Path(args.out)
    work = Path(args.work) / out.name
    tp = train_preset(args.preset)
    tp = TrainPreset(tp.steps if args.steps is None else args.steps,
                     tp.batch_size if args.batch_size is None else args.batch_size,
                     tp.crop if args.crop is None else args.crop, tp.lr,
                     tp.lr_final if args.lr_final is None else args.lr_final)
    start = time.perf_counter()
    hist = train_wavenet(model, data, tp, seed=args.seed, checkpoint=work, checkpoint_every=100,
                         resume=not args.no_resume, pitch_shift=args.pitch_shift)
    ckpt = load_checkpoint(work)
    save_checkpoint(out, model, None, hist.step, ckpt["config"], {"loss": hist.loss})
    cmd = "python -m course_lib.train.wavenet " + " ".join(argv if argv is not None else sys.argv[1:])
    card = write_data_card(out.with_suffix(".json"), out, hist, cmd, time.perf_counter() - start)
    print(f"{out}: {hist.step} steps, final loss {hist.smoothed(50):.3f} nats/sample; card {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
