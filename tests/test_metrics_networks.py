"""VGGish (random weights: shapes, determinism, loader) and the course classifiers on a tiny stand-in task."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.metrics.embeddings import (embed_audio, load_vggish, n_vggish_patches, random_vggish,
                                           vggish_log_mel, vggish_patches)
from course_lib.metrics.pitch import pitch_accuracy
from course_lib.metrics.train_classifier import accuracy, fit
from course_lib.models.classifiers import (PitchClassifier, PitchConfig, ShortChunkCNN, ShortChunkConfig,
                                           load_classifier, log_frequency_filterbank, save_classifier)

SR = 16_000


def _tones(f0: torch.Tensor, seconds: float, seed: int, n_harm: int = 6) -> torch.Tensor:
    """Harmonic tones ``(len(f0), samples)`` with random harmonic amplitudes and phases (a stand-in data set)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    k = torch.arange(1, n_harm + 1, dtype=torch.float32)
    amps = torch.rand(len(f0), n_harm, generator=g) / k
    phases = 2 * math.pi * torch.rand(len(f0), n_harm, generator=g)
    arg = 2 * math.pi * f0[:, None, None] * k[None, :, None] * t[None, None, :] + phases[..., None]
    x = (amps[..., None] * torch.sin(arg) * (k[None, :, None] * f0[:, None, None] < SR / 2)).sum(1)
    return 0.5 * x / x.abs().amax(dim=1, keepdim=True)


# ----------------------------------------------------------------------------- VGGish

@pytest.fixture(scope="module")
def vggish0():
    return random_vggish(seed=0)


