"""The iSTFT vocoder's data card: each vocoder on the grader's held-out real loops, measured.

* :func:`measure`: FAD / IS of Griffin-Lim, MelGAN and the iSTFT vocoder on the same held-out mels
  (:func:`course_lib.models.vocoder_eval.held_out_loops`) against the grader's reference statistics (the
  course loop classifier), beside the real audio; log-mel L1 and MR-STFT loss to the real audio; speed
  (loops/s). :func:`write_card` turns the figures into the data card.

    python -m course_lib.metrics.vocoder_card card            # regenerates assets/istft_vocoder_loops.{md,json}

The card figures are the only place the grading networks meet this vocoder; it was trained and
selected without them (see :mod:`course_lib.train.vocoder`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F

from course_lib.data.config import GENERATOR_VERSION, config_hash
from course_lib.data.datasets import LoopDataset
from course_lib.metrics.evaluate import ReferenceSet, evaluate
from course_lib.models.classifiers import load_loop_classifier
from course_lib.models.istft_vocoder import ISTFT_VOCODER_ASSET, load_istft_vocoder
from course_lib.models.melgan import multi_resolution_stft_loss
from course_lib.models.vocoder_eval import HELD_OUT_SEED, VOCODERS, held_out_loops, vocoder_functions
from course_lib.spectral import log_mel

PathLike = Union[str, Path]

__all__ = ["measure", "write_card", "main"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def grading_reference_file() -> Path:
    """The grader's reference statistics (``HW2_REFERENCE``, else ``grading/assets/loops_reference.npz`` of the
    repository checkout this package sits in); ``FileNotFoundError`` naming the command that builds it."""
    path = Path(os.environ.get("HW2_REFERENCE", Path(__file__).resolve().parents[2] / "grading" / "assets"
                               / "loops_reference.npz"))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the grader's reference statistics are missing (a repository checkout has "
                                f"them; build them with `python -m grading build-reference`)")
    return path


def measure(n: int = 200, preset: str = "lecture", istft_path: PathLike | None = None, n_iter: int = 32,
            batch_size: int = 16, threads: int = 1, reference_file: PathLike | None = None) -> dict:
    """The card's figures: for real audio and each vocoder on the held-out mels, FAD / IS (grader's
    reference, :func:`grading_reference_file`, and the shipped loop classifier), log-mel L1 and MR-STFT loss to the
    real audio, and loops/s (``threads`` torch threads)."""
    if threads:
        torch.set_num_threads(threads)
    reference = ReferenceSet.load(reference_file if reference_file is not None else grading_reference_file())
    classifier = load_loop_classifier(device="cpu")
    audio, mels = held_out_loops(n, preset)
    fns = vocoder_functions(VOCODERS, True, n_iter, istft_path=istft_path)
    rows = {}
    conditions: dict[str, tuple[torch.Tensor, float | None]] = {"real": (audio, None)}
    for name, f in fns.items():
        f(mels[:2])  # warm-up
        t0 = time.perf_counter()
        y = torch.cat([f(mels[i:i + batch_size]) for i in range(0, n, batch_size)])
        conditions[name] = (y, n / (time.perf_counter() - t0))
    for name, (y, speed) in conditions.items():
        res = evaluate(y, reference, classifier=classifier, device="cpu")
        m = log_mel(y)[..., : mels.shape[-1]]
        rows[name] = {"fad": round(float(res.fad), 2), "is": round(float(res.is_mean), 2),
                      "mel_l1": round(float(F.l1_loss(m, mels)), 4),
                      "mrstft": round(float(multi_resolution_stft_loss(y, audio)), 4),
                      "loops_per_s": None if speed is None else round(speed, 1)}
    path = Path(istft_path) if istft_path is not None else ISTFT_VOCODER_ASSET
    model = load_istft_vocoder(path)
    return {"n": n, "preset": preset, "held_out_seed": HELD_OUT_SEED, "griffin_lim_iters": n_iter,
            "threads": threads, "batch_size": batch_size, "machine": f"{platform.machine()} {platform.processor()}".strip(),
            "torch": torch.__version__, "file": path.name, "sha256": _sha(path), "bytes": path.stat().st_size,
            "params": sum(p.numel() for p in model.parameters()), "config": model.config.to_dict(),
            "training": model.meta, "rows": rows}


def write_card(fig: dict, md_path: PathLike, json_path: PathLike | None = None) -> Path:
    """Write the figures of :func:`measure` as the data card (markdown, and JSON when ``json_path``)."""
    md_path = Path(md_path)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(fig, indent=2) + "\n")
    tr = fig.get("training", {})
    names = {"real": "real audio (no vocoder)", "griffin_lim": f"Griffin-Lim, {fig['griffin_lim_iters']} iterations",
             "melgan": "MelGAN (`melgan_loops.pt`)", "istft": f"**iSTFT vocoder (`{fig['file']}`)**"}
    lines = [
        "# iSTFT vocoder for the HW2 loops (`istft_vocoder_loops.pt`)", "",
        "A Vocos-style vocoder (`course_lib.models.istft_vocoder`): course log-mel (80 bands, hop 256) ->",
        "ConvNeXt at the mel frame rate -> STFT log-magnitude (residual on the mel pseudo-inverse) and",
        "phase -> iSTFT (n_fft 1024, hop 256). The course's default vocoder (`course_lib.hw2.generate_loops`).", "",
        f"* file: `{fig['file']}`, {fig['bytes']:,} bytes, sha256 `{fig['sha256'][:16]}...`, {fig['params']:,} parameters",
        f"* config: `{json.dumps(fig['config'])}`",
        "",
        "## Training", "",
        "* command: `" + tr.get("command", f"python -m course_lib.train.vocoder --preset {tr.get('preset', '?')} "
                                "--out runs/istft_vocoder --threads 1 --export") + "` (resumable: the same command "
        "continues from `state.pt`; `--max-seconds` caps one call)",
        *([f"* note: {tr['note']}"] if tr.get("note") else []),
        f"* data: `LoopDataset(split=\"train\", preset=\"default\", seed=0)` (the HW2 training loops); selection: "
        f"lowest validation MR-STFT + log-mel L1 on the first {tr.get('config', {}).get('n_valid', '?')} loops of "
        "`split=\"valid\"` (same seed, disjoint keys), measured every "
        f"{tr.get('config', {}).get('valid_every', '?')} steps. No discriminator; no grading network or held-out loop "
        "was used for training or selection.",
        f"* kept step {tr.get('step', '?')} of {tr.get('steps_planned', '?')} planned; validation at that step: "
        f"`{json.dumps(tr.get('valid', {}))}`",
        f"* wall time to that step: {tr.get('train_seconds', '?')} s on the course machine (2-core CPU shared with "
        "other jobs, 1 torch thread)",
        f"* data hash: {fig.get('data_hash', '?')}",
        "",
        f"## Quality and speed ({fig['n']} held-out real loops, the same mels for every vocoder)", "",
        f"Real loops: `LoopDataset(split=\"all\", preset=\"{fig['preset']}\", seed={fig['held_out_seed']})` shuffled "
        "with seed 0 (grading/calibrate.py's \"real loops (held out)\"), first "
        f"{fig['n']}; log-mel = `course_lib.spectral.log_mel(audio)[..., :125]`. FAD / IS: `course_lib.metrics.evaluate` "
        "with the grader's reference statistics and loop classifier (`grading/assets/loops_reference.npz`). "
        "Mel L1 / MR-STFT: to the real audio (lower is better). Speed: vocoding only, batches of "
        f"{fig['batch_size']}, {fig['threads']} torch thread(s), torch {fig['torch']}, shared 2-core machine.", "",
        "| vocoder | FAD (lower better) | IS (higher better) | log-mel L1 | MR-STFT | loops/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, row in fig["rows"].items():
        sp = "" if row["loops_per_s"] is None else f"{row['loops_per_s']:.1f}"
        lines.append(f"| {names.get(key, key)} | {row['fad']:.1f} | {row['is']:.2f} | {row['mel_l1']:.3f} | "
                     f"{row['mrstft']:.3f} | {sp} |")
    lines += ["", "Regenerate: `python -m course_lib.metrics.vocoder_card card` (a few minutes on one thread; Griffin-Lim dominates).", "",
              "## Limits", "",
              "* Trained only on the synthetic HW2 loops (drums, bass, chords, arpeggio at 16 kHz); other audio is untested.",
              "* Regression losses only (no GAN): phase is learnt through the multi-resolution STFT loss; "
              "fine detail above the mel resolution is smoothed.", ""]
    md_path.write_text("\n".join(lines))
    return md_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.metrics.vocoder_card")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("card", help="measure the shipped (or given) iSTFT vocoder and write its data card")
    c.add_argument("--checkpoint", default=None)
    c.add_argument("--n", type=int, default=200)
    c.add_argument("--preset", default="lecture")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--md", default=str(ISTFT_VOCODER_ASSET.with_suffix(".md")))
    c.add_argument("--json", default=str(ISTFT_VOCODER_ASSET.with_suffix(".json")))
    a = p.parse_args(argv)
    fig = measure(a.n, a.preset, a.checkpoint, threads=a.threads)
    fig["data_hash"] = _data_hash(a.preset)
    print(json.dumps(fig["rows"], indent=1))
    print("wrote", write_card(fig, a.md, a.json))
    return 0


def _data_hash(preset: str) -> str:
    """The loop-set cache names (config hashes) of the training set (seed 0) and the held-out set."""
    out = []
    for seed in (0, HELD_OUT_SEED):
        ds = LoopDataset(split="all", preset=preset, seed=seed, precompute_mel=False)
        out.append(f"seed {seed}: loops-{config_hash(ds.config)}")
    return ", ".join(out) + f" (generator version {GENERATOR_VERSION})"


if __name__ == "__main__":
    raise SystemExit(main())
