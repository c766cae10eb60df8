"""Cohen et al.'s PREDICT and CERTIFY for classifiers (Algorithm 1 of the paper).

The N = 1 case of SEGCERTIFY's setting, with the one-component tests of [1]_:
a two-sided binomial test for PREDICT and a Clopper-Pearson lower bound for
CERTIFY. It samples through the same code as :class:`~smoothing.SegCertify`.

References
----------
.. [1] J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified Adversarial Robustness via
   Randomized Smoothing", ICML 2019.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from scipy import stats

from multitest import clopper_pearson_lower
from samplers import Sampler
from smoothing import _sampling as S
from smoothing._sampling import ABSTAIN

__all__ = ["ClassCertificate", "ClassPrediction", "SmoothClassifier"]


@dataclass(frozen=True)
class ClassPrediction:
    """Output of :meth:`SmoothClassifier.predict`.

    Attributes
    ----------
    label : int
        The predicted class, or :data:`ABSTAIN` (-1).
    pvalue : float
        Two-sided binomial p-value of ``n_A`` out of ``n_A + n_B`` at 1/2.
    counts : numpy.ndarray
        int64 (C,): class counts of the ``n`` samples.
    n, alpha : int, float
        The parameters used.
    time_sampling : float
        Wall-clock seconds of the sampling.
    """

    label: int
    pvalue: float
    counts: np.ndarray
    n: int
    alpha: float
    time_sampling: float

    ABSTAIN: ClassVar[int] = ABSTAIN


@dataclass(frozen=True)
class ClassCertificate:
    """Output of :meth:`SmoothClassifier.certify`.

    Attributes
    ----------
    label : int
        The certified class, or :data:`ABSTAIN` (-1).
    radius : float
        ``sampler.radius(pA_lower)`` if certified, else 0.0.
    pA_lower : float
        Clopper-Pearson lower bound on the top-class probability at ``1 - alpha``.
    guess : int
        The class guessed from the ``n0`` samples.
    count : int
        How often ``guess`` occurred in the ``n`` samples.
    n0, n, alpha : int, int, float
        The parameters used.
    time_sampling, time_testing : float
        Wall-clock seconds.
    sound : bool
        Copied from the sampler.
    """

    label: int
    radius: float
    pA_lower: float
    guess: int
    count: int
    n0: int
    n: int
    alpha: float
    time_sampling: float
    time_testing: float
    sound: bool

    ABSTAIN: ClassVar[int] = ABSTAIN


class SmoothClassifier:
    r"""Randomized-smoothing classifier with Cohen et al.'s PREDICT and CERTIFY.

    The smoothed classifier :math:`\bar f(x) = \arg\max_c P(f(x + \varepsilon) = c)`
    of [1]_ (Eq. 1 of [2]_), for any :class:`samplers.Sampler`.

    **Guarantee.** :meth:`certify` returns a class other than :data:`ABSTAIN` and
    a radius ``R`` that is wrong with probability at most ``alpha``: otherwise
    :math:`\bar f(x + \delta)` equals the class for every :math:`\delta` within
    ``R`` in the sampler's threat model (Theorem 3.1 of [2]_ with
    :math:`\overline{p_B} = 1 - \underline{p_A}`). :meth:`predict` returns a class
    other than :math:`\bar f(x)` with probability at most ``alpha``.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Base classifier: a batch of inputs -> logits (B, C).
    sampler : samplers.Sampler
        Smoothing distribution, e.g. ``samplers.GaussianL2(0.25)``.
    num_classes : int
        Number of classes ``C``.
    batch_size : int
        Noisy copies per forward pass.
    progress : bool, default False
        Show a tqdm progress bar.

    Raises
    ------
    TypeError, ValueError
        On invalid arguments.

    Notes
    -----
    Inputs are ONE example without a batch dimension, moved to the model's
    device. Sampling, validation and counting are shared with
    :class:`~smoothing.SegCertify` (fresh noise per sample, counts on the
    device, no sample stored, independent ``n0``/``n`` streams).

    References
    ----------
    .. [1] J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified Adversarial Robustness
       via Randomized Smoothing", ICML 2019.
    .. [2] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021.

    Examples
    --------
    >>> import torch
    >>> from samplers import GaussianL2
    >>> from smoothing import SmoothClassifier
    >>> model = torch.nn.Linear(2, 2)                     # class 1 iff x[1] > x[0]
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    ...     _ = model.bias.zero_()
    >>> clf = SmoothClassifier(model, GaussianL2(0.5), num_classes=2, batch_size=500)
    >>> g = torch.Generator().manual_seed(0)
    >>> cert = clf.certify(torch.tensor([0.0, 1.0]), n0=100, n=1000, alpha=0.001, generator=g)
    >>> cert.label, round(cert.pA_lower, 2), round(cert.radius, 2)
    (1, 0.9, 0.64)
    >>> clf.predict(torch.tensor([0.0, 1.0]), n=100, alpha=0.001, generator=g).label
    1
    """

    ABSTAIN: ClassVar[int] = ABSTAIN

    def __init__(self, model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
                 sampler: Sampler, *, num_classes: int, batch_size: int,
                 progress: bool = False) -> None:
        self.model = S.check_model(model)
        self.sampler = S.check_sampler(sampler)
        self.num_classes = S.check_int(num_classes, "num_classes")
        self.batch_size = S.check_int(batch_size, "batch_size")
        self.progress = bool(progress)

    def predict(self, x: torch.Tensor, *, n: int, alpha: float,
                generator: torch.Generator | None = None) -> ClassPrediction:
        """PREDICT: the top class if it beats the runner-up at level ``alpha``.

        Counts the classes of ``n`` noisy samples; with ``n_A``, ``n_B`` the top
        two counts (ties: the lower class index is ``c_A``), returns ``c_A`` if
        ``binomtest(n_A, n_A + n_B, 1/2)`` (two-sided) has p-value ``<= alpha``,
        else :data:`ABSTAIN`.

        Parameters
        ----------
        x : torch.Tensor
            One floating-point input, no batch dimension.
        n : int
            Number of samples (>= 1).
        alpha : float
            Error probability, in (0, 1).
        generator : torch.Generator, optional
            Source of randomness (any device); same seed, same result.

        Returns
        -------
        ClassPrediction
        """
        n = S.check_int(n, "n")
        alpha = S.check_alpha(alpha)
        ready = S.prepare(self.model, x, layout="BC", num_classes=self.num_classes,
                          generator=generator, streams=1)
        reader, (gen,) = ready.reader, ready.generators
        watch = S.Stopwatch(ready.device)
        with watch, torch.inference_mode():
            counts = S.count_classes(self.model, self.sampler, ready.x, reader, num=n,
                                     batch_size=self.batch_size, generator=gen,
                                     progress=self.progress)
            reader.check_finite()
        counts = counts.reshape(-1).cpu().numpy().astype(np.int64)
        c_a = int(np.argmax(counts))  # first maximum: the lowest index
        n_a = int(counts[c_a])
        n_b = int(np.delete(counts, c_a).max()) if counts.size > 1 else 0
        pvalue = float(stats.binomtest(n_a, n_a + n_b, 0.5).pvalue)
        label = c_a if pvalue <= alpha else ABSTAIN
        return ClassPrediction(label, pvalue, counts, n, alpha, watch.seconds)

    def certify(self, x: torch.Tensor, *, n0: int, n: int, alpha: float,
                generator: torch.Generator | None = None) -> ClassCertificate:
        """CERTIFY: guess from ``n0`` samples, lower-bound its probability from ``n``.

        Returns the guess and radius ``sampler.radius(pA_lower)`` if the
        Clopper-Pearson lower bound ``pA_lower`` (level ``1 - alpha``) of its
        probability exceeds 1/2, else :data:`ABSTAIN` and radius 0.

        Parameters
        ----------
        x : torch.Tensor
            One floating-point input, no batch dimension.
        n0, n : int
            Guessing and counting samples (>= 1), independent draws.
        alpha : float
            Error probability, in (0, 1).
        generator : torch.Generator, optional
            Source of randomness (any device); same seed, same result.

        Returns
        -------
        ClassCertificate
        """
        n0 = S.check_int(n0, "n0")
        n = S.check_int(n, "n")
        alpha = S.check_alpha(alpha)
        sampled = S.guess_and_count(self.model, self.sampler, x, num_classes=self.num_classes,
                                    n0=n0, n=n, batch_size=self.batch_size, layout="BC",
                                    generator=generator, progress=self.progress)
        t0 = time.perf_counter()
        guess = int(sampled.guesses.item())
        count = int(sampled.counts.item())
        pa_lower = float(clopper_pearson_lower(count, n, alpha))
        if pa_lower > 0.5:
            label, radius = guess, float(self.sampler.radius(pa_lower))
        else:
            label, radius = ABSTAIN, 0.0
        return ClassCertificate(label, radius, pa_lower, guess, count, n0, n, alpha,
                                sampled.seconds, time.perf_counter() - t0,
                                bool(self.sampler.sound))
