"""course_lib: the library behind the neural music synthesis course.

Modules (see ARCHITECTURE.md): ``audio``, ``spectral``, ``synth``, ``tsm``, ``data``,
``models``, ``metrics``, ``train``, ``plot``. Audio tensors are float32 in [-1, 1] with shape
``(batch, samples)``; the sample rate is always passed explicitly (default 16 kHz).
"""

DEFAULT_SR: int = 16_000

__version__ = "0.1.0"
