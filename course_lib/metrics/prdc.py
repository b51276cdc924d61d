"""Precision, recall (Kynkänniemi et al. 2019), density and coverage (Naeem et al. 2020).

Each set's manifold is approximated by balls around its samples whose radius is the distance
to the ``k``-th nearest neighbour within the same set. With real samples ``X`` and generated
``Y``:

* precision = share of ``Y`` inside at least one real ball (fidelity);
* recall    = share of ``X`` inside at least one generated ball (diversity);
* density   = mean number of real balls containing each ``y``, divided by ``k`` (can exceed 1);
* coverage  = share of real samples whose own ball contains at least one ``y``.

Distances are Euclidean, computed in float64 with ``torch.cdist`` in row blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib.metrics.frechet import ArrayLike, _as_float64


def _distances(a: torch.Tensor, b: torch.Tensor, block: int = 2048) -> torch.Tensor:
    return torch.cat([torch.cdist(a[i:i + block], b) for i in range(0, a.shape[0], block)], dim=0)


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``x (n, d)`` to its ``k``-th nearest other row, ``(n,)``."""
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"k must be in [1, n - 1] = [1, {x.shape[0] - 1}], got {k}")
    d = _distances(x, x)
    # the k+1 smallest include the point itself (distance 0)
    return d.topk(k + 1, dim=1, largest=False).values[:, k]


@dataclass
class PRDC:
    """Precision, recall, density, coverage (each in [0, 1] except density, which can exceed 1)."""

    precision: float
    recall: float
    density: float
    coverage: float


def prdc(real: ArrayLike, generated: ArrayLike, k: int = 5) -> PRDC:
    """k-NN precision / recall / density / coverage of ``generated (m, d)`` against ``real (n, d)``."""
    x = torch.from_numpy(_as_float64(real, "real embeddings"))
    y = torch.from_numpy(_as_float64(generated, "generated embeddings"))
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"embeddings must be (n, d) and (m, d) with one d, got {tuple(x.shape)} and {tuple(y.shape)}")
    r_real = knn_radii(x, k)
    r_gen = knn_radii(y, k)
    d = _distances(x, y)  # (n, m)
    inside_real = d <= r_real[:, None]  # y_j inside the ball of x_i
    inside_gen = d <= r_gen[None, :]  # x_i inside the ball of y_j
    return PRDC(
        precision=float(inside_real.any(dim=0).double().mean()),
        recall=float(inside_gen.any(dim=1).double().mean()),
        density=float(inside_real.double().sum() / (k * y.shape[0])),
        coverage=float((d.min(dim=1).values <= r_real).double().mean()),
    )
