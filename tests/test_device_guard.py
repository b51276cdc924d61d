"""The CPU-only device guard (course_lib.runtime.device_guard) and the course's code paths run through it.

The CPU plays an Apple-MPS-like accelerator: every op that mixes device and CPU tensors, creates a
float64/complex128 tensor on the device, or reads a device tensor into NumPy fails with a
``DeviceGuardError``. Each test below runs one code path on the fake device and checks that its
result is on the device and equals the CPU result (same computation, so tight tolerances).
"""

from __future__ import annotations


import pytest
import torch

from course_lib import spectral, synth, tsm
from course_lib.runtime.device_guard import DeviceGuardError, FakeDevice, on_fake_device

SR = 16000
DEV = "mps"


def _on_device_and_close(fn, *, atol: float = 1e-5):
    """``fn(device)`` under the guard on the fake device and plainly on the CPU; results must agree."""
    torch.manual_seed(0)
    ref = fn("cpu")
    with FakeDevice(DEV):
        torch.manual_seed(0)
        out = fn(DEV)
        assert on_fake_device(out), "the result did not stay on the device"
        out = out.cpu()
    torch.testing.assert_close(out, ref, atol=atol, rtol=1e-4)
    return ref


# -- the guard itself ----------------------------------------------------------------------------

def test_guard_catches_mixing_float64_numpy_and_cpu_generators():
    with FakeDevice(DEV):
        x = torch.randn(8).to(DEV)
        assert x.device.type == DEV and on_fake_device(x) and x.is_mps
        with pytest.raises(DeviceGuardError, match="mixes"):
            x + torch.ones(8)
        with pytest.raises(DeviceGuardError, match="float64"):
            torch.zeros(3, dtype=torch.float64, device=x.device)
        with pytest.raises(DeviceGuardError, match="complex128"):
            x.to(torch.complex128)
        with pytest.raises(DeviceGuardError, match="NumPy"):
            x.numpy()
        with pytest.raises(DeviceGuardError, match="CPU generator"):
            torch.rand(3, generator=torch.Generator().manual_seed(0), device=DEV)
        device_gen = torch.Generator(device=DEV).manual_seed(0)
        assert on_fake_device(torch.rand(3, generator=device_gen, device=DEV))
        with pytest.raises(DeviceGuardError, match="made on the device"):
            torch.rand(3, generator=device_gen)
        layer = torch.nn.Linear(8, 2)
        with pytest.raises(DeviceGuardError, match="mixes"):
            layer(x)


def test_guard_lets_correct_device_code_through():
    with FakeDevice(DEV):
        cpu = torch.ones(4)
        x = cpu.to(DEV)
        assert not on_fake_device(cpu) and on_fake_device(x)
        y = x * 2 + torch.tensor(1.0)  # a 0-dim CPU tensor may join, as on CUDA
        assert on_fake_device(y) and not on_fake_device(y.cpu())
        assert y.cpu().numpy().tolist() == [3.0] * 4
        layer = torch.nn.Linear(4, 2).to(DEV)
        loss = layer(y).square().sum()
        loss.backward()
        assert on_fake_device(layer.weight) and on_fake_device(layer.weight.grad)
        torch.optim.Adam(layer.parameters(), lr=1e-3).step()
        x64 = torch.zeros(3, dtype=torch.float64)  # float64 on the CPU is fine
        assert x64.dtype == torch.float64 and not on_fake_device(x64)


# -- Lesson 01: synthesis ------------------------------------------------------------------------

