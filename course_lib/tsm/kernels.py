"""Optional compiled (numba) kernels for the two sequential parts of the TSM methods (Lesson 02).

* :func:`running_median` - the median filters of HPSS. A running median over a short window is a
  sort per output value when vectorised (``unfold(...).median()``); the kernel keeps the window
  sorted and swaps one value per step. The result is a median of the same values, so it is
  bit-equal to the torch path.
* :func:`windowed_overlap_add` - OLA's and WSOLA's synthesis: frames read, windowed and added in one
  pass (no ``(frames, N)`` copy in memory), the additions in the torch path's order (bit-equal).
* :func:`wsola_search` - WSOLA's frame-by-frame search. Each frame's best shift depends on the
  previous choice, so torch pays a dozen small tensor operations per frame; the kernel computes the
  same normalised cross-correlation scores directly (float64 dot products instead of an FFT).

The torch code stays the reference (and runs on accelerators, or without numba, or with
``COURSE_NO_NUMBA=1``); availability is decided by :func:`course_lib.synth.kernels.serves`.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
import warnings

import numpy as np
import torch

from course_lib.synth.kernels import available, serves  # noqa: F401 - re-exported for the TSM modules


@functools.lru_cache(maxsize=1)
def _compiled():
    try:
        import numba
    except Exception:  # noqa: BLE001
        return None
    try:
        return _build(numba, cache=True)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"numba kernels built without an on-disk cache ({type(exc).__name__}: {exc})")
        return _build(numba, cache=False)


def _build(numba, cache: bool):
    exact = functools.partial(numba.njit, cache=cache, nogil=True)
    fast = functools.partial(numba.njit, cache=cache, nogil=True, fastmath=True)

    @exact
    def running_median_rows(x, size, out):
        """Median of ``size`` (odd) values centred on each sample of every row of ``x`` (rows, n),
        rows padded by replicating their edge values."""
        rows, n = x.shape
        half = size // 2
        window = np.empty(size, dtype=x.dtype)
        for r in range(rows):
            row = x[r]
            for j in range(size):  # the first window, sorted by insertion
                v = row[min(max(j - half, 0), n - 1)]
                i = j
                while i > 0 and window[i - 1] > v:
                    window[i] = window[i - 1]
                    i -= 1
                window[i] = v
            out[r, 0] = window[half]
            for p in range(1, n):
                old = row[min(max(p - 1 - half, 0), n - 1)]
                new = row[min(p + half, n - 1)]
                i = 0
                while i < size - 1 and window[i] != old:
                    i += 1
                # put the new value where the old one was, then move it to its sorted place
                while i > 0 and window[i - 1] > new:
                    window[i] = window[i - 1]
                    i -= 1
                while i < size - 1 and window[i + 1] < new:
                    window[i] = window[i + 1]
                    i += 1
                window[i] = new
                out[r, p] = window[half]

    @exact
    def candidate_inv_norms(row, lo, overlap, lags, floor, out):
        """out[j] = 1 / (|x[lo + j : lo + j + overlap]| + floor) in float32, computed as wsola.py's torch
        code does (float64 running sum of squares from the region start, differences, sqrt)."""
        cs = np.empty(overlap + lags)
        acc = 0.0
        for i in range(overlap + lags - 1):
            v = np.float64(row[lo + i])
            acc += v * v
            cs[i + 1] = acc
        cs[0] = 0.0
        for j in range(lags):
            e = max(cs[j + overlap] - cs[j], 0.0)
            out[j] = np.float32(1.0) / (np.float32(np.sqrt(e)) + floor)

    @fast
    def wsola_starts(xp, nominal, hop, overlap, tol, floor, neg_penalty, starts):
        """Frame starts of WSOLA for every item: the shift in [-tol, tol] maximising
        corr * inv_norm + neg_penalty, where corr is the dot product of the candidate's first
        ``overlap`` samples with the natural continuation of the previous frame."""
        batch = xp.shape[0]
        frames = nominal.shape[0]
        lags = 2 * tol + 1
        acc = np.empty(lags)
        inv_norm = np.empty(lags, dtype=np.float32)
        for i in range(batch):
            src = xp[i]
            row = src.astype(np.float64)
            prev = nominal[0]
            starts[i, 0] = prev
            for m in range(1, frames):
                t0 = prev + hop
                lo = nominal[m] - tol
                # corr[j] = sum_q template[q] x[lo + j + q]: lags innermost, so it vectorises
                acc[:] = 0.0
                q = 0
                while q + 4 <= overlap:  # four template samples per pass over the lags: fewer acc loads
                    ta, tb, tc, td = row[t0 + q], row[t0 + q + 1], row[t0 + q + 2], row[t0 + q + 3]
                    seg = row[lo + q:lo + q + lags + 3]
                    for j in range(lags):
                        acc[j] += ta * seg[j] + tb * seg[j + 1] + tc * seg[j + 2] + td * seg[j + 3]
                    q += 4
                while q < overlap:
                    tq = row[t0 + q]
                    seg = row[lo + q:lo + q + lags]
                    for j in range(lags):
                        acc[j] += tq * seg[j]
                    q += 1
                candidate_inv_norms(src, lo, overlap, lags, floor[i], inv_norm)
                best = -np.inf
                best_j = 0
                for j in range(lags):
                    score = neg_penalty[i, m, j] + np.float32(acc[j]) * inv_norm[j]
                    if score > best:
                        best = score
                        best_j = j
                prev = lo + best_j
                starts[i, m] = prev

    @exact
    def windowed_overlap_add(x, starts, window, hop, out):
        """out[i, (m + j) hop + r] += x[i, starts[m] + j hop + r] * window[j hop + r], j slab-major
        (the additions in the order of ``_common.overlap_add``); ``out`` zeroed, (batch, (frames + k - 1) hop)."""
        batch = x.shape[0]
        frames = starts.shape[1]
        k = window.shape[0] // hop
        per_item = starts.shape[0] > 1
        for i in range(batch):
            row = x[i]
            o = out[i]
            st = starts[i] if per_item else starts[0]
            for j in range(k):
                w = window[j * hop:(j + 1) * hop]
                for m in range(frames):
                    src = st[m] + j * hop
                    dst = (m + j) * hop
                    for r in range(hop):
                        o[dst + r] += row[src + r] * w[r]

    return SimpleNamespace(
        running_median_rows=running_median_rows,
        wsola_starts=wsola_starts,
        candidate_inv_norms=candidate_inv_norms,
        windowed_overlap_add=windowed_overlap_add,
    )


def running_median(mag: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Running median of odd ``size`` along ``dim`` (-1 or -2) of a CPU float tensor
    ``(..., freq, frames)``, edges replicated; bit-equal to ``hptsm.median_filter``'s torch path."""
    m = mag.transpose(dim, -1) if dim != -1 else mag
    lead, n = m.shape[:-1], m.shape[-1]
    rows = np.ascontiguousarray(m.reshape(-1, n).numpy())
    out = np.empty_like(rows)
    _compiled().running_median_rows(rows, int(size), out)
    med = torch.from_numpy(out).reshape(*lead, n)
    return med.transpose(dim, -1) if dim != -1 else med


