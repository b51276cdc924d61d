"""Device choice, seeding, threads; they live in :mod:`course_lib.runtime.device` (below ``models``), this name stays."""

from course_lib.runtime.device import pick_device, seed_everything, set_threads

__all__ = ["pick_device", "seed_everything", "set_threads"]
