"""Plumbing shared by the TSM methods: input checks, default frame sizes, framing, overlap-add.

Every method works on a batch ``(batch, samples)`` of mono float32 audio. The public entry points
accept a 1-D clip or a NumPy array too; :func:`as_batch` converts and :func:`restore` gives the
result back in the caller's form (1-D in, 1-D out; NumPy in, NumPy out).
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def as_batch(x: ArrayLike, name: str = "x", min_samples: int = 2) -> tuple[torch.Tensor, dict]:
    """Check audio and return it as float32 ``(batch, samples)`` plus a note of the input's form.

    Accepts ``(samples,)``, ``(batch, samples)`` or ``(batch, 1, samples)`` (tensor or NumPy).
    Raises ``ValueError`` for stereo / multichannel layouts, empty or too-short clips and NaN/inf.
    """
    was_numpy = isinstance(x, np.ndarray)
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        try:
            x = np.asarray(x, dtype=np.float32)
            was_numpy = True
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: expected an audio array or tensor, got {type(x).__name__}") from exc
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name}: audio must be real-valued, got dtype {t.dtype}")
    shape = tuple(t.shape)
    if t.ndim == 3:
        if t.shape[1] != 1:
            raise ValueError(
                f"{name}: got shape {shape} = (batch, channels={t.shape[1]}, samples); TSM needs mono audio - "
                "mix down (x.mean(1)) or process each channel as a batch item")
        t = t[:, 0]
    elif t.ndim == 2 and was_numpy and t.shape[1] in (2, 4, 6, 8) and t.shape[0] > 64 * t.shape[1]:
        raise ValueError(
            f"{name}: NumPy array of shape {shape} looks like soundfile's (samples, channels) stereo layout; "
            "TSM needs mono (samples,) or (batch, samples) - mix down with x.mean(axis=1)")
    elif t.ndim not in (1, 2):
        raise ValueError(f"{name}: audio must be (samples,) or (batch, samples), got shape {shape}")
    one_d = t.ndim == 1
    tb = t.unsqueeze(0) if one_d else t
    tb = tb.to(torch.float32)
    if tb.shape[0] == 0:
        raise ValueError(f"{name}: batch is empty (shape {shape})")
    if tb.shape[-1] == 0:
        raise ValueError(f"{name}: audio is empty (0 samples)")
    if tb.shape[-1] < min_samples:
        raise ValueError(f"{name}: audio of {tb.shape[-1]} samples is too short; this method needs at least "
                         f"{min_samples} samples (one analysis frame)")
    lo, hi = (float(v) for v in torch.aminmax(tb.detach()))  # one pass; NaN propagates into both
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: audio holds NaN or infinite samples")
    return tb, {"one_d": one_d, "numpy": was_numpy}


def restore(y: torch.Tensor, form: dict) -> ArrayLike:
    """Give ``y`` ``(batch, samples)`` back in the caller's form recorded by :func:`as_batch`."""
    if form["one_d"]:
        y = y[0]
    if form["numpy"]:
        return y.detach().cpu().numpy()
    return y


def check_rate(rate: float, name: str = "rate") -> float:
    """A finite positive time-stretch rate (``> 1`` = faster / shorter); raises ``ValueError`` otherwise."""
    if isinstance(rate, torch.Tensor):
        if rate.numel() != 1:
            raise ValueError(f"{name}: must be one number for the whole batch, got shape {tuple(rate.shape)}")
        rate = rate.item()
    try:
        r = float(rate)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: must be a number, got {rate!r}") from exc
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"{name}: must be a finite number > 0 (>1 = faster/shorter), got {rate}")
    return r


def check_sr(sr: int) -> int:
    """A positive integer sample rate in Hz."""
    if sr is None or not isinstance(sr, (int, np.integer, float)) or not math.isfinite(sr) or sr <= 0 or int(sr) != sr:
        raise ValueError(f"sr: sample rate must be a positive integer in Hz, got {sr!r}")
    return int(sr)


def output_length(samples: int, rate: float) -> int:
    """Output length ``round(samples / rate)`` (at least 1 sample)."""
    return max(1, int(round(samples / rate)))


