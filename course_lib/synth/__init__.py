"""DSP synthesis as batched tensors ``(batch, samples)`` (Lesson 01).

Every function takes its parameters as numbers, per-voice ``(batch,)`` tensors or per-sample
``(batch, samples)`` control signals, a sample rate in Hz and a ``device``; randomness takes a
``seed``. One module per technique:

==================  ============================================================
``oscillators``     sine, sawtooth, square, triangle (band-limited: additive or PolyBLEP), noise
``envelopes``       ADSR, LFO, vibrato, tremolo
``filters``         RBJ biquads (static or swept cutoff), 4-pole ladder, responses
``subtractive``     a complete subtractive patch (oscillator -> filter -> amp)
``additive``        sums of partials, harmonic tones, Risset bell
``fm``              2-operator FM / PM, DX7-style operator algorithms, Bessel sidebands
``wavetable``       single-cycle tables and a morphing wavetable oscillator
``physical``        Karplus-Strong, digital waveguide string
``granular``        grain clouds from any sample
``sampler``         repitching a recorded note
``drums``           kick, snare, hats, clap, toms and random kits
``formant``         speech-like vowels (glottal source + formant resonators)
``midi``            pretty_midi to audio with these voices, or FluidSynth
``analysis``        measurements: spectral peak pitch, partial amplitudes, aliasing
==================  ============================================================

Module names are kept free (``course_lib.synth.additive`` is the module; its ``additive``
function is not re-exported here, so the two never shadow each other).
"""

from course_lib.synth.additive import bell, harmonic_tone
from course_lib.synth.core import hz_to_midi, midi_to_hz
from course_lib.synth.drums import GM_DRUM_NOTES, DrumKit, clap, hihat, kick, snare, tom
from course_lib.synth.envelopes import adsr, lfo, tremolo, vibrato
from course_lib.synth.filters import biquad, biquad_coefficients, frequency_response, ladder, ladder_response
from course_lib.synth.fm import ALGORITHMS as FM_ALGORITHMS
from course_lib.synth.fm import bessel_sideband_amplitudes, fm2, fm_operators
from course_lib.synth.formant import FORMANTS, vowel
from course_lib.synth.granular import granulate
from course_lib.synth.midi import find_soundfont, fluidsynth_available, render_midi
from course_lib.synth.oscillators import noise, oscillator, sawtooth, sine, square, triangle
from course_lib.synth.physical import karplus_strong, waveguide_string
from course_lib.synth.sampler import Sampler, repitch
from course_lib.synth.subtractive import subtractive_voice
from course_lib.synth.wavetable import basic_tables, wavetable_from_harmonics, wavetable_osc

__all__ = [
    "bell", "harmonic_tone", "hz_to_midi", "midi_to_hz", "GM_DRUM_NOTES", "DrumKit", "clap", "hihat",
    "kick", "snare", "tom", "adsr", "lfo", "tremolo", "vibrato", "biquad", "biquad_coefficients",
    "frequency_response", "ladder", "ladder_response", "FM_ALGORITHMS", "bessel_sideband_amplitudes", "fm2",
    "fm_operators", "FORMANTS", "vowel", "granulate", "find_soundfont", "fluidsynth_available", "render_midi",
    "noise", "oscillator", "sawtooth", "sine", "square", "triangle", "karplus_strong", "waveguide_string",
    "Sampler", "repitch", "subtractive_voice", "basic_tables", "wavetable_from_harmonics", "wavetable_osc",
]
