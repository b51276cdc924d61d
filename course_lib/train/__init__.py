"""Training utilities: device choice and seeding (``device.py``); training loops arrive with the model issues."""

from course_lib.train.device import pick_device, seed_everything, set_threads

__all__ = ["pick_device", "seed_everything", "set_threads"]
