"""Data cards of Lesson 04's shipped GANSynth checkpoints: evaluate a checkpoint and write ``.json`` + ``.md``.

    python -m course_lib.metrics.gansynth_card course_lib/assets/gansynth_if.pt course_lib/assets/gansynth_phase.pt

The evaluation is the lesson's table: ``gen_per_real`` generated notes for every held-out note's
pitch (the ``test`` + ``valid`` splits of :func:`course_lib.train.gansynth.training_notes`), scored
against the real training notes with the shipped pitch classifier (PA, PE, IS, NDB/K and a Fréchet
distance on its features, every figure on the whole set). A hand-written ``## Limitations`` section
already in the ``.md`` card is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
from pathlib import Path
from typing import Sequence, Union

import torch

from course_lib.metrics.evaluate import build_reference, evaluate
from course_lib.models.classifiers import load_pitch_classifier
from course_lib.models.gansynth import load_gansynth
from course_lib.models.gansynth_repr import audio_to_image
from course_lib.models.wavenet_eval import median_f0
from course_lib.runtime.checkpoint import load_checkpoint
from course_lib.runtime.device import set_threads
from course_lib.runtime.model_card import write_model_card
from course_lib.synth.core import midi_to_hz
from course_lib.train.gansynth import pitch_path_curve, training_notes
from course_lib.train.gansynth_losses import harmonic_mask

PathLike = Union[str, Path]

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notes_hash(audio: torch.Tensor, pitches: torch.Tensor) -> str:
    """SHA-256 of training notes ``(N, samples)`` (as float32 bytes) and their MIDI pitches ``(N,)``."""
    h = hashlib.sha256()
    h.update(audio.float().contiguous().numpy().tobytes())
    h.update(pitches.long().numpy().tobytes())
    return h.hexdigest()


def evaluate_checkpoint(path: PathLike, gen_per_real: int = 2, seed: int = 123,
                        device: torch.device | str | None = None) -> dict:
    """The lesson-04 evaluation of the checkpoint at ``path``: a dict of metrics and clip counts."""
    return evaluate_model(load_gansynth(path, device), gen_per_real, seed, device)


def evaluate_model(model: torch.nn.Module, gen_per_real: int = 2, seed: int = 123,
                   device: torch.device | str | None = None) -> dict:
    """The lesson-04 evaluation of a loaded :class:`~course_lib.models.gansynth.GANSynth` (see :func:`evaluate_checkpoint`)."""
    duration = model.spec.samples / model.sr
    train_audio, _, _ = training_notes(round(duration, 2), "train")
    held = [training_notes(round(duration, 2), s) for s in ("test", "valid")]
    held_pitch = torch.cat([h[1] for h in held])
    clf = load_pitch_classifier(device=device)
    reference = build_reference(train_audio, embedder=clf, sr=model.sr, device=device)
    targets = held_pitch.repeat(gen_per_real)
    fake = model.generate(targets.tolist(), seed=seed, length=train_audio.shape[-1])
    r = evaluate(fake, reference, sr=model.sr, classifier=clf, pitch_targets=targets.tolist(),
                 pitch_classifier=clf, device=device)
    return {"clips": f"{r.n_generated} generated vs {r.n_reference} real training notes",
            "NDB/K": round(r.ndb_k, 3), "NDB bins": f"{r.ndb}/{r.settings.get('ndb_k', '?')}",
            "FD (pitch-classifier features)": round(r.fad, 2), "IS": round(r.is_mean, 2),
            "PA (%)": round(r.pa, 1), "PE (nats)": round(r.pe, 3)}


def harmonic_energy_db(audio: torch.Tensor, midi: Sequence[int] | torch.Tensor, spec) -> torch.Tensor:
    """Where a note's energy sits relative to the harmonics of the pitch it should have, in dB per note ``(n,)``.

    ``audio (n, samples)`` is analysed like the GANSynth images of ``spec`` (a
    :class:`~course_lib.models.gansynth_repr.SpecImageConfig`): power averaged over time, then the energy in
    bins within one bin width of a harmonic ``k * f0`` (k >= 1) of MIDI ``midi`` against the energy in all other
    bins. A clean note at its pitch scores well above 0 dB; energy spread with no regard for the pitch scores
    about ``10 log10(share of harmonic bins / share of the rest)`` (about -3.5 dB at 200 Hz with 31 Hz bins).
    """
    power = torch.exp(2 * audio_to_image(torch.as_tensor(audio, dtype=torch.float32), spec)[:, 0]).mean(-1)
    width = spec.sr / spec.n_fft
    f = torch.arange(power.shape[1]) * width
    f0 = midi_to_hz(torch.as_tensor(midi).reshape(-1))
    if f0.shape[0] != power.shape[0]:
        raise ValueError(f"{f0.shape[0]} pitches for {power.shape[0]} notes")
    near = harmonic_mask(f, torch.full_like(f, width), f0)
    return 10 * torch.log10((power * near).sum(1) / (power * ~near).sum(1).clamp_min(1e-20))


def pyin_pitch_check(model: torch.nn.Module, seed: int = 7, tolerance_cents: float = 50.0) -> dict:
    """One generated note per MIDI pitch of the model (24-84, all in the training notes), measured with pYIN.

    The training-side pitch measure (no network involved): the median pYIN f0 of each note's voiced
    frames (:func:`course_lib.models.wavenet_eval.median_f0`, fmin 30 Hz) against the requested pitch.
    Returns a JSON-able dict: notes, how many within ``tolerance_cents``, how many unvoiced.
    """
    midi = list(model.pitches)
    audio = model.generate(midi, seed=seed)
    within = unvoiced = 0
    for m, clip in zip(midi, audio):
        f0, _ = median_f0(clip, model.sr, fmin=30.0, fmax=2000.0)
        if not math.isfinite(f0):
            unvoiced += 1
        elif abs(1200 * math.log2(f0 / midi_to_hz(m))) <= tolerance_cents:
            within += 1
    return {"how": f"one note per MIDI pitch {midi[0]}-{midi[-1]} (latents seed {seed}); median pYIN f0 of the voiced "
                   f"frames vs the requested pitch", "notes": len(midi),
            f"within {tolerance_cents:.0f} cents": within, "unvoiced": unvoiced}


def _history_summary(ckpt: dict, last: int = 200) -> dict:
    """Mean of the last ``last`` steps' auxiliary-pitch statistics (what shows whether pitch was learned)."""
    steps = ckpt.get("history", {}).get("steps", [])[-last:]
    if not steps:
        return {}
    keys = [k for k in ("d_pitch_acc", "d_pitch_acc_fake", "d_aux", "g_aux") if k in steps[0]]
    return {f"{k} (mean of last {len(steps)} steps)": round(sum(s[k] for s in steps) / len(steps), 3) for k in keys}


