"""The training loop ``run_steps`` and the small trainer ``fit``; they live in :mod:`course_lib.runtime.loop` (below
``models``), this name stays."""

from course_lib.runtime.loop import LoopRun, TrainHistory, fit, random_crops, run_steps, step_generator, time_budget

__all__ = ["LoopRun", "run_steps", "TrainHistory", "fit", "random_crops", "step_generator", "time_budget"]
