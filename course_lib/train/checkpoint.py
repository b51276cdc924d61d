"""The course checkpoint format; it lives in :mod:`course_lib.runtime.checkpoint` (below ``models``), this name stays."""

from course_lib.runtime.checkpoint import FORMAT, PathLike, atomic_save, load_checkpoint, save_checkpoint

__all__ = ["FORMAT", "PathLike", "atomic_save", "load_checkpoint", "save_checkpoint"]