SYNTH_CASES = {
    "sine": lambda d: synth.sine(torch.tensor([220.0, 330.0], device=d), 0.05, SR),
    "sawtooth": lambda d: synth.sawtooth(220.0, 0.05, SR, device=d),
    "oscillator_square": lambda d: synth.oscillator("square", torch.tensor([220.0], device=d), 0.05, SR),
    "oscillator_triangle": lambda d: synth.oscillator("triangle", torch.tensor([220.0], device=d), 0.05, SR),
    "vibrato": lambda d: synth.vibrato(440.0, 5.0, 30.0, 0.05, SR, device=d),
    "adsr": lambda d: synth.adsr(0.01, 0.01, 0.5, 0.01, 0.03, 0.05, SR, device=d),
    "tremolo": lambda d: synth.tremolo(synth.sine(220.0, 0.05, SR, device=d), 5.0, 0.5, SR),
    "harmonic_tone": lambda d: synth.harmonic_tone(220.0, 0.05, SR, device=d),
    "bell": lambda d: synth.bell(220.0, 0.05, SR, device=d),
    "fm2": lambda d: synth.fm2(220.0, 2.0, 1.5, 0.05, SR, device=d),
    "fm_operators": lambda d: synth.fm_operators("y", [1, 2, 3, 1.5], [1, 1, 1, 1], 220.0, 0.05, SR, device=d),
    "noise": lambda d: synth.noise(0.05, SR, color="pink", seed=1, device=d),
    "biquad": lambda d: synth.biquad(synth.sawtooth(110.0, 0.05, SR, device=d), "lowpass", 1000.0, 2.0, SR),
    "ladder": lambda d: synth.ladder(synth.sawtooth(110.0, 0.05, SR, device=d), 1000.0, 0.5, SR),
    "ladder_swept": lambda d: synth.ladder(
        synth.sawtooth(110.0, 0.05, SR, device=d), torch.linspace(300, 3000, 800, device=d)[None], 0.5, SR),
    "subtractive_voice": lambda d: synth.subtractive_voice(110.0, 0.05, SR, filter_env_amount=1.0, device=d),
    "wavetable_osc": lambda d: synth.wavetable_osc(synth.basic_tables(256).to(d), 220.0, 0.05, SR, position=0.5),
    "karplus_strong": lambda d: synth.karplus_strong(220.0, 0.05, SR, seed=3, device=d),
    "waveguide_string": lambda d: synth.waveguide_string(220.0, 0.05, SR, device=d),
    "granulate": lambda d: synth.granulate(synth.sine(220.0, 0.1, SR, device=d), SR, 0.05, seed=2, device=d),
    "sampler": lambda d: synth.Sampler(synth.sine(220.0, 0.1, SR)[0], SR, device=d).notes([60, 67], 0.03),
}


@pytest.mark.parametrize("name", sorted(SYNTH_CASES))
def test_synthesis_runs_on_a_device(name):
    _on_device_and_close(SYNTH_CASES[name], atol=1e-4)


def test_filter_design_and_responses_stay_on_the_cpu_in_float64():
    """Filter design and frequency responses are analysis (plots): float64 on the CPU whatever the device."""
    with FakeDevice(DEV):
        fc = torch.tensor([1000.0], device=DEV)
        b, a = synth.biquad_coefficients("lowpass", fc, 2.0, SR)
        h = synth.frequency_response(b, a, torch.tensor([0.0, 1000.0, 7999.0], device=DEV), SR)[0]
        ladder = synth.ladder_response(torch.tensor([0.0, 1000.0]), fc, 0.0, SR)
    assert b.dtype == torch.float64 and not on_fake_device(b) and not on_fake_device(h)
    assert abs(h[0]) == pytest.approx(1.0, abs=1e-9) and abs(h[1]) == pytest.approx(2.0, rel=1e-6)  # |H(fc)| = Q
    assert abs(h[2]) < 1e-3 and abs(ladder[0, 0]) == pytest.approx(1.0, abs=1e-6)


# -- Lesson 02: time-scale modification ----------------------------------------------------------

@pytest.mark.parametrize("method", sorted(tsm.METHODS))
def test_tsm_runs_on_a_device(method):
    def run(d):
        x = synth.sawtooth(200.0, 0.3, SR, device=d) * 0.5
        return tsm.time_stretch(x, SR, 1.25, method=method)

    _on_device_and_close(run, atol=1e-4)


def test_pitch_shift_runs_on_a_device():
    _on_device_and_close(lambda d: tsm.pitch_shift(synth.sawtooth(200.0, 0.3, SR, device=d), SR, 3.0,
                                                   method="tdpsola"), atol=1e-4)


# -- spectral ------------------------------------------------------------------------------------

