"""Does a StyleGAN2 run's discriminator memorise its training loops? (the check behind ADA's r_t)

Loads a training ``checkpoint.pt`` (discriminator and EMA generator) and prints, without augmentation, the mean
logit and the fraction of positive logits on the training loops, on the ``valid`` + ``test`` loops of the same
draw (never the grader's reference set) and on 192 generated loops. A memorising discriminator scores the
training loops clearly higher than the held-out ones; one that generalises scores them alike.

    python tools/discriminator_fit.py RUN_DIR/checkpoint.pt [...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from course_lib.data.datasets import LoopDataset
from course_lib.models import stylegan2 as sg
from course_lib.train.gan import GANConfig, StyleGAN2Task

BATCH = 16  # a multiple of the minibatch-stddev group


def lecture_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The lecture loop set's ``split``: audio ``(n, samples)`` and labels ``(n,)``."""
    d = LoopDataset(split=split, preset="lecture", seed=0, precompute_mel=False)
    return d.audio.float(), d.labels


@torch.no_grad()
def logits(D: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    n = images.shape[0] // BATCH * BATCH
    return torch.cat([D(images[i:i + BATCH], **({} if labels is None else {"labels": labels[i:i + BATCH]}))
                      for i in range(0, n, BATCH)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train_audio, train_labels = lecture_split("train")
    held = [lecture_split(s) for s in ("valid", "test")]
    held_audio, held_labels = torch.cat([h[0] for h in held]), torch.cat([h[1] for h in held])
    for path in args.checkpoints:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        cfg = GANConfig(**{k: v for k, v in blob["config"].items() if k in GANConfig.__dataclass_fields__})
        task = StyleGAN2Task(cfg, torch.device("cpu"))
        task.D.load_state_dict(blob["extra"]["D"])
        task.G_ema.load_state_dict(blob["extra"]["G_ema"])
        D, spec = task.D.eval(), task.spec
        conditional = task.conditional
        train, held_images = task.prepare(train_audio), task.prepare(held_audio)  # the images the run trained on
        gen_labels = sg.balanced_labels(192, task.arch.n_classes) if conditional else None
        fakes = spec.to_image(sg.generate_mels(task.G_ema.eval(), spec, 192, seed=123, labels=gen_labels))
        rows = {"training loops": logits(D, train, train_labels if conditional else None),
                "held-out loops": logits(D, held_images, held_labels if conditional else None),
                "generated loops": logits(D, fakes, gen_labels)}
        print(f"{path} (step {blob['step']}):")
        for name, lg in rows.items():
            print(f"  {name:16s} mean logit {float(lg.mean()):+.2f}  judged real {float((lg > 0).float().mean()):.0%}")


if __name__ == "__main__":
    main()
