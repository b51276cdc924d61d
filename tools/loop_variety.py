"""Which part of a style's variety a loop generator misses: level, brightness, rhythm, pixels.

For every loop style, the spread of 220 generated loops of that style is divided by the spread of the real
``valid`` + ``test`` loops of the same style (training draw, seed 0; never the grader's reference set):

* ``level``: standard deviation of the mean log-mel (nats) - how much loudness varies;
* ``brightness``: standard deviation of the spectral centroid of the band means (mel bins);
* ``rhythm``: mean pairwise distance of the normalised onset-flux profile (low / mid / high bands summed per
  16th step, as in ``tools/loop_selection_metric.py``);
* ``pixels``: mean pairwise RMS distance of the log-mel images.

1 = as varied as the data. Prints one row per style and the mean ratios.

    python tools/loop_variety.py RUN_DIR/generator.pt [...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from course_lib.data.datasets import LoopDataset
from course_lib.data.synthetic_loops import LOOP_CLASSES
from course_lib.models import stylegan2 as sg
from course_lib.spectral import log_mel
from loop_selection_metric import loop_features

FIGURES = ("level", "brightness", "rhythm", "pixels")


def _mean_pairwise(x: np.ndarray, rms: bool = False) -> float:
    d = ((x[:, None] - x[None]) ** 2)
    d = np.sqrt(d.mean(-1) if rms else d.sum(-1))
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def spreads(mels: torch.Tensor, frames: int) -> np.ndarray:
    """Log-mels ``(n, n_mels, >= frames)`` of one style -> ``(4,)``: level, brightness, rhythm, pixel spreads."""
    m = mels[..., :frames].double()
    level = m.mean((1, 2)).numpy()
    weights = torch.softmax(m.mean(2), 1)
    centroid = (weights * torch.arange(m.shape[1], dtype=m.dtype)).sum(1).numpy()
    rhythm = loop_features(m, frames)[:, -48:]
    rhythm = rhythm / (np.linalg.norm(rhythm, axis=1, keepdims=True) + 1e-9)
    return np.array([level.std(), centroid.std(), _mean_pairwise(rhythm), _mean_pairwise(m.flatten(1).numpy(), rms=True)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("generators", nargs="+", type=Path)
    ap.add_argument("--seed", type=int, default=123, help="generation seed")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    spec = sg.MelImageSpec()
    held = [LoopDataset(split=s, preset="lecture", seed=0, precompute_mel=False) for s in ("valid", "test")]
    audio = torch.cat([d.audio for d in held])[:, : spec.loop_samples].float()
    labels = torch.cat([d.labels for d in held]).numpy()
    real = torch.cat([log_mel(audio[i:i + 64], spec.mel) for i in range(0, len(audio), 64)])
    for path in args.generators:
        g = sg.load_stylegan2(path)
        n = 20 * g.n_classes
        gen_labels = sg.balanced_labels(n, g.n_classes)
        gen = sg.generate_mels(g, g.spec, n, seed=args.seed, labels=gen_labels)
        print(f"{path}: generated / real spread per style ({', '.join(FIGURES)})")
        ratios = []
        for c, name in enumerate(LOOP_CLASSES[: g.n_classes]):
            r = spreads(gen[gen_labels.numpy() == c], spec.frames) / spreads(real[labels == c], spec.frames)
            ratios.append(r)
            print(f"  {name:10s} " + "  ".join(f"{v:.2f}" for v in r))
        print("  mean       " + "  ".join(f"{v:.2f}" for v in np.mean(ratios, 0)))


if __name__ == "__main__":
    main()
