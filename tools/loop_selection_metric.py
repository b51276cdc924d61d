"""Choose a loop-model recipe without the grader: a selection metric of the course's own.

HW2 grades loops with the loop classifier's embedding (FAD) and its softmax (IS) against
``grading/assets/``. Recipes and checkpoints must not be chosen with those networks or that data, so
training runs are compared here on the *training draw only* (synthetic loop set, seed 0): features are
hand-made log-mel statistics (per-band mean and spread, and the onset flux of three bands folded onto
the bar's 16 steps), fitted on the ``train`` split; generated mels are compared with the ``valid`` +
``test`` splits of the same draw.

Printed per generator: ``fd`` (Frechet distance of the standardised, PCA-reduced features; lower is
closer), ``is`` (exp E KL(p(y|x) || p(y)) of a logistic regression fitted on the train split's
features and labels; 1 to 11), ``classes`` (how many classes the regression sees among the
generated loops, out of 11), ``diversity`` (mean pairwise feature distance of the generated loops divided by
that of the real ones), ``within`` (the same ratio inside each class, averaged over classes: a conditional
generator's loops of the class they were asked for against the real loops of that class; 1 = as varied as the
data, unconditional generators print nothing), ``on_beat`` (conditional generators: the share of the loops of the
drum styles - those whose real held-out loops all start on the bar's downbeat - whose onset pattern, the three
bands' flux per 16th, matches their style's mean real pattern best unshifted rather than rolled by some 16ths;
real loops: 1.0).

    python tools/loop_selection_metric.py RUN_DIR/generator_0000750.pt RUN_DIR/generator.pt [--n 200] [--psi 1 0.8]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from course_lib.data.datasets import LoopDataset
from course_lib.models import stylegan2 as sg
from course_lib.spectral import log_mel

STEPS_PER_BAR = 16


def loop_features(mels: torch.Tensor, frames: int) -> np.ndarray:
    """Log-mels ``(n, n_mels, >= frames)`` -> features ``(n, 2 * n_mels + 3 * 16)``: band means and stds
    over the bar, and the positive spectral flux of low / mid / high bands summed per 16th step."""
    m = mels[..., :frames].double()
    n, bands, _ = m.shape
    mean, std = m.mean(-1), m.std(-1)
    flux = torch.relu(m[..., 1:] - m[..., :-1])
    thirds = torch.stack([flux[:, i * bands // 3:(i + 1) * bands // 3].mean(1) for i in range(3)], 1)  # (n, 3, T-1)
    edges = torch.linspace(0, thirds.shape[-1], STEPS_PER_BAR + 1).round().long()
    steps = torch.stack([thirds[..., a:b].sum(-1) for a, b in zip(edges[:-1], edges[1:])], -1)  # (n, 3, 16)
    return torch.cat([mean, std, steps.flatten(1)], 1).numpy()


def onset_steps(features: np.ndarray) -> np.ndarray:
    """The flux part of :func:`loop_features` rows ``(n, F)`` -> ``(n, 3, 16)`` (bands x 16th steps)."""
    return features[:, -3 * STEPS_PER_BAR:].reshape(-1, 3, STEPS_PER_BAR)


def best_roll(steps: np.ndarray, template: np.ndarray) -> np.ndarray:
    """For onset patterns ``(n, 3, 16)``, the circular shift in 16ths (0..15) that best correlates each with
    ``template`` ``(3, 16)`` (both centred per band): ``(n,)``; 0 = in phase."""
    x = steps - steps.mean(-1, keepdims=True)
    t = template - template.mean(-1, keepdims=True)
    scores = np.stack([(np.roll(x, k, -1) * t).sum((1, 2)) for k in range(STEPS_PER_BAR)], 1)
    return scores.argmax(1)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of Gaussians fitted to rows of ``a`` and ``b``."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


class SelectionMetric:
    """Fitted on the training draw (seed 0): train split for the scaler, PCA and classifier, valid+test as the target."""

    def __init__(self, preset: str = "lecture", seed: int = 0, pca_dims: int = 32) -> None:
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        train = LoopDataset(split="train", preset=preset, seed=seed, precompute_mel=False)
        held = [LoopDataset(split=s, preset=preset, seed=seed, precompute_mel=False) for s in ("valid", "test")]
        self.spec = sg.MelImageSpec()
        frames = self.spec.frames
        self.frames = frames
        f_train = self._audio_features(train.audio)
        self.f_held = np.concatenate([self._audio_features(d.audio) for d in held])
        self.scaler = StandardScaler().fit(f_train)
        self.pca = PCA(pca_dims, random_state=0).fit(self.scaler.transform(f_train))
        self.clf = LogisticRegression(max_iter=2000, C=0.5).fit(self.scaler.transform(f_train), train.labels.numpy())
        self.held_z = self.pca.transform(self.scaler.transform(self.f_held))
        self.held_spread = self._spread(self.held_z)
        self.held_labels = torch.cat([d.labels for d in held]).numpy()
        self.held_class_spread = {c: self._spread(self.held_z[self.held_labels == c])
                                  for c in np.unique(self.held_labels)}
        held_steps = onset_steps(self.f_held)
        self.templates = {c: held_steps[self.held_labels == c].mean(0) for c in np.unique(self.held_labels)}
        self.on_beat_classes = [c for c, t in self.templates.items()  # the styles whose real loops are in phase
                                if (best_roll(held_steps[self.held_labels == c], t) == 0).all()]

    def _audio_features(self, audio: torch.Tensor) -> np.ndarray:
        audio = audio[:, : self.spec.loop_samples].float()
        mels = torch.cat([log_mel(audio[i:i + 64], self.spec.mel) for i in range(0, audio.shape[0], 64)])
        return loop_features(mels, self.frames)

    @staticmethod
    def _spread(z: np.ndarray) -> float:
        d = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
        return float(d.sum() / (len(z) * (len(z) - 1)))

    def score(self, mels: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        """Figures for generated log-mels ``(n, n_mels, frames)``; ``labels`` ``(n,)``: the classes they were asked
        for (adds ``within``)."""
        f = loop_features(mels, self.frames)
        x = self.scaler.transform(f)
        z = self.pca.transform(x)
        p = self.clf.predict_proba(x)
        py = p.mean(0, keepdims=True)
        kl = (p * (np.log(p + 1e-12) - np.log(py + 1e-12))).sum(1).mean()
        out = {"fd": frechet(z, self.held_z), "is": math.exp(kl),
               "classes": int(len(np.unique(p.argmax(1)))), "diversity": self._spread(z) / self.held_spread}
        if labels is not None:
            lab = labels.numpy()
            ratios = [self._spread(z[lab == c]) / self.held_class_spread[c] for c in self.held_class_spread
                      if (lab == c).sum() > 1]
            out["within"] = float(np.mean(ratios))
            steps = onset_steps(f)
            in_phase = [best_roll(steps[lab == c], self.templates[c]) == 0 for c in self.on_beat_classes
                        if (lab == c).any()]
            if in_phase:
                out["on_beat"] = float(np.concatenate(in_phase).mean())
        return out

    def score_real_held_out(self) -> dict:
        """The same figures for the valid+test split against itself (fd is 0 there): the ceiling."""
        x = self.scaler.transform(self.f_held)
        p = self.clf.predict_proba(x)
        py = p.mean(0, keepdims=True)
        kl = (p * (np.log(p + 1e-12) - np.log(py + 1e-12))).sum(1).mean()
        return {"is": math.exp(kl), "classes": int(len(np.unique(p.argmax(1))))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("generators", nargs="+", type=Path)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=123, help="generation seed (not the grader's)")
    ap.add_argument("--psi", type=float, nargs="+", default=[1.0], help="truncation psi values to score")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    metric = SelectionMetric()
    print("real valid+test:", {k: round(v, 3) for k, v in metric.score_real_held_out().items()})
    for path in args.generators:
        g = sg.load_stylegan2(path)
        spec = g.spec
        for psi in args.psi:
            mels = sg.generate_mels(g, spec, args.n, seed=args.seed, truncation_psi=psi)
            s = metric.score(mels, sg.balanced_labels(args.n, g.n_classes))
            tag = "" if args.psi == [1.0] else f" psi {psi}"
            print(f"{path}{tag}: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in s.items()))


if __name__ == "__main__":
    main()
