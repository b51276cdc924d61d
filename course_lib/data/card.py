"""Data cards: what a dataset holds, measured - counts, histograms, loudness, duplicates, a baseline.

A card is a dict (saved as ``card.json``), a Markdown summary (``card.md``, also printed by
``python -m course_lib.data describe ...``) and figures (``examples.png``: one log-mel per class;
``stats.png``: counts, loudness and, for notes, pitch / velocity histograms).

Two quality figures tell whether a synthetic set is worth learning from:

* **near-duplicate rate**: the share of clips that copy an earlier clip, by the course's one definition of a
  copy (:mod:`course_lib.data.duplicates`, the one HW2's grader uses: waveform NCC at some circular shift, or
  normalised log-mel distance). A varied set keeps this under 1 %.
* **mel-statistics baseline**: cross-validated accuracy of a logistic regression on the mean and
  standard deviation of each mel band. It should be clearly above chance (the classes differ)
  but clearly below 100 % (they are not trivially separable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

from course_lib import plot
from course_lib.audio import rms_db
from course_lib.data.config import COURSE_MEL
from course_lib.data.datasets import LoopDataset, NSynthDataset
from course_lib.data.duplicates import duplicate_stats
from course_lib.data.nsynth import FAMILIES

PathLike = Union[str, Path]
def mel_statistics(mels: torch.Tensor) -> np.ndarray:
    """Per-clip features: mean and standard deviation over time of every mel band -> ``(N, 2 n_mels)``."""
    return torch.cat([mels.mean(-1), mels.std(-1)], dim=1).numpy()


def baseline_accuracy(mels: torch.Tensor, labels: torch.Tensor, folds: int = 3, seed: int = 0) -> dict:
    """Cross-validated accuracy of a logistic regression on :func:`mel_statistics`.

    Returns ``{"accuracy", "std", "chance", "folds", "classes"}`` (chance = majority-class share).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = labels.numpy()
    counts = np.bincount(y)
    counts = counts[counts > 0]
    k = int(min(folds, counts.min()))
    if k < 2 or len(counts) < 2:
        return {"accuracy": float("nan"), "std": float("nan"), "chance": float(counts.max() / counts.sum()),
                "folds": k, "classes": int(len(counts)), "note": "too few clips per class for cross-validation"}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    scores = cross_val_score(model, mel_statistics(mels), y, cv=cv)
    return {"accuracy": float(scores.mean()), "std": float(scores.std()), "chance": float(counts.max() / counts.sum()),
            "folds": k, "classes": int(len(counts))}


def loudness_stats(audio: torch.Tensor) -> dict:
    """RMS level (dBFS) percentiles and the largest peak of clips ``(N, samples)``."""
    db = rms_db(audio).numpy()
    return {"rms_db_min": float(db.min()), "rms_db_p5": float(np.percentile(db, 5)),
            "rms_db_median": float(np.median(db)), "rms_db_p95": float(np.percentile(db, 95)),
            "rms_db_max": float(db.max()), "peak_max": float(audio.abs().max()),
            "clipped_clips": int((audio.abs() >= 0.999).any(dim=1).sum()),
            "nan_clips": int((~torch.isfinite(audio)).any(dim=1).sum())}


def build_card(kind: str, audio: torch.Tensor, mels: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
               sr: int, config: dict, pitches: Sequence[int] | None = None, velocities: Sequence[int] | None = None,
               extra: dict | None = None) -> dict:
    """Measure everything a card reports for clips ``audio (N, samples)`` with log-mels and labels."""
    counts = {name: int((labels == i).sum()) for i, name in enumerate(class_names)}
    card = {"kind": kind, "config": config, "clips": int(audio.shape[0]), "sr": sr,
            "seconds_per_clip": audio.shape[1] / sr, "counts": counts, "loudness": loudness_stats(audio),
            "duplicates": duplicate_stats(audio), "baseline": baseline_accuracy(mels, labels),
            "mel": COURSE_MEL.to_dict()}
    if pitches is not None:
        card["pitch_hist"] = {int(k): int(v) for k, v in zip(*np.unique(np.asarray(pitches), return_counts=True))}
    if velocities is not None:
        card["velocity_hist"] = {int(k): int(v) for k, v in zip(*np.unique(np.asarray(velocities), return_counts=True))}
    if extra:
        card.update(extra)
    return card


