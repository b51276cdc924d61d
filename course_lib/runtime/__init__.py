"""What every model and trainer needs at run time, below ``models`` so that networks import nothing above them.

``device``: device choice, seeding, thread count. ``checkpoint``: the one checkpoint format (atomic
``save_checkpoint``, ``load_checkpoint``). ``loop``: the one training loop ``run_steps``, the
small seeded trainer ``fit`` on it and its helpers (``TrainHistory``, ``step_generator``, ``random_crops``,
``time_budget``). ``course_lib.train`` re-exports them under their old names (``course_lib.train.checkpoint`` /
``device`` / ``loop``).
"""

from __future__ import annotations

from course_lib.runtime.checkpoint import load_checkpoint, save_checkpoint
from course_lib.runtime.device import pick_device, seed_everything, set_threads
from course_lib.runtime.loop import LoopRun, TrainHistory, fit, random_crops, run_steps, step_generator, time_budget

__all__ = ["load_checkpoint", "save_checkpoint", "pick_device", "seed_everything", "set_threads",
           "LoopRun", "run_steps", "TrainHistory", "fit", "random_crops", "step_generator", "time_budget"]