def test_spectral_runs_on_a_device():
    x = lambda d: synth.sawtooth(220.0, 0.2, SR, device=d)  # noqa: E731
    _on_device_and_close(lambda d: spectral.log_mel(x(d)))
    _on_device_and_close(lambda d: spectral.griffin_lim(spectral.stft(x(d), 256, 64).abs(), 256, 64, n_iter=4))
    _on_device_and_close(lambda d: spectral.audio_to_logmag_if(x(d), 256, 64)[0])
    # IF is unwrapped in float32 off the CPU: values may differ by a whole turn (2 in units of pi)
    ref_if = spectral.audio_to_logmag_if(x("cpu"), 256, 64)[1]
    with FakeDevice(DEV):
        dev_if = spectral.audio_to_logmag_if(x(DEV), 256, 64)[1].cpu()
    turn = torch.remainder(dev_if - ref_if + 1.0, 2.0) - 1.0
    assert turn.abs().max() < 1e-3
    _on_device_and_close(lambda d: spectral.logmag_if_to_audio(*spectral.audio_to_logmag_if(x(d), 256, 64), 256, 64),
                         atol=1e-4)


# -- models: forward passes on the device ----------------------------------------------------------

def test_model_forward_passes_run_on_a_device():
    from course_lib.models import istft_vocoder, melgan, stylegan2, wavenet

    def forward(d):
        torch.manual_seed(0)
        cfg = stylegan2.StyleGAN2Config()
        G, D = stylegan2.Generator(cfg).to(d), stylegan2.Discriminator(cfg).to(d)
        img = G(torch.randn(2, cfg.z_dim).to(d), noise_mode="const")
        voc = melgan.MelGANGenerator(melgan.MelGANConfig()).to(d)
        audio = voc(torch.randn(1, 80, 8).to(d))
        msd = melgan.MultiScaleDiscriminator().to(d)(audio)
        ist = istft_vocoder.ISTFTVocoder(istft_vocoder.ISTFTVocoderConfig()).to(d)(torch.randn(1, 80, 8).to(d))
        wn = wavenet.WaveNet(wavenet.WaveNetConfig()).to(d)(torch.randint(0, 256, (1, 100)).to(d))
        return torch.cat([D(img).flatten(), img.flatten()[:500], audio.flatten()[:500], msd[0][-1].flatten()[:50],
                          ist.flatten()[:500], wn.flatten()[:500]])

    _on_device_and_close(forward, atol=1e-4)
    _on_device_and_close(lambda d: melgan.griffin_lim_vocoder(torch.randn(1, 80, 8).to(d), n_iter=2), atol=1e-4)


def test_models_built_on_a_device_equal_the_moved_cpu_models():
    from course_lib.models import melgan, stylegan2

    cfg = stylegan2.StyleGAN2Config()
    with FakeDevice(DEV):
        for make in (lambda **kw: stylegan2.Generator(cfg, **kw), lambda **kw: stylegan2.Discriminator(cfg, **kw),
                     lambda **kw: melgan.MelGANGenerator(melgan.MelGANConfig(), **kw)):
            torch.manual_seed(5)
            built = make(device=DEV)
            torch.manual_seed(5)
            moved = make().to(DEV)
            pairs = list(zip(built.state_dict().values(), moved.state_dict().values()))
            assert all(on_fake_device(a) for a, _ in pairs)
            assert all(torch.equal(a.cpu(), b.cpu()) for a, b in pairs)


def test_guard_catches_cpu_latents_fed_to_a_device_generator():
    """Lesson 05's bug (issue 19): a generator trained on the GPU fed latents made on the CPU."""
    from course_lib.models import stylegan2

    cfg = stylegan2.StyleGAN2Config()
    with FakeDevice(DEV):
        G = stylegan2.Generator(cfg).to(DEV)
        with pytest.raises(DeviceGuardError, match="mixes"):
            G.mapping(torch.randn(2, cfg.z_dim))


def test_gansynth_and_ddsp_run_on_a_device():
    from course_lib.models import ddsp, gansynth

    def gansynth_images(d):
        m = gansynth.GANSynth(gansynth.GANSynthConfig()).to(d)
        images = m.generate_images([60, 64], m.sample_latents(2, seed=0, device=d))
        return torch.cat([images.flatten(), m.discriminator(images)[0].flatten()])

    _on_device_and_close(gansynth_images, atol=1e-4)

    def gansynth_audio(d):  # image -> audio inverts in float32 off the CPU (float64 on it)
        m = gansynth.GANSynth(gansynth.GANSynthConfig()).to(d)
        return m.images_to_audio(m.generate_images([60], m.sample_latents(1, seed=0, device=d)))

    _on_device_and_close(gansynth_audio, atol=2e-3)

    def ddsp_step(d):
        torch.manual_seed(0)
        m = ddsp.DDSP(device=d)
        f0, loud = torch.full((1, 40), 220.0).to(d), torch.full((1, 40), -30.0).to(d)
        y = m(f0, loud, 40 * 64, seed=0)
        m.loss(y.detach() * 0.5, f0, loud).backward()
        grad = next(p.grad for p in m.parameters() if p.grad is not None)
        return torch.cat([y.flatten(), grad.flatten()[:100]])

    _on_device_and_close(ddsp_step, atol=1e-4)