def _training_curve(ckpt: dict, every: int = 1000) -> list[dict]:
    """The pitch-path statistics every ``every`` steps (:func:`course_lib.models.gansynth.pitch_path_curve`)."""
    steps = ckpt.get("history", {}).get("steps", [])
    return pitch_path_curve(steps, every) if steps else []


def build_card(path: PathLike, evaluation: dict, model: torch.nn.Module | None = None) -> dict:
    """The JSON card of the checkpoint at ``path`` with ``evaluation`` (from :func:`evaluate_checkpoint`).

    ``model``: the checkpoint already loaded with ``load_gansynth`` (loaded here when None).
    """
    path = Path(path)
    raw = path.read_bytes()
    ckpt = load_checkpoint(path)
    model = load_gansynth(path) if model is None else model
    meta = dict(model.meta)
    duration = round(model.spec.samples / model.sr, 2)
    audio, pitches, _ = training_notes(duration, "train")
    return {
        "file": path.name, "sha256": _sha256(raw), "bytes": len(raw), "kind": meta.get("kind"),
        "representation": model.spec.to_dict(), "image_shape": list(model.spec.image_shape),
        "config": model.cfg.to_dict(), "meta": meta,
        "n_generator_parameters": sum(p.numel() for p in model.generator.parameters()),
        "data": {"source": f"course_lib.train.gansynth.training_notes({duration}, 'train'): synthetic mini-NSynth, "
                           "data preset 'fast' (1 instrument per family, seed 0), every pitch, velocity 100, "
                           f"MIDI 24-84, {duration} s at 16 kHz, NSynth-style hash split 'train'",
                 "n_notes": int(audio.shape[0]), "sha256_audio_and_pitches": notes_hash(audio, pitches)},
        "training_end": _history_summary(ckpt),
        "training_curve": _training_curve(ckpt),
        "evaluation": evaluation, "pyin_pitch_check": pyin_pitch_check(model), "torch": torch.__version__, "python": platform.python_version(),
    }