def pow2_frame(sr: int, seconds: float) -> int:
    """The power of two nearest (in log scale) to ``seconds * sr`` samples, at least 16."""
    return max(16, 2 ** int(round(math.log2(max(seconds * sr, 1.0)))))


def check_frame(frame_length: int, hop: int, name: str = "frame_length") -> tuple[int, int]:
    """Validate a frame length / hop pair (samples)."""
    if int(frame_length) != frame_length or frame_length < 4:
        raise ValueError(f"{name}: must be an integer >= 4 samples, got {frame_length}")
    if int(hop) != hop or hop < 1 or hop > frame_length:
        raise ValueError(f"hop: must be an integer in [1, {name}={frame_length}] samples, got {hop}")
    return int(frame_length), int(hop)


def hann(n: int, device: torch.device) -> torch.Tensor:
    """Periodic Hann window of ``n`` samples (sums to a constant at hops ``n/2``, ``n/4``)."""
    return torch.hann_window(n, periodic=True, device=device, dtype=torch.float32)


def gather_frames(x: torch.Tensor, starts: torch.Tensor, frame_length: int) -> torch.Tensor:
    """Frames ``(batch, frames, frame_length)`` of ``x`` ``(batch, samples)`` starting at ``starts``.

    ``starts`` is ``(frames,)`` (same positions for every item) or ``(batch, frames)``; positions must
    lie inside ``x`` (callers pad). Rows are picked from a strided view of all frames (no index grid).
    """
    view = x.unfold(-1, frame_length, 1)  # (batch, samples - frame_length + 1, frame_length), no copy
    if starts.ndim == 1:
        return view[:, starts]
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    return view[rows, starts]


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add ``(batch, frames, N)`` placed every ``hop`` samples -> ``(batch, (frames-1)*hop + N)``.

    When ``N`` is a multiple of ``hop`` the sum is done as ``N / hop`` shifted slab additions (fast on
    CPU and GPU); otherwise :func:`torch.nn.functional.fold` is used.
    """
    b, m, n = frames.shape
    out_len = (m - 1) * hop + n
    if n % hop == 0:
        k = n // hop
        slabs = frames.reshape(b, m, k, hop)
        out = frames.new_zeros(b, m + k - 1, hop)
        for j in range(k):
            out[:, j:j + m] += slabs[:, :, j]
        return out.reshape(b, -1)[:, :out_len]
    folded = torch.nn.functional.fold(frames.transpose(1, 2), output_size=(1, out_len), kernel_size=(1, n),
                                      stride=(1, hop))
    return folded.reshape(b, out_len)


def window_sum(window: torch.Tensor, frames: int, hop: int) -> torch.Tensor:
    """Overlap-added window ``(samples,)`` for ``frames`` frames every ``hop`` samples.

    The same additions in the same order as :func:`overlap_add` of ``frames`` copies of the window,
    without making the copies (each of the ``N / hop`` slabs of the window is added to every frame).
    """
    n = window.shape[0]
    if n % hop:
        return overlap_add(window.reshape(1, 1, -1).expand(1, frames, -1).contiguous(), hop)[0]
    k = n // hop
    slabs = window.reshape(k, hop)
    out = window.new_zeros(frames + k - 1, hop)
    for j in range(k):
        out[j:j + frames] += slabs[j]
    return out.reshape(-1)[:(frames - 1) * hop + n]


#: on the CPU, batches are processed in blocks of about this many samples: the vectorised methods are
#: memory-bound, and a block that stays in cache is faster per item than one huge batch.
CPU_BLOCK_SAMPLES = 1 << 17


def batch_blocks(x: torch.Tensor) -> list[slice]:
    """Row slices of ``x`` ``(batch, samples)`` to process one after another (one block off the CPU)."""
    b = x.shape[0]
    if x.device.type != "cpu":
        return [slice(0, b)]
    rows = max(1, CPU_BLOCK_SAMPLES // max(1, x.shape[-1]))
    return [slice(i, min(b, i + rows)) for i in range(0, b, rows)]


def fix_length(y: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad ``(batch, samples)`` on the right to exactly ``length`` samples."""
    if y.shape[-1] >= length:
        return y[:, :length]
    return torch.nn.functional.pad(y, (0, length - y.shape[-1]))
