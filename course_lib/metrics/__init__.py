"""course_lib.metrics: evaluation of generated audio (see ARCHITECTURE.md).

* :mod:`frechet` — Fréchet distance (float64, stable PSD square root), Gaussian statistics (.npz)
* :mod:`fad` — FAD, FAD-infinity, FAD against the number of clips, bootstrap confidence interval
* :mod:`inception_score` — IS (mean ± std over splits)
* :mod:`ndb` — NDB/K (k-means bins, two-proportion z-test) and JSD
* :mod:`prdc` — precision, recall, density, coverage
* :mod:`pitch` — pitch accuracy (PA) and pitch entropy (PE)
* :mod:`embeddings` — embedding helper and VGGish; the classifiers live in ``course_lib.models.classifiers``
* :mod:`adversarial` — targeted perturbations that fool a classifier (why IS can be gamed)
* :mod:`evaluate` — one call for all metrics (``embed_and_proba``: one pass of a classifier);
  :mod:`calibration` — the reference table
* :mod:`train_classifier` — rebuilds the shipped classifier checkpoints
* :mod:`gansynth_card`, :mod:`vocoder_card`, :mod:`ddsp_card` — the measured data cards of the GANSynth checkpoints,
  the iSTFT vocoder and DDSP
* :mod:`ddsp_eval` — Lesson 07's reconstruction table (DDSP, spectral autoencoder, RAVE-lite, WaveNet autoencoder)
"""

from course_lib.metrics.adversarial import targeted_perturbation
from course_lib.metrics.fad import fad, fad_bootstrap, fad_from_embeddings, fad_infinity, fad_versus_size
from course_lib.metrics.frechet import GaussianStats, frechet_distance, gaussian_stats, psd_sqrt
from course_lib.metrics.inception_score import inception_score
from course_lib.metrics.ndb import NDBBins, jensen_shannon_divergence, ndb_jsd
from course_lib.metrics.pitch import pitch_accuracy, pitch_entropy
from course_lib.metrics.prdc import prdc

__all__ = [
    "GaussianStats", "NDBBins", "fad", "fad_bootstrap", "fad_from_embeddings", "fad_infinity", "fad_versus_size",
    "frechet_distance", "gaussian_stats", "inception_score", "jensen_shannon_divergence", "ndb_jsd", "pitch_accuracy",
    "pitch_entropy", "prdc", "psd_sqrt", "targeted_perturbation",
]