# -- timing --------------------------------------------------------------------------------------

def test_stopwatch_measures_and_synchronises_the_device(monkeypatch):
    import time

    from course_lib.runtime import timing

    with timing.Stopwatch("cpu") as sw:
        time.sleep(0.05)
    assert 0.05 <= sw.seconds < 1.0
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(time.perf_counter()))
    with timing.Stopwatch("cuda") as sw:
        time.sleep(0.02)
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.02  # once before the start, once before the stop
    assert sw.seconds >= 0.02


# -- Lesson 05's generation path --------------------------------------------------------------------

def test_stylegan2_generation_and_vocoders_keep_devices_apart():
    """A generator and a MelGAN on the device, the course's iSTFT vocoder and loop classifier on the CPU."""
    from course_lib.hw2 import loop_vocoder
    from course_lib.models import melgan, stylegan2
    from course_lib.models.classifiers import load_loop_classifier

    spec = stylegan2.MelImageSpec()
    cfg = stylegan2.StyleGAN2Config(image_size=spec.size)
    course_vocoder = loop_vocoder(None, loop_samples=spec.loop_samples)  # CPU
    clf = load_loop_classifier()  # CPU

    def run(d):
        torch.manual_seed(0)
        G = stylegan2.Generator(cfg, device=d).eval()
        voc = melgan.MelGANGenerator(melgan.MelGANConfig(), device=d).eval()
        mels = stylegan2.generate_mels(G, spec, 2, seed=3)
        with_melgan = stylegan2.generate_audio(G, spec, 2, vocoder=voc, seed=0)
        with_gl = stylegan2.generate_audio(G, spec, 2, vocoder=lambda m: melgan.griffin_lim_vocoder(
            m, spec.mel, spec.loop_samples, n_iter=2), seed=0)
        course = course_vocoder(mels)[:, : spec.loop_samples]
        probs = clf.predict_proba(course)
        assert not any(on_fake_device(t) for t in (with_melgan, with_gl, course, probs))  # audio comes back on the CPU
        return torch.cat([mels.cpu().flatten()[:1000], with_melgan.flatten()[:1000], with_gl.flatten()[:1000],
                          course.flatten()[:1000], probs.flatten()]).to(d)

    _on_device_and_close(run, atol=1e-4)


# -- HW2's generation and the metrics that grade it ---------------------------------------------------

def test_hw2_generation_and_the_metrics_run_on_a_device(monkeypatch):
    """The shipped loop generator through ``hw2.generate_loops`` and ``metrics.evaluate`` with the loop
    classifier on the device: same loops, same FD / IS / NDB as on the CPU, every result back on the CPU."""
    import numpy as np

    from course_lib.hw2 import generate_loops
    from course_lib.metrics import evaluate as evaluate_module
    from course_lib.metrics.evaluate import build_reference, evaluate
    from course_lib.models.classifiers import load_loop_classifier
    from course_lib.models.stylegan2 import GENERATOR_ASSET

    def run(d):
        loops = generate_loops(GENERATOR_ASSET, 16, seed=2, vocoder="griffin_lim", device=d)
        clf = load_loop_classifier(device=d)
        ref = build_reference(loops[:8], embedder=clf, device=d)
        res = evaluate(loops[8:], ref, classifier=clf, device=d, seed=0, prdc_k=3)
        assert not on_fake_device(loops) and isinstance(res.fad, float)
        return loops, np.array([res.fad, res.is_mean, res.precision, res.recall])

    cpu_loops, cpu_figures = run("cpu")
    monkeypatch.setattr(evaluate_module, "pick_device", lambda prefer=None: torch.device(prefer or "cpu"))  # no real MPS
    with FakeDevice(DEV):
        loops, figures = run(DEV)
    torch.testing.assert_close(loops, cpu_loops, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(figures, cpu_figures, rtol=1e-3, atol=1e-3)
