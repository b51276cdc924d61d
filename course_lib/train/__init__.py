"""Trainers (every lesson and HW2).

Every trainer steps through the course's one loop, :func:`course_lib.runtime.loop.run_steps`.
``gan``: the GAN trainer for StyleGAN2 and MelGAN (``train_gan``), also under ``torchrun`` (``ddp``);
``gansynth``: GANSynth's progressive trainer (losses in ``gansynth_losses``); ``wavenet``: Lesson 03's WaveNets;
``vocoder``: the iSTFT vocoder; ``ddsp``: Lesson 07's DDSP (the organ notes, held-out
notes, presets, ``train_ddsp``). ``python -m course_lib.train {stylegan2,melgan} ...`` runs the GAN trainer from the
command line. Device choice, seeding, checkpoints, the loop and the small trainer ``fit`` live in
:mod:`course_lib.runtime` (below the models that use them); ``course_lib.train.device`` / ``checkpoint`` / ``loop``
re-export them.
"""

from __future__ import annotations

from importlib import import_module

from course_lib.runtime.device import pick_device, seed_everything, set_threads

_LAZY = {  # heavier pieces, imported on first use
    "fit": "course_lib.train.loop",
    "save_checkpoint": "course_lib.train.checkpoint",
    "load_checkpoint": "course_lib.train.checkpoint",
    "GANConfig": "course_lib.train.gan",
    "get_config": "course_lib.train.gan",
    "train_gan": "course_lib.train.gan",
}

__all__ = ["pick_device", "seed_everything", "set_threads", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'course_lib.train' has no attribute {name!r}")