def card_markdown(card: dict, limitations: str = "") -> str:
    """The Markdown card for ``card`` (:func:`build_card`), ending with ``limitations`` (a Markdown section)."""
    m, c, meta = card["representation"], card["config"], card["meta"]
    tr = meta.get("train", {})
    name = {"if": "IF", "phase": "phase", "mel_if": "mel-IF"}.get(card["kind"], card["kind"])
    hr = " +H" if meta.get("high_res") else ""
    lines = [f"# GANSynth {name}{hr} (shipped checkpoint `{card['file']}`)", "",
             f"Generator-only checkpoint of the Lesson 04 GANSynth model ({name}{hr} representation), written by",
             "`course_lib.models.gansynth` and loaded with `course_lib.models.gansynth.load_gansynth`. This card is",
             f"written by `python -m course_lib.metrics.gansynth_card {card['file']}`.", "",
             f"* **Representation**: {m['kind']}, sr {m['sr']} Hz, n_fft {m['n_fft']} (hop {m['n_fft'] // 4}), images "
             f"{card['image_shape'][1]} x {card['image_shape'][2]} (freq x frames); log(|X| + 1e-6) magnitude, "
             "Nyquist bin dropped.",
             f"* **Model**: progressive generator, {c['n_stages']} stages, channels {list(c['channels'])}, latent "
             f"{c['latent_dim']}, one-hot pitch MIDI {c['pitch_min']}-{c['pitch_min'] + c['n_pitches'] - 1}"
             + (", harmonic-comb pitch channels" if c.get("pitch_comb") else "")
             + (f", {m['kind'] if m['kind'] == 'phase' else 'IF'} painted relative to the pitch clock "
                "(`GANSynthConfig.pitch_clock`)" if c.get("pitch_clock") else "") + "; "
             f"{card['n_generator_parameters']:,} generator parameters; loss {c['loss']} + auxiliary pitch classifier "
             f"(weight {c['aux_weight']})"
             + (f" + G's harmonic pitch loss (`course_lib.train.gansynth_losses.harmonic_loss`, weight "
                f"{tr['harmonic_weight']}, hinge target {tr.get('harmonic_target_db')} dB)."
                if tr.get("harmonic_weight") else "."),
             f"* **Training**: {meta.get('steps')} steps ({tr.get('steps_per_stage')} per stage), batch "
             f"{tr.get('batch_size')}, Adam lr {tr.get('lr')}, seed {tr.get('seed')}; "
             f"about {meta.get('train_seconds', 0) / 60:.0f} min of training on one CPU core"
             + (f" ({meta['train_note']})." if meta.get("train_note") else "."),
             f"* **Data**: {card['data']['source']}; {card['data']['n_notes']} notes, SHA-256 of audio + pitches "
             f"`{card['data']['sha256_audio_and_pitches'][:16]}...`.",
             f"* **File**: {card['bytes']:,} bytes, SHA-256 `{card['sha256']}`.", "",
             "Rebuild:", "", f"    {meta.get('command', '?')}", "",
             "## Evaluation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["evaluation"].items()]
    pyin = card.get("pyin_pitch_check")
    if pyin:
        key = next(k for k in pyin if k.startswith("within"))
        lines += ["", f"pYIN pitch check ({pyin['how']}): **{pyin[key]} of {pyin['notes']}** notes {key} of the requested "
                  f"pitch, {pyin['unvoiced']} unvoiced."]
    if card.get("training_end"):
        lines += ["", "At the end of training (the discriminator's auxiliary pitch head on real notes, the "
                  "generator's pitch cross-entropy on its own notes; chance = log 61 = 4.11 nats):", ""]
        lines += [f"* {k}: {v}" for k, v in card["training_end"].items()]
    curve = card.get("training_curve") or []
    if curve:
        keys = [k for k in curve[0] if k not in ("step", "stage")]
        fake_note = ("; `d_pitch_acc_fake`: the critic's pitch head on the generator's notes against the requested "
                     "pitch" if "d_pitch_acc_fake" in keys else "")
        lines += ["", f"During training (means of the 100 steps before each step shown{fake_note}):", "",
                  "| step | stage | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
        lines += [f"| {r['step']} | {r['stage']} | " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in curve]
    text = "\n".join(lines) + "\n"
    if limitations.strip():
        text += "\n" + limitations.strip() + "\n"
    return text


def write_card(path: PathLike, gen_per_real: int = 2, device: torch.device | str | None = None) -> tuple[Path, Path]:
    """Evaluate the checkpoint at ``path`` and write ``<stem>.json`` and ``<stem>.md`` beside it (Limitations kept)."""
    model = load_gansynth(path, device)
    card = build_card(path, evaluate_model(model, gen_per_real, device=device), model)
    return write_model_card(path, card, card_markdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the data cards of the given GANSynth checkpoints."""
    ap = argparse.ArgumentParser(description="Evaluate GANSynth checkpoints and write their data cards.")
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--gen-per-real", type=int, default=2, help="generated notes per held-out note")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    for p in args.checkpoints:
        j, m = write_card(p, args.gen_per_real)
        card = json.loads(j.read_text(encoding="utf-8"))
        print(f"{p}: {card['evaluation']} -> {j}, {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
