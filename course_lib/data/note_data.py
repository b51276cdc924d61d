"""Notes as training data: :class:`NoteData` (audio, MIDI pitch, instrument id, how it was made) and its makers.

:func:`synthetic_note_data` slices the synthetic mini-NSynth (:mod:`course_lib.data.synthetic_notes`);
:func:`sine_note_data` is one sine. Lesson 03's WaveNets (:mod:`course_lib.train.wavenet`) and Lesson 07's
DDSP (:mod:`course_lib.train.ddsp`) train on them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence, Union

import torch

from course_lib import DEFAULT_SR
from course_lib.data.synthetic_notes import generate_notes
from course_lib.synth import hz_to_midi, sine

Device = Union[str, torch.device, None]


@dataclass
class NoteData:
    """Notes to train on: ``audio (N, samples)`` float32 in [-1, 1], ``pitch (N,)`` MIDI, ``instrument (N,)`` ids.

    ``description`` is a JSON-able dict of how the data was made (stored in checkpoints and data cards).
    """

    audio: torch.Tensor
    pitch: torch.Tensor
    instrument: torch.Tensor
    sr: int = DEFAULT_SR
    description: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.audio.ndim != 2 or self.audio.shape[0] == 0:
            raise ValueError(f"NoteData.audio must be (notes >= 1, samples), got {tuple(self.audio.shape)}")
        n = self.audio.shape[0]
        if self.pitch.shape != (n,) or self.instrument.shape != (n,):
            raise ValueError(f"NoteData needs one pitch and one instrument per note ({n}); got "
                             f"{tuple(self.pitch.shape)} and {tuple(self.instrument.shape)}")

    def content_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the audio (as 16-bit PCM) and the labels: identifies the exact data."""
        h = hashlib.sha256()
        h.update((self.audio.clamp(-1, 1) * 32767).round().to(torch.int16).cpu().numpy().tobytes())
        h.update(self.pitch.cpu().numpy().tobytes())
        h.update(self.instrument.cpu().numpy().tobytes())
        return h.hexdigest()[:16]


def sine_note_data(f0: float = 220.0, seconds: float = 0.5, sr: int = DEFAULT_SR, amplitude: float = 0.7,
                   device: Device = None) -> NoteData:
    """One sine note of ``f0`` Hz, ``seconds`` long, as :class:`NoteData` (pitch = nearest MIDI note)."""
    x = sine(f0, seconds, sr, amplitude=amplitude, device=device)
    pitch = torch.tensor([int(round(hz_to_midi(f0)))])
    return NoteData(x, pitch, torch.zeros(1, dtype=torch.long), sr,
                    {"kind": "sine", "f0_hz": f0, "seconds": seconds, "amplitude": amplitude, "sr": sr})


def synthetic_note_data(preset: str = "fast", seed: int = 0, families: Sequence[str] | None = None,
                        seconds: float | None = None, pitch_range: tuple[int, int] = (0, 127),
                        velocities: Sequence[int] | None = None, max_notes: int | None = None,
                        device: Device = None) -> NoteData:
    """Notes of the synthetic mini-NSynth (``course_lib.data``), filtered, cut to ``seconds``.

    Args:
        preset, seed: the data preset and seed of ``course_lib.data.synthetic_notes.generate_notes``.
        families: keep these NSynth families (None = all). pitch_range: inclusive MIDI range kept.
        velocities: keep these velocities (None = all). seconds: keep the first ``seconds`` of each note.
        max_notes: keep at most this many (evenly spaced over the filtered list).
    """
    audio, examples = generate_notes(preset, seed=seed, families=families, device=device)
    keep = [i for i, e in enumerate(examples) if pitch_range[0] <= e.pitch <= pitch_range[1]
            and (velocities is None or e.velocity in velocities)]
    if not keep:
        raise ValueError(f"no synthetic notes left after filtering (families={families}, pitch_range={pitch_range}, "
                         f"velocities={velocities})")
    if max_notes is not None and len(keep) > max_notes:
        idx = torch.linspace(0, len(keep) - 1, max_notes).round().long().tolist()
        keep = [keep[i] for i in idx]
    sr = 16_000
    x = audio[keep]
    if seconds is not None:
        x = x[:, : int(round(seconds * sr))]
    ex = [examples[i] for i in keep]
    desc = {"kind": "synthetic_nsynth", "preset": preset, "seed": seed, "families": list(families or []),
            "pitch_range": list(pitch_range), "velocities": list(velocities or []), "seconds": seconds,
            "max_notes": max_notes, "notes": len(keep), "sr": sr}
    return NoteData(x.float().contiguous(), torch.tensor([e.pitch for e in ex]),
                    torch.tensor([e.instrument for e in ex]), sr, desc)


LESSON_DATA = dict(preset="fast", families=("keyboard", "mallet", "organ", "guitar"), seconds=1.0,
                   pitch_range=(48, 84))
"""The notes Lesson 03's shipped checkpoints are trained on (a slice of the fast mini-NSynth)."""
