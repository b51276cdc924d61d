"""VGGish (random weights: shapes, determinism, loader) and the course classifiers on a tiny stand-in task."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.metrics.embeddings import (embed_audio, load_vggish, n_vggish_patches, random_vggish,
                                           vggish_log_mel, vggish_patches)
from course_lib.metrics.pitch import pitch_accuracy
from course_lib.metrics.train_classifier import fit
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


def test_short_chunk_cnn_shapes_checkpoint_roundtrip(tmp_path):
    # (its training on the real loop set is tested by the FAST rebuild in test_metrics_evaluate.py)
    cfg = ShortChunkConfig(n_classes=4, class_names=["a", "b", "c", "d"], channels=(4, 8), emb_dim=16)
    model = ShortChunkCNN(cfg).eval()
    x = _tones(torch.tensor([110.0, 220.0, 440.0]), 0.5, seed=2)
    with torch.no_grad():
        emb, probs = model.embed_and_proba(x)
        logits = model(x)
    assert emb.shape == (3, 16) and logits.shape == (3, 4) and (emb >= 0).all()  # post-ReLU embedding
    assert torch.allclose(probs, torch.softmax(logits, -1), atol=1e-6)
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)
    path = save_classifier(model, tmp_path / "m.pt", meta={"note": "stand-in"})
    back = load_classifier(path)
    with torch.no_grad():
        assert torch.equal(back(x), logits)
    assert back.meta["note"] == "stand-in" and back.config.channels == (4, 8)
    with pytest.raises(FileNotFoundError, match="train_classifier"):
        load_classifier(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        load_classifier(tmp_path / "junk.pt")


def test_pitch_classifier_shapes_and_one_step_of_learning():
    # (its accuracy on real notes is tested with the shipped checkpoint in test_metrics_evaluate.py)
    pitches = torch.arange(60, 68).repeat(2)
    x = _tones(440.0 * 2 ** ((pitches.float() - 69) / 12), 0.5, seed=3)
    model = PitchClassifier(PitchConfig(n_classes=12, pitch_min=58, seconds=0.5, channels=(4, 4), emb_dim=16))
    target = model.midi_to_class(pitches)
    assert int(target.min()) == 2 and model.class_to_midi(2) == 60
    feats = model.features(x)
    assert feats.shape == (16, 1, model.filterbank.shape[0]) and torch.isfinite(feats).all()
    losses = fit(model, x, target, epochs=8, batch_size=16, lr=1e-2, task="pitch", seed=0)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        emb, probs = model.embed_and_proba(x)
    assert emb.shape == (16, 16) and probs.shape == (16, 12)
    assert torch.allclose(probs.sum(-1), torch.ones(16), atol=1e-5)
    assert 0.0 <= pitch_accuracy(probs, target) <= 100.0
