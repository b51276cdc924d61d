"""A Vocos-style iSTFT vocoder (Siuzdenko et al., 2023): log-mel -> STFT magnitude and phase -> iSTFT.

The network runs at the mel frame rate (a 2 s loop is 125 frames), not at the sample rate like
MelGAN, so it is small and fast on a CPU:

* input: course log-mel ``(batch, n_mels, T)`` (natural log, :func:`course_lib.spectral.log_mel`),
  padded by one frame at the end (the loop's first frame when ``periodic``, else the last frame
  repeated) so that the ``T + 1`` centred STFT frames give exactly ``T * hop`` samples;
* a 7-tap input conv and ``layers`` ConvNeXt blocks (depthwise 7-tap conv, LayerNorm, pointwise
  MLP x ``mlp_ratio``, layer scale, residual) of width ``dim``;
* a linear head per frame to ``n_fft // 2 + 1`` log-magnitudes (a residual on the mel
  pseudo-inverse magnitude when ``anchor``) and as many phase angles; the complex spectrum
  ``exp(logmag) * (cos p + i sin p)`` is inverted by :func:`torch.istft` (Hann window,
  ``n_fft`` / ``hop``, centred).

Losses and training live in :mod:`course_lib.train.vocoder`; figures in
:mod:`course_lib.metrics.vocoder_card`. The shipped checkpoint is ``assets/istft_vocoder_loops.pt``
(rebuild: ``python -m course_lib.train.vocoder --preset full --out runs/istft_vocoder --export``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib.runtime.checkpoint import atomic_save, load_plain_checkpoint
from course_lib.spectral import MelConfig, mel_filterbank

PathLike = Union[str, Path]
Device = Union[str, torch.device, None]
ASSETS = Path(__file__).resolve().parent.parent / "assets"
ISTFT_VOCODER_ASSET = ASSETS / "istft_vocoder_loops.pt"
REBUILD_COMMAND = "python -m course_lib.train.vocoder --preset full --out runs/istft_vocoder --export"
KIND = "istft_vocoder"

__all__ = ["ISTFTVocoderConfig", "ConvNeXtBlock", "ISTFTVocoder", "save_istft_vocoder", "load_istft_vocoder",
           "ISTFT_VOCODER_ASSET", "REBUILD_COMMAND"]


@dataclass
class ISTFTVocoderConfig:
    """Sizes of an :class:`ISTFTVocoder`.

    Attributes:
        n_mels: mel bands of the input. dim: ConvNeXt width. layers: ConvNeXt blocks.
        mlp_ratio: pointwise MLP width as a multiple of ``dim``. kernel: depthwise conv taps (odd).
        n_fft: FFT size of the output STFT (samples; its window is a Hann of the same length).
        hop: samples per frame (must equal the mel hop).
        anchor: predict the log-magnitude as a residual on ``log(pinv(mel filterbank) @ mel)``
            (needs ``n_fft`` equal to the mel's ``n_fft``).
        lo, hi: log-mel values mapped to -1 / +1 at the input (log of the 1e-5 floor .. 4).
        max_log_mag: cap on the predicted log-magnitude (keeps early training finite).
    """

    n_mels: int = 80
    dim: int = 128
    layers: int = 8
    mlp_ratio: int = 3
    kernel: int = 7
    n_fft: int = 1024
    hop: int = 256
    anchor: bool = True
    lo: float = math.log(1e-5)
    hi: float = 4.0
    max_log_mag: float = 6.0

    def __post_init__(self) -> None:
        for name in ("n_mels", "dim", "layers", "mlp_ratio", "kernel", "n_fft", "hop"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {self.kernel}")
        if self.hop > self.n_fft:
            raise ValueError(f"hop={self.hop} must be <= n_fft={self.n_fft}")
        if self.hi <= self.lo:
            raise ValueError(f"hi={self.hi} must be above lo={self.lo}")

    @property
    def n_freq(self) -> int:
        """STFT bins ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        return asdict(self)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> Linear(dim, r*dim) -> GELU -> Linear(r*dim, dim) -> layer scale, + input.

    ``(batch, dim, frames)`` -> same shape.
    """

    def __init__(self, dim: int, mlp_ratio: int = 3, kernel: int = 7, layer_scale: float = 0.1) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, mlp_ratio * dim)
        self.pw2 = nn.Linear(mlp_ratio * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (batch, frames, dim)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class ISTFTVocoder(nn.Module):
    """Log-mel ``(batch, n_mels, T)`` -> audio ``(batch, T * hop)``; see the module docstring.

    Settings are attributes: ``config`` (:class:`ISTFTVocoderConfig`), ``mel`` (the
    :class:`~course_lib.spectral.MelConfig` it was trained on), ``hop``, ``meta`` (training record).
    """

    def __init__(self, config: ISTFTVocoderConfig = ISTFTVocoderConfig(), mel: MelConfig = MelConfig()) -> None:
        super().__init__()
        if config.hop != mel.hop or config.n_mels != mel.n_mels:
            raise ValueError(f"config hop/n_mels ({config.hop}/{config.n_mels}) must match the mel's ({mel.hop}/{mel.n_mels})")
        if config.anchor and config.n_fft != mel.n_fft:
            raise ValueError(f"anchor=True needs n_fft equal to the mel n_fft ({mel.n_fft}), got {config.n_fft}")
        self.config, self.mel, self.meta = config, mel, {}
        self.embed = nn.Conv1d(config.n_mels, config.dim, config.kernel, padding=config.kernel // 2)
        self.norm_in = nn.LayerNorm(config.dim, eps=1e-6)
        self.blocks = nn.ModuleList([ConvNeXtBlock(config.dim, config.mlp_ratio, config.kernel, 1.0 / config.layers)
                                     for _ in range(config.layers)])
        self.norm_out = nn.LayerNorm(config.dim, eps=1e-6)
        self.head = nn.Linear(config.dim, 2 * config.n_freq)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=0.01)
        if config.anchor:
            self.register_buffer("mel_pinv", torch.linalg.pinv(mel_filterbank(mel).double()).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    @property
    def hop(self) -> int:
        return self.config.hop

    def _check(self, log_mel: torch.Tensor) -> None:
        if not isinstance(log_mel, torch.Tensor) or log_mel.ndim != 3 or log_mel.shape[1] != self.config.n_mels:
            shape = tuple(log_mel.shape) if isinstance(log_mel, torch.Tensor) else type(log_mel).__name__
            raise ValueError(f"log_mel must be a tensor (batch, {self.config.n_mels}, frames), got {shape}")
        if log_mel.shape[-1] < 1:
            raise ValueError("log_mel has no frames")

    def spectrum(self, log_mel: torch.Tensor, periodic: bool = False) -> torch.Tensor:
        """Complex STFT ``(batch, n_fft // 2 + 1, T + 1)`` predicted from log-mel ``(batch, n_mels, T)``.

        ``periodic``: the padded last frame is the first one (a loop), else the last one repeated.
        """
        self._check(log_mel)
        m = log_mel.float()
        extra = m[..., :1] if periodic else m[..., -1:]
        m = torch.cat([m, extra], dim=-1)
        x = (m.clamp(self.config.lo, 2 * self.config.hi) - self.config.lo) / (self.config.hi - self.config.lo) * 2 - 1
        h = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        out = self.head(self.norm_out(h.transpose(1, 2))).transpose(1, 2)  # (batch, 2 * n_freq, T + 1)
        logmag, phase = out.split(self.config.n_freq, dim=1)
        if self.config.anchor:
            base = (self.mel_pinv @ m.clamp(max=8.0).exp()).clamp_min(1e-5).log()
            logmag = logmag + base
        mag = logmag.clamp(max=self.config.max_log_mag).exp()
        return torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))

    def forward(self, log_mel: torch.Tensor, periodic: bool = False) -> torch.Tensor:
        """Log-mel ``(batch, n_mels, T)`` -> audio ``(batch, T * hop)`` (not clipped; use :meth:`vocode`)."""
        spec = self.spectrum(log_mel, periodic)
        return torch.istft(spec, self.config.n_fft, self.config.hop, self.config.n_fft, self.window, center=True,
                           length=log_mel.shape[-1] * self.config.hop)

    @torch.no_grad()
    def vocode(self, log_mel: torch.Tensor, periodic: bool = False, batch_size: int = 64) -> torch.Tensor:
        """Inference: log-mel ``(batch, n_mels, T)`` or ``(n_mels, T)`` -> audio ``(batch, T * hop)`` in [-1, 1].

        ``periodic=True`` for loops (the clip wraps around: a loop of ``T`` frames is ``T * hop`` samples).
        Runs in batches of ``batch_size`` on the model's device; returns a CPU float32 tensor.
        """
        if isinstance(log_mel, torch.Tensor) and log_mel.ndim == 2:
            log_mel = log_mel.unsqueeze(0)
        self._check(log_mel)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        was_training = self.training
        self.eval()
        device = self.window.device
        out = [self(log_mel[i:i + batch_size].to(device), periodic).clamp(-1.0, 1.0).float().cpu()
               for i in range(0, log_mel.shape[0], batch_size)]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, log_mel.shape[-1] * self.hop)


def save_istft_vocoder(model: ISTFTVocoder, path: PathLike, meta: dict | None = None) -> Path:
    """Save weights, config, mel settings and ``meta`` as a plain dict, atomically (tmp file, then ``os.replace``)."""
    blob = {"kind": KIND, "config": model.config.to_dict(), "mel": model.mel.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": dict(meta if meta is not None else model.meta)}
    return atomic_save(blob, path)


def load_istft_vocoder(path: PathLike | None = None, device: Device = None) -> ISTFTVocoder:
    """Load a vocoder saved by :func:`save_istft_vocoder` (default: the shipped ``assets/istft_vocoder_loops.pt``).

    Returns the model in eval mode on ``device`` (default CPU), with ``config``, ``mel`` and ``meta`` attributes.
    """
    blob = load_plain_checkpoint(path if path is not None else ISTFT_VOCODER_ASSET, KIND, "iSTFT vocoder", REBUILD_COMMAND)
    model = ISTFTVocoder(ISTFTVocoderConfig(**blob["config"]), MelConfig(**blob["mel"]))
    model.load_state_dict(blob["state_dict"])
    model.meta = dict(blob.get("meta", {}))
    return model.to(device or "cpu").eval()