def card_markdown(card: dict) -> str:
    """The card as Markdown text."""
    lines = [f"# Data card: {card['kind']}", "",
             f"- clips: {card['clips']} x {card['seconds_per_clip']:.2f} s at {card['sr']} Hz",
             f"- config: `{json.dumps(card['config'], sort_keys=True)}`", "", "## Counts per class", "",
             "| class | clips |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in card["counts"].items()]
    for key, title in (("source_counts", "Counts per source"),):
        if key in card:
            lines += ["", f"## {title}", "", "| source | clips |", "| --- | ---: |"]
            lines += [f"| {k} | {v} |" for k, v in card[key].items()]
    for key, title in (("pitch_hist", "MIDI pitch"), ("velocity_hist", "velocity")):
        if key in card:
            h = card[key]
            lines += ["", f"## {title} histogram", "", "`" + ", ".join(f"{k}: {v}" for k, v in h.items()) + "`"]
    ld, dup, base = card["loudness"], card["duplicates"], card["baseline"]
    lines += ["", "## Loudness", "",
              f"RMS level {ld['rms_db_min']:.1f} .. {ld['rms_db_max']:.1f} dBFS (5-95 %: {ld['rms_db_p5']:.1f} .. "
              f"{ld['rms_db_p95']:.1f}, median {ld['rms_db_median']:.1f}); largest peak {ld['peak_max']:.3f}; "
              f"clips touching full scale: {ld['clipped_clips']}; clips with NaN: {ld['nan_clips']}",
              "", "## Quality", "",
              f"- near-duplicates (waveform |NCC| >= {dup['ncc_threshold']:.2f} at some circular shift, or normalised "
              f"log-mel distance < {dup['logmel_threshold']:.2f} nats within {dup['max_shift_frames']} frames: the "
              f"grader's definition): {dup['n_duplicates']} clips ({100 * dup['item_rate']:.2f} %) copy an earlier "
              f"one; nearest earlier clip: median |NCC| {dup['nn_median_ncc']:.2f}, median distance "
              f"{dup['nn_median_distance']:.3f} nats, min {dup['nn_min_distance']:.3f}",
              f"- logistic regression on mel-band mean/std ({base['folds']}-fold CV): accuracy "
              f"{100 * base['accuracy']:.1f} % +- {100 * base['std']:.1f} (chance {100 * base['chance']:.1f} %, "
              f"{base['classes']} classes)"]
    if "report" in card:
        lines += ["", "## Load report", "", "```", card["report"], "```"]
    if "figures" in card:
        lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in card["figures"]]
    return "\n".join(lines) + "\n"


def save_figures(card: dict, audio: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], sr: int,
                 out: Path) -> list[str]:
    """Write ``examples.png`` (a log-mel per class, shared colour scale) and ``stats.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt


    out.mkdir(parents=True, exist_ok=True)
    firsts = [int(torch.nonzero(labels == i)[0]) for i in range(len(class_names)) if bool((labels == i).any())]
    titles = [class_names[int(labels[i])] for i in firsts]
    fig, _ = plot.clip_grid(audio[firsts], sr, ncols=min(4, len(firsts)), kind="mel", titles=titles)
    p1 = out / "examples.png"
    fig.savefig(p1, dpi=80)
    plt.close(fig)

    panels = [("counts", card["counts"])]
    if "pitch_hist" in card:
        panels.append(("MIDI pitch", card["pitch_hist"]))
    if "velocity_hist" in card:
        panels.append(("velocity", card["velocity_hist"]))
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.5 * (len(panels) + 1), 3.2))
    for ax, (title, hist) in zip(axes, panels):
        ax.bar([str(k) for k in hist], list(hist.values()))
        ax.set_title(title)
        ax.tick_params(axis="x", labelrotation=90 if len(hist) > 5 else 0, labelsize=7)
    axes[-1].hist(rms_db(audio).numpy(), bins=30)
    axes[-1].set_title("RMS level (dBFS)")
    fig.tight_layout()
    p2 = out / "stats.png"
    fig.savefig(p2, dpi=80)
    plt.close(fig)
    return [str(p1), str(p2)]


def write_card(card: dict, out: PathLike, audio: torch.Tensor | None = None, labels: torch.Tensor | None = None,
               class_names: Sequence[str] | None = None, figures: bool = True) -> Path:
    """Write ``card.json``, ``card.md`` (and the figures) into ``out``; returns the Markdown path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if figures and audio is not None:
        card["figures"] = save_figures(card, audio, labels, class_names, card["sr"], out)
    (out / "card.json").write_text(json.dumps(card, indent=1, default=str), encoding="utf-8")
    md = out / "card.md"
    md.write_text(card_markdown(card), encoding="utf-8")
    return md


def describe_loops(preset: str = "fast", seed: int = 0, backend: str = "dsp", root: PathLike | None = None,
                   out: PathLike | None = None, figures: bool = True, n_kits: int | None = None) -> dict:
    """Card of the synthetic loop set (or of a real loop folder ``root``); written to ``out`` if given."""
    ds = LoopDataset(split="all", preset=preset, seed=seed, backend=backend, root=root, precompute_mel=True,
                     n_kits=n_kits)
    extra = {"report": ds.report.summary()} if root is not None else {}
    card = build_card("loops", ds.audio, ds.mel, ds.labels, ds.class_names, ds.sr, ds.config, extra=extra)
    if out is not None:
        write_card(card, out, ds.audio, ds.labels, ds.class_names, figures)
    return card


def describe_nsynth(preset: str = "fast", seed: int = 0, root: PathLike | None = None, out: PathLike | None = None,
                    figures: bool = True) -> dict:
    """Card of the synthetic mini-NSynth (or of a real NSynth folder ``root``), labelled by family."""
    ds = NSynthDataset(split="all", preset=preset, seed=seed, root=root, precompute_mel=True)
    sources: dict[str, int] = {}
    for e in ds.examples:
        sources[e.instrument_source_str] = sources.get(e.instrument_source_str, 0) + 1
    extra = {"source_counts": sources, "instruments": len({e.instrument_str for e in ds.examples}),
             "folder": str(ds.folder)}
    if ds.report.skipped:
        extra["report"] = ds.report.summary()
    card = build_card("nsynth", ds.audio, ds.mel, ds.labels, FAMILIES, ds.sr, {"folder": str(ds.folder)},
                      pitches=[e.pitch for e in ds.examples], velocities=[e.velocity for e in ds.examples], extra=extra)
    card["counts"] = {k: v for k, v in card["counts"].items() if v}
    if out is not None:
        write_card(card, out, ds.audio, ds.labels, FAMILIES, figures)
    return card
