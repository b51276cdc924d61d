"""WaveNet fast generation compiled with numba against the torch fast path and naive generation."""

from __future__ import annotations

import pytest
import torch

from course_lib.models.wavenet import WaveNet, WaveNetConfig, generate_tokens
from course_lib.synth import kernels

pytest.importorskip("numba")

SMALL = dict(residual_channels=8, gate_channels=8, skip_channels=16)


def _model(cfg: WaveNetConfig) -> WaveNet:
    torch.manual_seed(7)
    m = WaveNet(cfg).eval()
    with torch.no_grad():  # larger weights than the default init: every layer matters to the logits
        for p in m.parameters():
            p.mul_(2.0)
    return m


@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.7])
@pytest.mark.parametrize("cfg", [
    WaveNetConfig(**SMALL, layers_per_cycle=5, cycles=2, n_pitches=12),
    WaveNetConfig(**SMALL, kernel_size=3, dilations=(1, 2, 4, 1, 3), local_channels=3, local_hop=8),
], ids=["k2-pitch", "k3-local"])
def test_compiled_fast_generation_equals_torch_fast_and_naive(monkeypatch, cfg, temperature):
    assert kernels.available()
    m = _model(cfg)
    n, batch = 2 * cfg.receptive_field + 40, 2
    kw = {"pitch": torch.tensor([3, 9])} if cfg.n_pitches else {}
    if cfg.local_channels:
        kw["local"] = torch.randn(batch, cfg.local_channels, -(-(n + 5) // cfg.local_hop),
                                  generator=torch.Generator().manual_seed(1))
    prime = torch.randint(0, 256, (batch, 5), generator=torch.Generator().manual_seed(2))
    compiled = generate_tokens(m, n, prime=prime, temperature=temperature, seed=3, method="fast", **kw)
    naive = generate_tokens(m, n, prime=prime, temperature=temperature, seed=3, method="naive", **kw)
    monkeypatch.setenv("COURSE_NO_NUMBA", "1")
    torch_fast = generate_tokens(m, n, prime=prime, temperature=temperature, seed=3, method="fast", **kw)
    assert compiled.shape == (batch, n)
    assert torch.equal(compiled, torch_fast)
    assert torch.equal(compiled, naive)
    assert len(torch.unique(compiled)) > (1 if temperature == 0 else 20)  # real, varied output
