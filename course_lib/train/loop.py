"""The small training loop ``fit``; it lives in :mod:`course_lib.runtime.loop` (below ``models``), this name stays."""

from course_lib.runtime.loop import TrainHistory, fit, random_crops, step_generator, time_budget

__all__ = ["TrainHistory", "fit", "random_crops", "step_generator", "time_budget"]