def wsola_search(xp: torch.Tensor, nominal: torch.Tensor, hop: int, overlap: int, tol: int,
                 floor: torch.Tensor, neg_penalty: torch.Tensor) -> torch.Tensor:
    """WSOLA's frame starts ``(batch, frames)`` int64 in the padded input ``xp`` ``(batch, samples)``;
    ``floor`` ``(batch,)`` and ``neg_penalty`` ``(batch, frames, 2 tol + 1)`` float32 as in ``wsola.wsola``
    (the candidates' inverse norms are computed here, as wsola.py computes them)."""
    b, frames = xp.shape[0], nominal.shape[0]
    starts = np.empty((b, frames), dtype=np.int64)
    _compiled().wsola_starts(np.ascontiguousarray(xp.numpy()), np.ascontiguousarray(nominal.numpy()),
                             int(hop), int(overlap), int(tol),
                             np.ascontiguousarray(floor.numpy(), dtype=np.float32), np.ascontiguousarray(neg_penalty.numpy()),
                             starts)
    return torch.from_numpy(starts)


def windowed_overlap_add(x: torch.Tensor, starts: torch.Tensor, window: torch.Tensor, hop: int) -> torch.Tensor:
    """``overlap_add(gather_frames(x, starts, N) * window, hop)`` without the frames in memory:
    ``x`` (batch, samples) float32, ``starts`` (frames,) or (batch, frames), ``window`` (N,) with N a
    multiple of ``hop`` -> (batch, (frames - 1) hop + N), bit-equal."""
    st = starts.reshape(1, -1) if starts.ndim == 1 else starts
    frames, n = st.shape[1], window.shape[0]
    out = np.zeros((x.shape[0], (frames + n // hop - 1) * hop), dtype=np.float32)
    _compiled().windowed_overlap_add(np.ascontiguousarray(x.numpy()), np.ascontiguousarray(st.numpy()),
                                     np.ascontiguousarray(window.numpy()), int(hop), out)
    return torch.from_numpy(out)[:, :(frames - 1) * hop + n]
