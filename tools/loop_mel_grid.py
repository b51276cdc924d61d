"""Look at a loop generator beside its data: one column per loop style, real loops on top, generated below.

The top rows are real ``valid`` loops of the training draw (seed 0; never the grader's reference set), then
``--per-style`` rows per generator (latents from ``--seed``, the styles in column order). Every image shares one
colour scale (the mel floor is black), so silences, onsets and harmonic lines compare at a glance.

    python tools/loop_mel_grid.py OUT.png RUN_DIR/generator.pt [RUN_DIR/generator_0001000.pt ...] [--per-style 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from course_lib.data.datasets import LoopDataset
from course_lib.data.synthetic_loops import LOOP_CLASSES
from course_lib.models import stylegan2 as sg
from course_lib.spectral import log_mel


def rows_per_style(labels: torch.Tensor, n_classes: int, per_style: int) -> torch.Tensor:
    """Indices ``(per_style, n_classes)`` into ``labels`` ``(N,)``: column c holds the first ``per_style`` items of
    class c, in order. Raises ValueError naming a class with fewer items."""
    cols = []
    for c in range(n_classes):
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel() < per_style:
            raise ValueError(f"class {c} has {idx.numel()} loops, the grid needs {per_style}")
        cols.append(idx[:per_style])
    return torch.stack(cols, 1)


def style_grid(rows: list[tuple[str, torch.Tensor]], spec: sg.MelImageSpec, class_names: list[str]):
    """``rows``: (label, log-mels ``(n_classes, n_mels, frames)``) pairs, one image per style -> ``(fig, axes)``,
    one row per pair, one column per style, all on the colour scale ``[spec.lo, spec.hi]``."""
    import matplotlib.pyplot as plt

    n_cols = len(class_names)
    for label, mels in rows:
        if mels.shape[0] != n_cols:
            raise ValueError(f"row {label!r} has {mels.shape[0]} images for {n_cols} styles")
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.6 * n_cols, 1.3 * len(rows)), squeeze=False)
    for r, (label, mels) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.imshow(mels[c].numpy(), origin="lower", aspect="auto", vmin=spec.lo, vmax=spec.hi, cmap="magma")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(class_names[c], fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig, axes


def main(argv: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the PNG to write")
    ap.add_argument("generators", nargs="+", type=Path)
    ap.add_argument("--per-style", type=int, default=2, help="loops per style and source")
    ap.add_argument("--seed", type=int, default=123, help="generation seed")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    spec = sg.MelImageSpec()
    n_classes = len(LOOP_CLASSES)
    real = LoopDataset(split="valid", preset="lecture", seed=0, precompute_mel=False)
    picks = rows_per_style(real.labels, n_classes, args.per_style)
    rows = []
    for k in range(args.per_style):
        audio = real.audio[picks[k], : spec.loop_samples].float()
        rows.append((f"real {k + 1}", log_mel(audio, spec.mel)[..., : spec.frames]))
    for path in args.generators:
        g = sg.load_stylegan2(path)
        if g.n_classes != n_classes:
            raise SystemExit(f"{path}: a generator of {g.n_classes} styles; the grid needs the {n_classes} loop styles")
        labels = torch.arange(n_classes).repeat(args.per_style)
        mels = sg.generate_mels(g, g.spec, len(labels), seed=args.seed, labels=labels)
        for k in range(args.per_style):
            rows.append((f"{path.parent.name}/{path.stem} {k + 1}", mels[k * n_classes:(k + 1) * n_classes]))
    fig, _ = style_grid(rows, spec, list(LOOP_CLASSES))
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}: {len(rows)} rows x {n_classes} styles")


if __name__ == "__main__":
    main()