def test_vggish_log_mel_matches_numpy_framing_and_peak_band():
    f = 1000.0
    x = torch.sin(2 * math.pi * f * torch.arange(SR) / SR).unsqueeze(0)
    lm = vggish_log_mel(x, SR)
    assert lm.shape == (1, 1 + (SR - 400) // 160, 64)  # 25 ms windows, 10 ms hop, no padding
    # band centres on the HTK mel scale, 125..7500 Hz, 64 bands
    mel = lambda hz: 1127 * np.log1p(hz / 700)  # noqa: E731
    centres_mel = np.linspace(mel(125), mel(7500), 66)[1:-1]
    assert int(lm[0].mean(0).argmax()) == int(np.argmin(np.abs(centres_mel - mel(f))))
    # independent framing: 400-sample periodic-Hann frames every 160 samples, 512-point rfft magnitude
    y = np.random.default_rng(0).standard_normal(5000) * 0.1
    frames = np.stack([y[i * 160:i * 160 + 400] for i in range(1 + (len(y) - 400) // 160)])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    spec = np.abs(np.fft.rfft(frames * hann, 512))
    from course_lib.metrics.embeddings import vggish_mel_matrix
    ref = np.log(spec @ vggish_mel_matrix().double().numpy() + 0.01)
    got = vggish_log_mel(torch.from_numpy(y).float().unsqueeze(0))[0].numpy()
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4


def test_vggish_shapes_and_determinism(vggish0):
    x = 0.1 * torch.randn(3, 2 * SR, generator=torch.Generator().manual_seed(0))
    assert vggish_patches(x).shape == (3, 2, 96, 64) and n_vggish_patches(2 * SR) == 2
    with torch.no_grad():
        ea, eb = vggish0.embed(x), vggish0.embed(x)
        assert vggish0.embed_patches(x).shape == (3, 2, 128)
    assert ea.shape == (3, 128) and torch.equal(ea, eb)
    again = random_vggish(seed=0).state_dict()
    other = random_vggish(seed=1).state_dict()
    ref = vggish0.state_dict()
    assert all(torch.equal(again[k], ref[k]) for k in ref)
    assert not torch.equal(other["features.0.weight"], ref["features.0.weight"])
    # batched helper: same numbers in batches of 2
    emb = embed_audio(x, vggish0, sr=SR, batch_size=2)
    assert emb.dtype == np.float64 and np.allclose(emb, ea.double().numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="too short"):
        vggish_patches(torch.zeros(1, 8000))


def test_vggish_published_layout_and_loader(vggish0, tmp_path, monkeypatch):
    keys = {k.rsplit(".", 1)[0] for k in vggish0.state_dict()}
    assert keys == {"features.0", "features.3", "features.6", "features.8", "features.11", "features.13",
                    "embeddings.0", "embeddings.2", "embeddings.4"}
    monkeypatch.delenv("COURSE_VGGISH_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="download"):
        load_vggish()
    path = tmp_path / "hub" / "checkpoints" / "vggish-10086976.pth"
    path.parent.mkdir(parents=True)
    torch.save(vggish0.state_dict(), path)
    loaded = load_vggish()  # found in the torch hub cache
    x = 0.1 * torch.randn(1, SR)
    with torch.no_grad():
        assert torch.equal(loaded.embed(x), vggish0.embed(x))
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="bad.pth"):
        load_vggish(bad)


# ----------------------------------------------------------------------------- classifiers

def test_log_frequency_filterbank_peaks_at_tone():
    fb = log_frequency_filterbank(SR, 2048, 25.0, 7900.0, 2)
    centres = 25.0 * 2 ** (np.arange(fb.shape[0]) / 24)
    for f in (110.0, 1000.0):
        x = torch.sin(2 * math.pi * f * torch.arange(SR) / SR)
        spec = torch.stft(x, 2048, 512, window=torch.hann_window(2048), return_complex=True).abs().mean(-1)
        assert abs(centres[int((fb @ spec).argmax())] / f - 1) < 0.03  # within half a semitone-bin
    assert torch.allclose(fb.sum(1), torch.ones(fb.shape[0]))


def test_short_chunk_cnn_learns_stand_in_classes(tmp_path):
    # 4 classes: tones around 4 distinct pitch regions, 0.5 s each
    torch.manual_seed(0)
    base = torch.tensor([110.0, 220.0, 440.0, 880.0])
    labels = torch.arange(4).repeat(24)
    f0 = base[labels] * 2 ** (torch.rand(len(labels), generator=torch.Generator().manual_seed(1)) * 0.3 - 0.15)
    x = _tones(f0, 0.5, seed=2)
    cfg = ShortChunkConfig(n_classes=4, class_names=["a", "b", "c", "d"], channels=(8, 16, 32), emb_dim=32)
    model = ShortChunkCNN(cfg)
    losses = fit(model, x[:80], labels[:80], epochs=10, batch_size=16, lr=5e-3, task="loops", seed=0)
    assert losses[-1] < losses[0]
    assert accuracy(model, x[80:], labels[80:]) >= 0.9
    with torch.no_grad():
        emb, probs = model.embed_and_proba(x[:5])
    assert emb.shape == (5, 32) and torch.allclose(probs.sum(-1), torch.ones(5), atol=1e-5)
    path = save_classifier(model, tmp_path / "m.pt", meta={"note": "stand-in"})
    back = load_classifier(path)
    with torch.no_grad():
        assert torch.equal(back(x[:5]), model(x[:5]))
    assert back.meta["note"] == "stand-in"
    with pytest.raises(FileNotFoundError, match="train_classifier"):
        load_classifier(tmp_path / "missing.pt")


def test_pitch_classifier_learns_stand_in_pitches():
    pitches = torch.arange(60, 68).repeat(12)  # 8 MIDI pitches, random timbres
    f0 = 440.0 * 2 ** ((pitches.float() - 69) / 12)
    x = _tones(f0, 0.5, seed=3)
    cfg = PitchConfig(n_classes=12, pitch_min=58, seconds=0.5, channels=(8, 8), emb_dim=32)
    model = PitchClassifier(cfg)
    target = model.midi_to_class(pitches)
    fit(model, x[:80], target[:80], epochs=25, batch_size=16, lr=5e-3, task="pitch", seed=0)
    with torch.no_grad():
        probs = model.predict_proba(x[80:])
    assert probs.shape == (16, 12)
    assert pitch_accuracy(probs, target[80:]) >= 80.0
