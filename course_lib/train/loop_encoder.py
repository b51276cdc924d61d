"""Train the self-supervised loop encoder (SimCLR on the training split; no labels, no grading network).

    python -m course_lib.train.loop_encoder --out course_lib/assets/loop_encoder.pt [--epochs 40] [--seed 0]

The frozen encoder is the feature network of the projected discriminator
(:class:`~course_lib.models.projected_d.ProjectedDiscriminator`). It sees only the ``train`` split of the
synthetic loop set (seed 0), never its labels, and never the grader's reference loops.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from course_lib.data.datasets import LoopDataset
from course_lib.models import loop_encoder as le
from course_lib.models.stylegan2 import MelImageSpec
from course_lib.runtime.model_card import write_model_card

__all__ = ["EncoderTrainConfig", "loop_images", "linear_probe", "train_loop_encoder", "card_record",
           "card_markdown", "main"]


@dataclass
class EncoderTrainConfig:
    """One SimCLR run: ``epochs`` over the ``train`` split of ``data_preset`` (seed ``data_seed``), ``batch_size``
    loops (two views each, :func:`~course_lib.models.loop_encoder.ssl_views` with ``view_gain`` and
    ``view_noise``), Adam ``lr`` with a cosine decay to 0, NT-Xent ``temperature``, ``arch`` the
    :class:`~course_lib.models.loop_encoder.LoopEncoderConfig` fields, ``threads`` torch threads (None: default)."""

    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    temperature: float = 0.2
    view_gain: float = 0.15
    view_noise: float = 0.03
    seed: int = 0
    data_preset: str = "lecture"
    data_seed: int = 0
    arch: dict = field(default_factory=dict)
    threads: int | None = None


def loop_images(split: str, preset: str, seed: int, spec: MelImageSpec | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The loop set's ``split`` as images ``(N, 1, n_mels, width)``, its style labels ``(N,)`` and the SHA-256 of
    its audio."""
    spec = spec or MelImageSpec()
    ds = LoopDataset(split=split, preset=preset, seed=seed, sr=spec.mel.sr, precompute_mel=False)
    audio = ds.audio[:, : spec.loop_samples].float()
    digest = hashlib.sha256(audio.numpy().tobytes()).hexdigest()
    images = spec.audio_to_image(audio)
    return images, ds.labels.long(), digest


@torch.no_grad()
def linear_probe(encoder: le.LoopEncoder, train: tuple[torch.Tensor, torch.Tensor],
                 valid: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Style accuracy on ``valid`` (images, labels) of a logistic regression fitted on the pooled features
    (:meth:`~course_lib.models.loop_encoder.LoopEncoder.embed`) of ``train``: how much of a loop's style the
    features hold, although the encoder never saw a label."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    a, b = encoder.eval().embed(train[0]).numpy(), encoder.eval().embed(valid[0]).numpy()
    scaler = StandardScaler().fit(a)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(a), train[1].numpy())
    return float((clf.predict(scaler.transform(b)) == valid[1].numpy()).mean())


