"""MIDI -> audio (Lesson 01): render a MIDI file with the course's own synths, or with FluidSynth.

Two back ends:

* ``"dsp"``: every note is played by one of the course's voices, chosen from the General-MIDI
  program family of its track (``DEFAULT_VOICE_FOR_FAMILY``: pianos -> FM ``keys``, guitars ->
  Karplus-Strong ``pluck``, basses and leads -> subtractive, organs -> additive, pads -> a slow
  additive ``pad``); drum tracks (MIDI channel 10) go through a :class:`~course_lib.synth.drums.DrumKit`.
  Note-on/off times give the note duration, velocity the gain (``velocity_to_gain``). Notes of
  the same voice and (10 ms-rounded) length are rendered together as one batch.
* ``"fluidsynth"``: the ``fluidsynth`` program with a General-MIDI SoundFont (``.sf2``): sampled
  instruments, the way the lecture's ``midi2audio`` renders MIDI.

Pitch bends and controllers are ignored by the ``"dsp"`` back end.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import numpy as np
import pretty_midi
import soundfile as sf
import torch
import torchaudio.functional as AF

from course_lib import DEFAULT_SR
from course_lib.synth.additive import additive, harmonic_tone
from course_lib.synth.core import midi_to_hz, n_samples, resolve_device
from course_lib.synth.drums import GM_DRUM_NOTES, DrumKit
from course_lib.synth.envelopes import adsr
from course_lib.synth.fm import fm2
from course_lib.synth.physical import karplus_strong
from course_lib.synth.subtractive import subtractive_voice

Device = Union[str, torch.device, None]
MidiLike = Union[pretty_midi.PrettyMIDI, str, Path]
VoiceFn = Callable[[torch.Tensor, float, float, int, torch.device, int], torch.Tensor]

#: Standard places of a General-MIDI SoundFont (Debian/Ubuntu ``fluid-soundfont-gm``, Arch, Homebrew).
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
_INSTALL_HINT = (
    "install it with `sudo apt-get install fluidsynth fluid-soundfont-gm` (Debian/Ubuntu), "
    "`brew install fluid-synth` (macOS) or `conda install -c conda-forge fluidsynth`, "
    "or use backend='dsp'"
)

#: General-MIDI program family (program // 8) -> voice name.
DEFAULT_VOICE_FOR_FAMILY: dict[int, str] = {
    0: "keys",     # pianos
    1: "mallet",   # chromatic percussion (celesta, glockenspiel, vibraphone, marimba...)
    2: "organ",    # organs
    3: "pluck",    # guitars
    4: "bass",     # basses
    5: "pad",      # strings
    6: "pad",      # ensembles, choirs
    7: "lead",     # brass
    8: "lead",     # reeds
    9: "organ",    # pipes, flutes
    10: "lead",    # synth leads
    11: "pad",     # synth pads
    12: "pad",     # synth effects
    13: "pluck",   # ethnic (sitar, banjo, shamisen, koto...)
    14: "mallet",  # percussive (steel drums, woodblock, ...)
    15: "pad",     # sound effects
}

# ------------------------------------------------------------------------------------------
# voices: f(f0 (B,) Hz, note_duration s, duration s, sr, device, seed) -> (B, n_samples(duration))


def _gate(note_duration: float, release: float, duration: float, sr: int, batch: int,
          device: torch.device) -> torch.Tensor:
    """1 until note-off, then a linear fade to 0 over ``release`` s -> ``(batch, samples)``."""
    return adsr(0.0, 0.0, 1.0, release, note_duration, duration, sr, batch=batch, device=device)


def _keys(f0, note_dur, dur, sr, dev, seed):
    """Electric-piano-like FM: carrier = modulator frequency, index decaying from 3."""
    b = f0.shape[0]
    t = torch.arange(n_samples(dur, sr), device=dev, dtype=torch.float32)[None, :] / sr
    index_env = torch.exp(-t / 0.25).expand(b, -1)
    y = fm2(f0, 1.0, 3.0, dur, sr, index_envelope=index_env, device=dev)
    return y * adsr(0.003, 1.2, 0.25, RELEASE["keys"], note_dur, dur, sr, batch=b, device=dev)


def _mallet(f0, note_dur, dur, sr, dev, seed):
    """Marimba-like: partials 1 : 3.9 : 9.2, the upper ones dying fast."""
    b = f0.shape[0]
    ratios = torch.tensor([1.0, 3.9, 9.2], device=dev)
    keep = (f0[:, None] * ratios[None, :] < 0.45 * sr).float()  # drop partials above Nyquist
    amps = torch.tensor([1.0, 0.35, 0.12], device=dev)[None, :] * keep
    y = additive(f0, dur, sr, amplitudes=amps, ratios=ratios.expand(b, -1),
                 decays=torch.tensor([4.0, 12.0, 30.0], device=dev), device=dev)
    return y * adsr(0.002, 0.0, 1.0, RELEASE["mallet"], note_dur, dur, sr, batch=b, device=dev)


def _organ(f0, note_dur, dur, sr, dev, seed):
    """Drawbar organ: harmonics 1, 2, 3, 4, 6, 8 at fixed levels."""
    b = f0.shape[0]
    ratios = torch.tensor([1.0, 2.0, 3.0, 4.0, 6.0, 8.0], device=dev)
    keep = (f0[:, None] * ratios[None, :] < 0.45 * sr).float()
    amps = torch.tensor([1.0, 0.6, 0.4, 0.25, 0.15, 0.1], device=dev)[None, :] * keep
    y = additive(f0, dur, sr, amplitudes=amps, ratios=ratios.expand(b, -1), device=dev) / 2.5
    return y * adsr(0.01, 0.0, 1.0, RELEASE["organ"], note_dur, dur, sr, batch=b, device=dev)


def _pluck(f0, note_dur, dur, sr, dev, seed):
    """Karplus-Strong string, damped at note-off."""
    b = f0.shape[0]
    y = karplus_strong(f0, dur, sr, t60=2.0, brightness=0.6, seed=seed, device=dev)
    return y * _gate(note_dur, RELEASE["pluck"], dur, sr, b, dev)


def _bass(f0, note_dur, dur, sr, dev, seed):
    return 0.8 * subtractive_voice(f0, dur, sr, wave="saw", cutoff_hz=500.0, resonance=0.3, filter_env_amount=2.0,
                                   attack=0.005, decay=0.25, sustain=0.6, release=RELEASE["bass"],
                                   note_duration=note_dur, seed=seed, device=dev)


def _lead(f0, note_dur, dur, sr, dev, seed):
    return 0.8 * subtractive_voice(f0, dur, sr, wave="saw", cutoff_hz=1500.0, resonance=0.2, filter_env_amount=1.5,
                                   attack=0.01, decay=0.15, sustain=0.8, release=RELEASE["lead"],
                                   note_duration=note_dur, seed=seed, device=dev)


def _pad(f0, note_dur, dur, sr, dev, seed):
    """Soft additive pad: 8 harmonics (1 / k**1.5), slow attack, long release."""
    b = f0.shape[0]
    n_harm = max(1, min(8, int(0.45 * sr / float(f0.max()))))
    y = harmonic_tone(f0, dur, sr, n_harmonics=n_harm, rolloff=1.5, device=dev)
    return 0.8 * y * adsr(0.12, 0.3, 0.8, RELEASE["pad"], note_dur, dur, sr, batch=b, device=dev)


#: voice name -> render function ``f(f0 (B,), note_duration, duration, sr, device, seed) -> (B, samples)``.
VOICES: dict[str, VoiceFn] = {
    "keys": _keys, "mallet": _mallet, "organ": _organ, "pluck": _pluck,
    "bass": _bass, "lead": _lead, "pad": _pad,
}
#: release tail (seconds after note-off) rendered for each voice.
RELEASE: dict[str, float] = {
    "keys": 0.3, "mallet": 0.5, "organ": 0.05, "pluck": 0.08, "bass": 0.1, "lead": 0.1, "pad": 0.4,
}
#: highest f0 (as a fraction of sr) a voice can play; higher notes fall back to ``organ``.
_MAX_F0 = {"pluck": 0.25}


def velocity_to_gain(velocity: Union[int, float]) -> float:
    """MIDI velocity 0..127 -> linear gain ``(velocity / 127) ** 2`` (about 40 dB of dynamic range)."""
    if not 0 <= velocity <= 127:
        raise ValueError(f"MIDI velocity must be in [0, 127], got {velocity}")
    return (float(velocity) / 127.0) ** 2


# ------------------------------------------------------------------------------------------
# helpers


def _load_midi(midi: MidiLike) -> pretty_midi.PrettyMIDI:
    if isinstance(midi, pretty_midi.PrettyMIDI):
        return midi
    path = Path(midi)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such MIDI file")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # pretty_midi/mido raise many kinds of errors for bad files
        raise ValueError(f"{path}: not a readable MIDI file ({type(exc).__name__}: {exc})") from exc


def _voice_chooser(voice_for_program) -> Callable[[int], str]:
    def default(program: int) -> str:
        return DEFAULT_VOICE_FOR_FAMILY[program // 8]

    if voice_for_program is None:
        choose = default
    elif callable(voice_for_program):
        choose = voice_for_program
    elif isinstance(voice_for_program, Mapping):
        table = dict(voice_for_program)

        def choose(program: int) -> str:
            return table.get(program, default(program))
    else:
        raise ValueError("voice_for_program must be None, a callable or a dict, "
                         f"got {type(voice_for_program).__name__}")

    def checked(program: int) -> str:
        name = choose(program)
        if name not in VOICES:
            raise ValueError(f"voice_for_program gave unknown voice {name!r} for program {program}; "
                             f"known voices: {sorted(VOICES)}")
        return name

    return checked


def fluidsynth_available() -> bool:
    """Whether the ``fluidsynth`` command-line program is on the PATH."""
    return shutil.which("fluidsynth") is not None


def find_soundfont(soundfont: Union[str, Path, None] = None) -> Optional[Path]:
    """The SoundFont to use: ``soundfont`` if given (must exist), else the first of ``SOUNDFONT_PATHS`` found."""
    if soundfont is not None:
        path = Path(soundfont)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: SoundFont not found")
        return path
    for candidate in SOUNDFONT_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


# ------------------------------------------------------------------------------------------
# rendering


def _render_dsp(pm: pretty_midi.PrettyMIDI, sr: int, drum_kit: Optional[DrumKit], voice_for_program,
                dev: torch.device, gain: float, seed: int, max_batch: int = 32) -> torch.Tensor:
    choose = _voice_chooser(voice_for_program)
    kit = drum_kit if drum_kit is not None else DrumKit()
    groups: dict[tuple[str, float], list[tuple[int, float, float]]] = defaultdict(list)  # -> (onset, f0, gain)
    hits: dict[str, list[tuple[int, float]]] = defaultdict(list)
    unknown_drums: set[int] = set()
    skipped = 0
    for inst in pm.instruments:
        voice = None if inst.is_drum else choose(inst.program)
        for note in inst.notes:
            if note.velocity <= 0 or (note.end <= note.start and not inst.is_drum):
                continue
            onset = int(round(note.start * sr))
            g = gain * velocity_to_gain(note.velocity)
            if inst.is_drum:
                name = GM_DRUM_NOTES.get(note.pitch)
                if name is None:
                    unknown_drums.add(note.pitch)
                else:
                    hits[name].append((onset, g))
                continue
            f0 = float(midi_to_hz(note.pitch))
            v = voice
            if f0 > _MAX_F0.get(v, 0.45) * sr:
                v = "organ"
            if f0 > 0.45 * sr:
                skipped += 1
                continue
            length = max(0.01, round(note.end - note.start, 2))
            groups[(v, length)].append((onset, f0, g))
    if unknown_drums:
        warnings.warn(f"drum notes without a voice were skipped: {sorted(unknown_drums)}", stacklevel=3)
    if skipped:
        warnings.warn(f"{skipped} notes above 0.45 * sr = {0.45 * sr:.0f} Hz were skipped", stacklevel=3)

    rendered: list[tuple[int, torch.Tensor]] = []  # (onset, (samples,)) scaled
    for gi, ((voice, length), notes) in enumerate(sorted(groups.items())):
        dur = length + RELEASE[voice]
        for c0 in range(0, len(notes), max_batch):
            chunk = notes[c0 : c0 + max_batch]
            f0 = torch.tensor([f for _, f, _ in chunk], device=dev)
            y = VOICES[voice](f0, length, dur, sr, dev, seed + 1000 * gi + c0)
            for (onset, _, g), row in zip(chunk, y):
                rendered.append((onset, g * row))
    for name, name_hits in sorted(hits.items()):
        y = kit.render(name, 1.0, sr=sr, device=dev)
        rendered.extend((onset, g * y) for onset, g in name_hits)

    total = max([n_samples(pm.get_end_time(), sr)] + [o + r.shape[0] for o, r in rendered])
    out = torch.zeros(total, device=dev)
    for onset, row in rendered:
        out[onset : onset + row.shape[0]] += row
    return out


def _render_fluidsynth(pm: pretty_midi.PrettyMIDI, sr: int, soundfont, dev: torch.device, gain: float) -> torch.Tensor:
    if not fluidsynth_available():
        raise RuntimeError("backend='fluidsynth' needs the fluidsynth program, which is not installed: "
                           f"{_INSTALL_HINT}")
    sf2 = find_soundfont(soundfont)
    if sf2 is None:
        raise RuntimeError(f"no General-MIDI SoundFont found in {SOUNDFONT_PATHS}; pass soundfont=... or "
                           f"{_INSTALL_HINT}")
    render_sr = 44100
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        pm.write(str(mid))
        # -ni: no shell, no MIDI input; -O float: 32-bit float WAV, so nothing clips inside fluidsynth
        cmd = ["fluidsynth", "-ni", "-q", "-g", str(gain), "-r", str(render_sr), "-O", "float", "-T", "wav",
               "-F", str(wav), str(sf2), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not wav.exists():
            raise RuntimeError(f"fluidsynth failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        data, file_sr = sf.read(str(wav), dtype="float32", always_2d=True)
    y = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1))).to(dev)
    if file_sr != sr:
        y = AF.resample(y, file_sr, sr)
    return y


def render_midi(
    midi: MidiLike,
    sr: int = DEFAULT_SR,
    *,
    backend: str = "dsp",
    soundfont: Union[str, Path, None] = None,
    drum_kit: Optional[DrumKit] = None,
    voice_for_program: Union[Callable[[int], str], Mapping[int, str], None] = None,
    gain: float = 0.5,
    seed: int = 0,
    device: Device = None,
) -> torch.Tensor:
    """Render a MIDI file to mono audio.

    Args:
        midi: a ``pretty_midi.PrettyMIDI`` or the path of a ``.mid`` file.
        sr: output sample rate in Hz.
        backend: ``"dsp"`` (the course's synths, see module docstring) or ``"fluidsynth"``.
        soundfont: ``.sf2`` file for ``"fluidsynth"`` (default: :func:`find_soundfont`).
        drum_kit: kit for drum tracks (``"dsp"``; default ``DrumKit()``).
        voice_for_program: GM program (0..127) -> voice name (one of ``VOICES``), as a callable
            or a dict (missing programs use ``DEFAULT_VOICE_FOR_FAMILY``).
        gain: master gain (``"dsp"``: times ``velocity_to_gain`` per note; ``"fluidsynth"``: its ``-g``).
        seed: randomness of the voices (``"dsp"``): the same seed renders the same audio.
        device: torch device of the output (and of the ``"dsp"`` synthesis).

    Returns:
        ``(samples,)`` float32 at ``sr`` Hz, covering every note and its release; scaled down to
        a peak of 0.99 only if it would otherwise clip.

    Raises:
        FileNotFoundError: ``midi`` (or ``soundfont``) path does not exist.
        ValueError: unreadable MIDI file, unknown backend or voice name.
        RuntimeError: ``"fluidsynth"`` requested but the program or a SoundFont is missing.
    """
    if backend not in ("dsp", "fluidsynth"):
        raise ValueError(f"backend must be 'dsp' or 'fluidsynth', got {backend!r}")
    if sr <= 0:
        raise ValueError(f"sr must be > 0 Hz, got {sr}")
    if gain <= 0:
        raise ValueError(f"gain must be > 0, got {gain}")
    pm = _load_midi(midi)
    dev = resolve_device(device)
    if backend == "fluidsynth":
        y = _render_fluidsynth(pm, sr, soundfont, dev, gain)
    else:
        y = _render_dsp(pm, sr, drum_kit, voice_for_program, dev, gain, seed)
    peak = float(y.abs().max()) if y.numel() else 0.0
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.to(torch.float32)
