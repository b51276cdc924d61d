"""The course's one training loop (``course_lib.runtime.loop.run_steps``) and the trainers that run on it."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.runtime import loop as loop_mod
from course_lib.runtime.loop import run_steps


def _recorder():
    calls: list[tuple[int, bool]] = []

    def train_step(step: int, log: bool) -> dict:
        calls.append((step, log))
        return {"loss": float(step)}

    return calls, train_step


def test_steps_run_in_order_from_the_resumed_step_and_log_every_kth_and_the_last():
    calls, train_step = _recorder()
    seen = []
    run = run_steps(train_step, 3, 10, log_every=4, progress=False,
                    after_step=lambda done, logs: seen.append((done, logs["loss"])))
    assert [s for s, _ in calls] == list(range(3, 10))
    # log on done = 4 and 8 (every 4th step counted from 0) and on the last step (done = 10)
    assert [s + 1 for s, log in calls if log] == [4, 8, 10]
    assert seen == [(d, float(d - 1)) for d in range(4, 11)]
    assert (run.start, run.step, run.stopped_by) == (3, 10, None)


def test_a_spent_time_budget_makes_the_next_step_the_last_and_logged():
    calls, train_step = _recorder()
    run = run_steps(train_step, 0, 100, log_every=50, max_seconds=0.0, progress=False)
    assert calls == [(0, True)]  # every call with steps left makes one step, and logs it
    assert (run.step, run.stopped_by) == (1, "time")


def test_after_step_returning_true_stops_there():
    calls, train_step = _recorder()
    run = run_steps(train_step, 0, 100, progress=False, after_step=lambda done, logs: done == 5)
    assert len(calls) == 5 and (run.step, run.stopped_by) == (5, "hook")


def test_agree_decides_the_stop_for_every_process():
    calls, train_step = _recorder()
    asked = []

    def agree(out_of_time: bool) -> bool:  # e.g. rank 0 says its budget is spent at the third step
        asked.append(out_of_time)
        return len(asked) == 3

    run = run_steps(train_step, 0, 10, log_every=100, max_seconds=1e9, agree=agree, progress=False)
    assert asked == [False, False, False]
    assert calls == [(0, False), (1, False), (2, True)] and run.stopped_by == "time"


def test_no_steps_left_runs_nothing_and_bad_log_every_is_refused():
    calls, train_step = _recorder()
    run = run_steps(train_step, 5, 5, progress=False)
    assert calls == [] and run.step == 5 and run.stopped_by is None
    with pytest.raises(ValueError, match="log_every"):
        run_steps(train_step, 0, 5, log_every=0, progress=False)


def test_progress_bar_shows_the_postfix_and_closes(capsys):
    calls, train_step = _recorder()
    run_steps(train_step, 0, 3, progress=True, desc="demo", postfix=lambda done, logs: {"loss": logs["loss"]})
    err = capsys.readouterr().err
    assert "demo" in err and "loss=2" in err


# --------------------------------------------------------------------------- every trainer runs on it

@pytest.fixture
def spy(monkeypatch):
    """Counts the steps each trainer runs through ``run_steps`` (patched where each module imported it)."""
    ran: dict[str, list[tuple[int, int]]] = {}
    original = loop_mod.run_steps

    def patch(module, name: str) -> None:
        def wrapped(train_step, start, steps, **kw):
            run = original(train_step, start, steps, **kw)
            ran.setdefault(name, []).append((start, run.step))
            return run

        monkeypatch.setattr(module, "run_steps", wrapped)

    from course_lib.metrics import train_classifier
    from course_lib.train import gan, gansynth, vocoder

    for module, name in ((loop_mod, "fit"), (gan, "gan"), (gansynth, "gansynth"), (vocoder, "vocoder"),
                         (train_classifier, "classifier")):
        patch(module, name)
    return ran


def _tones(n: int, samples: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    t = torch.arange(samples) / 16000
    return 0.5 * torch.sin(2 * math.pi * (100 + 900 * torch.rand(n, 1, generator=g)) * t)


def test_every_trainer_steps_through_run_steps(spy):
    from course_lib.metrics.train_classifier import build_model, fit as fit_classifier
    from course_lib.models.gansynth import GANSynth, GANSynthConfig
    from course_lib.models.gansynth_repr import ImageNormalizer, SpecImageConfig, audio_to_image
    from course_lib.runtime.loop import fit
    from course_lib.spectral import MelConfig
    from course_lib.synth.core import midi_to_hz
    from course_lib.synth.oscillators import sawtooth
    from course_lib.train.gan import get_config, train_gan
    from course_lib.train.gansynth import GANSynthTrainer, TrainConfig
    from course_lib.train.vocoder import get_config as vocoder_config, train_vocoder

    net = torch.nn.Linear(4, 1)
    fit(net, torch.optim.SGD(net.parameters(), lr=0.1), lambda s, g: torch.randn(8, 4, generator=g),
        lambda m, b: m(b).square().mean(), 3, progress=False)
    tiny = dict(mel=MelConfig(n_mels=16).to_dict(), progress=False, log_every=1, batch_size=2,
                arch=dict(n_up=3, channels=(8, 8, 8, 8), z_dim=16, w_dim=16, mapping_layers=2, mbstd_group=0))
    train_gan(get_config("stylegan2", "fast", steps=2, **tiny), data=_tones(4, 32000))
    train_vocoder(vocoder_config("fast", progress=False, steps=2, valid_every=2), train_audio=_tones(4, 8000),
                  valid_audio=_tones(2, 8000))
    model = build_model("loops", {"channels": (8, 8), "emb_dim": 16, "dropout": 0.0}, ["a", "b"])
    fit_classifier(model, _tones(6, 16000), torch.arange(6) % 2, epochs=2, batch_size=3, lr=1e-2)
    spec = SpecImageConfig("if", 16000, 64, 32)  # 32 x 32 images
    pitches = torch.tensor([48, 55, 60, 67] * 2)
    raw = audio_to_image(sawtooth(midi_to_hz(pitches), spec.samples / 16000, 16000) * 0.5, spec)
    norm = ImageNormalizer.fit(raw, spec)
    gansynth = GANSynth(GANSynthConfig(spec=spec.to_dict(), n_stages=1, channels=(8,), latent_dim=8), norm, seed=0)
    GANSynthTrainer(gansynth, norm.normalize(raw), pitches, TrainConfig(steps_per_stage=(3,), batch_size=4)).train(
        progress=False)
    assert spy == {"fit": [(0, 3)], "gan": [(0, 2)], "vocoder": [(0, 2)], "classifier": [(0, 4)],
                   "gansynth": [(0, 3)]}