def train_loop_encoder(cfg: EncoderTrainConfig, out: Path | None = None, log=print) -> tuple[le.LoopEncoder, dict]:
    """Train an encoder by SimCLR; returns it (eval mode) and its training record (losses per epoch, seconds,
    data hash). ``out``: where to write the checkpoint (None: nowhere)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    spec = MelImageSpec()
    images, _, digest = loop_images("train", cfg.data_preset, cfg.data_seed, spec)
    torch.manual_seed(cfg.seed)
    model = le.LoopEncoder(le.LoopEncoderConfig(**cfg.arch))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    n = images.shape[0]
    batches = max(1, n // cfg.batch_size)
    total = cfg.epochs * batches
    losses: list[float] = []
    t0 = time.perf_counter()
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=g)
        running = 0.0
        for b in range(batches):
            step = epoch * batches + b
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            x = images[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
            v1, v2 = (le.ssl_views(x, spec.frames, g, cfg.view_gain, cfg.view_noise) for _ in range(2))
            loss = le.nt_xent_loss(model.project(v1), model.project(v2), cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(loss.detach())
        losses.append(running / batches)
        log(f"epoch {epoch + 1}/{cfg.epochs}: NT-Xent {losses[-1]:.3f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    record = {"train_config": asdict(cfg), "losses": [round(v, 4) for v in losses],
              "seconds": round(time.perf_counter() - t0, 1), "train_items": n, "train_sha256": digest,
              "torch_threads": torch.get_num_threads()}
    if out is not None:
        le.save_loop_encoder(model, out, record)
    return model.requires_grad_(False), record


def card_record(path: Path, record: dict, command: str) -> dict:
    """The data card's figures for the encoder checkpoint at ``path``: its training ``record`` plus file size, hash,
    parameter count, config and the ``command`` that rebuilds it."""
    blob = path.read_bytes()
    model = le.load_loop_encoder(path)
    return {**record, "file": path.name, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
            "parameters": sum(p.numel() for p in model.parameters()), "config": model.config.to_dict(),
            "command": command}


def card_markdown(card: dict, limitations: str = "") -> str:
    """The data card (Markdown) of :func:`card_record`'s ``card``; ``limitations``: a kept hand-written section."""
    cfg = card["train_config"]
    chance = math.log(2 * cfg["batch_size"] - 1)
    probe = card.get("probe", {})
    lines = [
        f"# Self-supervised loop encoder (`{card['file']}`)",
        "",
        "The frozen feature network of the projected discriminator (`course_lib.models.projected_d`, "
        "`GANConfig.d_encoder=\"shipped\"`): a small convolutional encoder of loop mel images "
        "(`course_lib.models.loop_encoder`), trained by SimCLR on the training split alone. It never saw a style "
        "label, the grader's loop classifier, or the grader's reference loops.",
        "",
        f"* file: `{card['file']}`, {card['bytes']:,} bytes, sha256 `{card['sha256'][:16]}...`, "
        f"{card['parameters']:,} parameters (the SimCLR projection head included; the discriminator reads the stages only)",
        f"* config: `{json.dumps(card['config'])}`",
        "",
        "## Training",
        "",
        f"* command: `{card['command']}`",
        f"* data: `LoopDataset(split=\"train\", preset=\"{cfg['data_preset']}\", seed={cfg['data_seed']})`, "
        f"{card['train_items']} loops, no labels; audio sha256 `{card['train_sha256'][:16]}...`",
        f"* views: circular shift by whole 16th notes, a cut-out time band and mel band, a level offset of up to "
        f"{cfg['view_gain']} (image units), Gaussian noise {cfg['view_noise']}; NT-Xent temperature {cfg['temperature']}",
        f"* {cfg['epochs']} epochs, batch {cfg['batch_size']} loops (two views each), Adam lr {cfg['lr']} with a "
        f"cosine decay, seed {cfg['seed']}: {card['seconds']:.0f} s on {card.get('machine', 'a CPU')} "
        f"({card['torch_threads']} torch threads)",
        f"* NT-Xent: {card['losses'][0]:.2f} after the first epoch, {card['losses'][-1]:.2f} after the last "
        f"(chance: log({2 * cfg['batch_size'] - 1}) = {chance:.2f})",
        "",
        "## What the features hold",
        "",
    ]
    if probe:
        lines += [
            f"Linear probe (logistic regression on the pooled last-stage features, fitted on the train split's "
            f"labels, scored on `split=\"valid\"` of the same draw, {probe['valid_items']} loops; the labels are "
            f"used only for this check): **{probe['encoder']:.3f}** style accuracy; the same architecture with "
            f"random weights (its starting point, seed {cfg['seed']}): {probe['random']:.3f}.",
            "",
            "The style of a synthetic loop is easy to read off even random features, so the probe says little "
            "about what a discriminator needs (sharp onsets, clean partials); the runs that use the encoder are "
            "judged on their loops (the StyleGAN2 card, `stylegan2_loops.md`).",
            "",
        ]
    lines += [f"Regenerate this card and the checkpoint: `{card['command']}`", ""]
    text = "\n".join(lines)
    return text + ("\n" + limitations if limitations else "")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.train.loop_encoder", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="checkpoint to write (.pt); its card is written beside it (.md)")
    p.add_argument("--epochs", type=int, default=EncoderTrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=EncoderTrainConfig.batch_size)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-preset", default="lecture", choices=("fast", "lecture", "full", "default"))
    p.add_argument("--threads", type=int)
    p.add_argument("--machine", default="the course machine (2-core CPU)", help="where it ran, for the card")
    a = p.parse_args(argv)
    cfg = EncoderTrainConfig(epochs=a.epochs, batch_size=a.batch_size, seed=a.seed, data_preset=a.data_preset,
                             threads=a.threads)
    out = Path(a.out)
    model, record = train_loop_encoder(cfg, None)
    train = loop_images("train", cfg.data_preset, cfg.data_seed)
    valid = loop_images("valid", cfg.data_preset, cfg.data_seed)
    torch.manual_seed(cfg.seed)
    random_init = le.LoopEncoder(le.LoopEncoderConfig(**cfg.arch))
    record["probe"] = {"encoder": linear_probe(model, train[:2], valid[:2]),
                       "random": linear_probe(random_init, train[:2], valid[:2]), "valid_items": int(valid[1].numel())}
    record["machine"] = a.machine
    le.save_loop_encoder(model, out, record)
    command = "python -m course_lib.train.loop_encoder " + " ".join(sys.argv[1:] if argv is None else argv)
    write_model_card(out, card_record(out, record, command), card_markdown)
    print(f"wrote {out} and its card: {record['seconds']} s, final NT-Xent {record['losses'][-1]}, "
          f"probe {record['probe']['encoder']:.3f} (random weights {record['probe']['random']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
