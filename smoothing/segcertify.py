"""SEGCERTIFY: certified segmentation by randomized smoothing (Algorithm 2 of [1]_).

References
----------
.. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
   Randomized Smoothing", ICML 2021.

One module (~720 lines, more than half docstrings): Algorithm 2, its certificate and
its radius map are one public class; the sampling itself is in :mod:`smoothing._sampling`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

import multitest
from multitest._randomized import check_rng, rng_record
from samplers import Sampler
from smoothing import _sampling as S
from smoothing._labels import soundness_note
from smoothing._precision import FastForward, check_precision, fast_forward
from smoothing._radius import RadiusMap, radius_map_from_counts
from smoothing._sampling import ABSTAIN

__all__ = [
    "ABSTAIN",
    "CERTIFYING_CORRECTIONS",
    "RadiusMap",
    "SegCertify",
    "SegmentationCertificate",
]

#: Corrections that control the (k-)FWER under *arbitrary* dependence between
#: components -- the ones Proposition 1 needs. The other methods of
#: :data:`multitest.COUNT_METHODS` are accepted with a warning and give
#: ``sound=False`` results.
CERTIFYING_CORRECTIONS: frozenset[str] = frozenset(
    {"bonferroni", "holm", "generalized_bonferroni", "lehmann_romano"}
)


@dataclass(frozen=True, eq=False)
class SegmentationCertificate:
    """Output of :meth:`SegCertify.certify` for one input.

    Attributes
    ----------
    labels : torch.Tensor
        int64, shape of the components ((H, W) for an image, (N,) for a point
        cloud), on the CPU: the certified class of every component, or
        :data:`ABSTAIN` (-1) where SEGCERTIFY abstains. ``-1`` is never a class.
    radius : float
        ``sampler.radius(tau)``: every non-abstaining label is certified for all
        perturbations in the sampler's threat model up to this radius.
    guesses : torch.Tensor
        int64, component shape: the class guessed from the ``n0`` samples (also
        where the component abstains).
    counts : torch.Tensor
        int64, component shape: how often the guessed class occurred in the ``n``
        counting samples -- the sufficient statistic of the test.
    counts0 : torch.Tensor
        int64, component shape: how often the guessed class occurred in the ``n0``
        guessing samples.
    threshold : int
        The smallest certified count (``n + 1`` when nothing is certified). With
        the conservative test (the default) it is an exact count threshold:
        ``labels != ABSTAIN`` exactly where ``counts >= threshold``. With
        ``randomized=True`` it is not: every component with ``counts >
        threshold`` is certified, those with ``counts == threshold`` only where
        their ``U`` draw allowed it.
    params : Mapping
        The parameters of the run (``n0``, ``n``, ``tau``, ``alpha``,
        ``correction``, ``k``, ``num_classes``, ``batch_size``, ``layout``,
        ``sampler``, ``threat_model``, ``randomized``). With ``randomized=True``
        also ``rng_seed`` (the integer seed passed as ``rng``, else ``None``)
        and ``rng_state`` (the numpy bit-generator state before the ``U``
        draws, JSON-ready), which reproduce the certificate from its counts.
    time_sampling, time_testing : float
        Wall-clock seconds spent sampling (both phases, device synchronised) and
        testing (p-values, correction, labels).
    sound : bool
        ``True`` if the certificate is a proven statement: the sampler is sound
        and the correction controls the FWER under arbitrary dependence.
    pvalues, pvalues_adjusted : torch.Tensor
        float64, component shape, computed on first access: the one-sided binomial
        p-values of ``H0: p <= tau`` and the correction's adjusted p-values.
    radius_map : torch.Tensor
        float64, component shape, computed on first access from the same ``counts``:
        every component's own certified radius, 0 where it abstains -- the
        Bonferroni map of :meth:`SegCertify.radius_map` at this certificate's
        ``alpha`` (call that method for the ladder or another ``alpha``).
    """

    labels: torch.Tensor
    radius: float
    guesses: torch.Tensor
    counts: torch.Tensor
    counts0: torch.Tensor
    threshold: int
    params: Mapping[str, Any]
    time_sampling: float
    time_testing: float
    sound: bool
    _test: multitest.CountCertificate = field(repr=False)
    _sampler: Sampler | None = field(default=None, repr=False)

    #: The label of an abstained component.
    ABSTAIN: ClassVar[int] = ABSTAIN

    @cached_property
    def radius_map(self) -> torch.Tensor:
        if self._sampler is None:
            raise AttributeError("this certificate carries no sampler; use "
                                 "SegCertify.radius_map(cert) instead.")
        return radius_map_from_counts(self.counts, self.guesses, self.params["n"],
                                      self._sampler, alpha=self.params["alpha"]).radius

    @cached_property
    def pvalues(self) -> torch.Tensor:
        return torch.tensor(self._test.pvalues, dtype=torch.float64)  # results are read-only

    @cached_property
    def pvalues_adjusted(self) -> torch.Tensor:
        return torch.tensor(self._test.pvalues_adjusted, dtype=torch.float64)

    @property
    def certified(self) -> torch.Tensor:
        """Boolean mask of the certified (non-abstaining) components."""
        return self.labels != ABSTAIN

    @property
    def num_certified(self) -> int:
        """Number of certified components."""
        return int(self.certified.sum())

    @property
    def certified_fraction(self) -> float:
        """Fraction of components that are certified (1 - abstain rate)."""
        return self.num_certified / max(1, self.labels.numel())

    def __repr__(self) -> str:
        p = self.params
        return (
            f"SegmentationCertificate(shape={tuple(self.labels.shape)}, "
            f"certified_fraction={self.certified_fraction:.4f}, radius={self.radius:.4g}, "
            f"n0={p['n0']}, n={p['n']}, tau={p['tau']}, alpha={p['alpha']}, "
            f"correction={p['correction']!r}, "
            f"sound={soundness_note(str(self.sound), self.sound)}, "
            f"time_sampling={self.time_sampling:.3g}s, time_testing={self.time_testing:.3g}s)"
        )


class SegCertify:
    r"""Certify a segmentation model with randomized smoothing: SEGCERTIFY.

    Wraps a base model ``f`` and a smoothing distribution into the thresholded
    smoothed model :math:`\bar f^\tau` of [1]_ (§5): component ``i`` gets the class
    :math:`c_{A,i}` whose probability under the noise exceeds ``tau``, and abstains
    otherwise. :meth:`certify` evaluates it by Monte-Carlo sampling with Algorithm 2
    of [1]_ and returns, per component, a certified class or :data:`ABSTAIN`.

    **Guarantee (Proposition 1 of [1]_).** With probability at least
    ``1 - alpha`` over the randomness of :meth:`certify`, every component it does
    not abstain on is a non-abstaining component of :math:`\bar f^\tau(x)` with the
    same class; and by Theorem 5.1 of [1]_ :math:`\bar f^\tau` keeps that class
    for every perturbation :math:`\delta` of the input within ``radius`` in the
    sampler's threat model (:math:`\|\delta\|_2 \le \sigma\,\Phi^{-1}(\tau)` for
    :class:`samplers.GaussianL2`), simultaneously for all such components. With
    ``correction='lehmann_romano'`` or ``'generalized_bonferroni'`` and ``k > 1``
    the statement weakens to "at most ``k - 1`` wrong components" (k-FWER).

    Parameters
    ----------
    model : torch.nn.Module or callable
        The base model. It receives a batch of perturbed inputs on its own device
        and returns logits (or any scores; only the argmax is used) in the layout
        given by ``layout``.
    sampler : samplers.Sampler
        The smoothing distribution, e.g. ``samplers.GaussianL2(sigma=0.25)`` (or
        ``GaussianL2(0.25, point_cloud=True)`` for point clouds). Its
        ``radius(tau)`` is the certified radius.
    num_classes : int
        Number of classes the model scores; its output is checked against it.
    n0 : int
        Number of samples for guessing the top class of every component (>= 1).
    n : int
        Number of samples for the test (>= 1), independent of the ``n0`` samples.
    tau : float
        Threshold on the top-class probability, in [1/2, 1).
    alpha : float
        Family-wise error rate of the whole certificate, in (0, 1).
    correction : str, default 'holm'
        Multiple-testing procedure of :func:`multitest.certify_counts`: one of
        ``'holm'``, ``'bonferroni'``, ``'lehmann_romano'``,
        ``'generalized_bonferroni'`` (:data:`CERTIFYING_CORRECTIONS`). Procedures
        that need independence or positive dependence (``'sidak'``,
        ``'hochberg'``, ...) or control the FDR are accepted with a warning and
        produce ``sound=False`` results.
    k : int, default 1
        ``k`` of the k-FWER procedures; 1 otherwise. With probability at least
        ``1 - alpha`` fewer than ``k`` certified components are wrong. It must not
        exceed the number ``N`` of components of the input (checked by
        :meth:`certify`): with ``k > N`` the promise is empty.
    batch_size : int
        Number of perturbed copies the model sees at once (>= 1); the last batch
        of each phase holds the remainder.
    layout : {'auto', 'BCHW', 'BHWC', 'BNC', 'BCN'}, default 'auto'
        Layout of the model's output. ``'auto'``: the model's ``layout``
        attribute (all :mod:`smoothing.adapters` classes declare one), else
        ``'BCHW'`` for images and ``'BNC'``/``'BCN'`` for point clouds, inferred
        from the output shape (an ambiguous shape raises).
    progress : bool, default False
        Show a tqdm progress bar over the batches.
    randomized : bool, default False
        Opt in to the exact randomized binomial test
        (:func:`multitest.certify_counts` with ``randomized=True``): more
        components certified from the same counts, but the certificate then
        depends on one ``U ~ U(0, 1)`` per component drawn from the ``rng`` passed
        to :meth:`certify` (see ``docs/certificates.md``). The guarantee holds
        over the noise *and* the ``U`` draws; two runs with different ``rng``
        may certify different components.
    precision : {'float32', 'bfloat16', 'float16'}, default 'float32'
        Run the model's forward pass under :func:`torch.autocast` in this dtype.
        The noise, the counts and the test stay exact; the base classifier becomes
        the model *as run in that precision* -- a different, still fixed function,
        and the certificate is about it (see ``docs/smoothing.md``).
    compile : bool or str, default False
        :func:`torch.compile` the model (``True``: the default backend; a string:
        that backend). A compilation failure falls back to the eager model with one
        :class:`~smoothing._precision.CompileFallbackWarning` naming the cause.
    channels_last : bool or None, default None
        Feed 4-d inputs in channels_last memory format (``None``: on CUDA with a
        reduced precision or compilation).

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``tau`` is outside [1/2, 1), ``alpha`` outside (0, 1), ``n0``, ``n``,
        ``batch_size`` or ``num_classes`` < 1, ``correction`` is unknown,
        ``k != 1`` for a procedure without ``k``, ``precision`` is unknown, or the
        model's device cannot run it (e.g. ``'float16'`` where autocast lacks it).

    See Also
    --------
    smoothing.SmoothClassifier : Cohen et al.'s CERTIFY/PREDICT (one component).
    smoothing.IndivClass, smoothing.JointClass : the baselines of §4 of [1]_.
    multitest.certify_counts : the testing step.

    Notes
    -----
    **Inputs.** :meth:`certify` takes ONE input without a batch dimension: an image
    (C, H, W) (labels (H, W)) or a point cloud (N, d) (labels (N,)). It is moved to
    the model's device (the device of its first parameter or buffer); the noise is
    drawn there.

    **Algorithm** (Algorithm 2 of [1]_). (1) Draw ``n0`` perturbed copies, count
    every component's predicted classes (an N x C table on the device, in the
    smallest integer dtype that holds ``n0``) and guess
    :math:`\hat c_i` = the most frequent class (ties: the lowest index). (2) Draw
    ``n`` *new* copies and count, per component, only the matches with
    :math:`\hat c_i` (N integers). (3) Move the N counts to the CPU -- the only
    thing that crosses into :mod:`multitest` -- and reject :math:`H_{0,i}: p_i \le
    \tau` with the binomial test and the FWER ``correction`` at level ``alpha``.
    (4) Abstain where not rejected; ``radius = sampler.radius(tau)``.

    Every sample gets fresh noise (:meth:`samplers.Sampler.perturb` on a batch of
    copies), the two phases use independent random streams, and no sample is
    stored, so peak extra memory is O(N C + batch_size x model activations),
    independent of ``n``. The model runs under :func:`torch.inference_mode` and in
    eval mode (``model.eval()`` is called on every run).

    **Cost.** ``(n0 + n) / batch_size`` forward passes, one argmax and one
    scatter-add per batch, then O(N + n) for the test.

    **Prediction.** Evaluating :math:`\bar f^\tau` and certifying it are the same
    algorithm (§5.1 of [1]_); :meth:`predict` runs it with a looser ``alpha`` or
    a smaller ``n``.

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021.

    Examples
    --------
    A 1x1-convolution "segmenter" of 2-class images (class 1 where the red channel
    exceeds 1/2), certified at 8x8 pixels:

    >>> import torch
    >>> from samplers import GaussianL2
    >>> from smoothing import SegCertify, ABSTAIN
    >>> model = torch.nn.Conv2d(3, 2, kernel_size=1)
    >>> with torch.no_grad():
    ...     _ = model.weight.zero_(); _ = model.bias.zero_()
    ...     model.weight[1, 0] = 8.0; model.bias[1] = -4.0
    >>> x = torch.zeros(3, 8, 8)
    >>> x[0, :, 4:] = 1.0                      # right half red
    >>> cert = SegCertify(model, GaussianL2(sigma=0.25), num_classes=2, n0=10, n=100,
    ...                   tau=0.75, alpha=0.001, batch_size=50).certify(
    ...     x, generator=torch.Generator().manual_seed(0))
    >>> cert.labels.shape, cert.labels.dtype
    (torch.Size([8, 8]), torch.int64)
    >>> cert.labels[0]                         # certified left / right halves
    tensor([0, 0, 0, 0, 1, 1, 1, 1])
    >>> round(cert.radius, 4)                  # 0.25 * Phi^-1(0.75)
    0.1686
    >>> cert.certified_fraction
    1.0
    """

    #: The label of an abstained component.
    ABSTAIN: ClassVar[int] = ABSTAIN

    def __init__(
        self,
        model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
        sampler: Sampler,
        *,
        num_classes: int,
        n0: int,
        n: int,
        tau: float,
        alpha: float,
        correction: str = "holm",
        k: int = 1,
        batch_size: int,
        layout: str = "auto",
        progress: bool = False,
        randomized: bool = False,
        precision: str = "float32",
        compile: bool | str = False,
        channels_last: bool | None = None,
    ) -> None:
        self.model = S.check_model(model)
        self.precision = check_precision(precision)
        # the forward pass SAMPLE runs: the model itself, or autocast / compiled around it
        self._forward = fast_forward(self.model, precision=self.precision, compile=compile,
                                     channels_last=channels_last)
        self.sampler = S.check_sampler(sampler)
        self.num_classes = S.check_int(num_classes, "num_classes")
        self.n0 = S.check_int(n0, "n0")
        self.n = S.check_int(n, "n")
        self.tau = S.check_tau(tau)
        self.alpha = S.check_alpha(alpha)
        self.correction = _check_correction(correction)
        self.k = S.check_int(k, "k")
        if self.k != 1 and not multitest.COUNT_METHODS[self.correction].takes_k:
            raise ValueError(
                f"`k` must be 1 for correction {self.correction!r}; got {k!r} (k-FWER: "
                "use 'lehmann_romano' or 'generalized_bonferroni')."
            )
        self.batch_size = S.check_int(batch_size, "batch_size")
        self.layout = S.check_layout(layout, allowed=("BCHW", "BHWC", "BNC", "BCN"))
        self.progress = bool(progress)
        if not isinstance(randomized, bool):
            raise TypeError(f"`randomized` must be a bool; got {type(randomized).__name__}.")
        self.randomized = randomized
        self.radius = self.sampler.radius(self.tau)

    def __repr__(self) -> str:
        return (
            f"SegCertify(sampler={self.sampler!r}, num_classes={self.num_classes}, "
            f"n0={self.n0}, n={self.n}, tau={self.tau}, alpha={self.alpha}, "
            f"correction={self.correction!r}, k={self.k}, batch_size={self.batch_size}"
            + (", randomized=True" if self.randomized else "")
            + (f", precision={self.precision!r}" if self.precision != "float32" else "")
            + (f", compile={self.compiled!r}" if self.compiled else "") + ")"
        )

    @property
    def base_classifier(self) -> Any:
        """The callable SAMPLE runs: the model, or the model under autocast / compiled
        (:class:`~smoothing._precision.FastForward`) when ``precision`` or ``compile`` is
        set. Evaluate the base model through it to evaluate the classifier that is
        certified."""
        return self._forward

    @property
    def compiled(self) -> bool | str:
        """The ``torch.compile`` backend in use (``True``: the default), else ``False``
        (not asked for, or fallen back to the eager model)."""
        fast = self._forward
        return fast.compile if isinstance(fast, FastForward) and fast.compiled else False

    def _check_k(self, num_components: int) -> None:
        """Refuse k-FWER with ``k`` above the number of components (a vacuous promise)."""
        check_k_components(self.k, num_components)

    @property
    def sound(self) -> bool:
        """Whether results are proven certificates (sound sampler and correction)."""
        return bool(self.sampler.sound) and self.correction in CERTIFYING_CORRECTIONS

    def certify(self, x: torch.Tensor, *, generator: torch.Generator | None = None,
                rng=None) -> SegmentationCertificate:
        """Run SEGCERTIFY (Algorithm 2) on one input.

        Parameters
        ----------
        x : torch.Tensor
            ONE floating-point input without a batch dimension: an image (C, H, W)
            or a point cloud (N, d).
        generator : torch.Generator, optional
            Source of randomness, on any device. The ``n0`` and ``n`` phases draw
            from two independent streams seeded from it, on the model's device;
            the same seed gives the same certificate. ``None``: torch's global RNG.
        rng : numpy.random.Generator or int, optional
            Source of the ``U(0, 1)`` draws of the randomized test; required when
            the certifier was built with ``randomized=True``, ignored otherwise.

        Returns
        -------
        SegmentationCertificate
            ``labels`` (``ABSTAIN = -1`` where not certified), ``radius``,
            ``guesses``, ``counts``, p-values, parameters and timings.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor, or the model returns no
            floating-point tensor.
        ValueError
            If ``x`` contains NaN/inf, is empty or has the wrong number of
            dimensions, the model cannot process it, ``k`` exceeds its number of
            components, or the model output has the wrong shape, the wrong number
            of classes or non-finite values.
        """
        rng, record = self._check_rng(rng)
        return self._run(x, self.n0, self.n, self.alpha, generator, rng=rng, record=record)

    def predict(self, x: torch.Tensor, *, n: int | None = None, n0: int | None = None,
                alpha: float | None = None, generator: torch.Generator | None = None,
                rng=None) -> SegmentationCertificate:
        """Evaluate the thresholded smoothed model at ``x``, typically more cheaply.

        The same algorithm as :meth:`certify` (§5.1 of [1]_): for a fixed ``tau``,
        predicting :math:`\\bar f^\\tau(x)` and certifying it both decide
        :math:`p_{A,i} > \\tau` for every component. Pass a smaller ``n`` or a
        larger ``alpha`` for a faster answer that is right w.p. ``1 - alpha``.

        Parameters
        ----------
        x : torch.Tensor
            ONE input, as in :meth:`certify`.
        n, n0 : int, optional
            Sample sizes; default: this object's.
        alpha : float, optional
            Error probability; default: this object's.
        generator : torch.Generator, optional
            As in :meth:`certify`.
        rng : numpy.random.Generator or int, optional
            As in :meth:`certify`.

        Returns
        -------
        SegmentationCertificate
            As :meth:`certify`; ``params`` records the values used.

        Raises
        ------
        TypeError, ValueError
            As :meth:`certify`, and for invalid ``n``, ``n0`` or ``alpha``.
        """
        n = self.n if n is None else S.check_int(n, "n")
        n0 = self.n0 if n0 is None else S.check_int(n0, "n0")
        alpha = self.alpha if alpha is None else S.check_alpha(alpha)
        rng, record = self._check_rng(rng)
        return self._run(x, n0, n, alpha, generator, rng=rng, record=record)

    def retest(self, cert: SegmentationCertificate, tau: float, *,
               rng=None) -> SegmentationCertificate:
        """``cert``'s counts tested again at another threshold ``tau``, without sampling.

        The guesses and counts of Algorithm 2 do not depend on ``tau``; only the
        test does. The result is exactly what :meth:`certify` with this ``tau``
        returns for the same generator (common random numbers). Each ``tau``'s
        certificate holds with probability ``1 - alpha`` on its own, not
        simultaneously over several ``tau``.

        Parameters
        ----------
        cert : SegmentationCertificate
            A certificate of this certifier (same correction and ``k``).
        tau : float
            The new threshold, in [1/2, 1).
        rng : numpy.random.Generator or int, optional
            As in :meth:`certify` (required with ``randomized=True``).

        Returns
        -------
        SegmentationCertificate
            ``labels``, ``radius``, ``threshold``, ``params['tau']`` (and, with
            ``randomized=True``, ``params['rng_seed']`` and ``params['rng_state']``
            of this test's ``rng``), ``time_testing`` and the p-values of the new
            test; the rest is ``cert``'s.

        Raises
        ------
        ValueError
            If ``tau`` is outside [1/2, 1) or ``cert`` was made with another
            correction or ``k``.

        Examples
        --------
        >>> import torch
        >>> from samplers import GaussianL2
        >>> model = torch.nn.Conv2d(3, 2, kernel_size=1)
        >>> seg = SegCertify(model, GaussianL2(0.25), num_classes=2, n0=10, n=100,
        ...                  tau=0.75, alpha=0.001, batch_size=50)
        >>> x = torch.rand(3, 4, 4)
        >>> cert = seg.certify(x, generator=torch.Generator().manual_seed(0))
        >>> again = SegCertify(model, GaussianL2(0.25), num_classes=2, n0=10, n=100,
        ...                    tau=0.9, alpha=0.001, batch_size=50).certify(
        ...     x, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(seg.retest(cert, 0.9).labels, again.labels)
        True
        """
        tau = S.check_tau(tau)
        p = cert.params
        if (p["correction"], p["k"]) != (self.correction, self.k):
            raise ValueError(f"`cert` was made with correction={p['correction']!r}, "
                             f"k={p['k']}; this certifier uses {self.correction!r}, "
                             f"k={self.k}.")
        rng, record = self._check_rng(rng)
        t0 = time.perf_counter()
        labels, test = self._test(cert.counts.numpy(), cert.guesses, p["n"], tau, p["alpha"],
                                  rng)
        return replace(cert, labels=labels, radius=self.sampler.radius(tau),
                       threshold=int(test.threshold), params={**p, "tau": tau, **record},
                       time_testing=time.perf_counter() - t0, _test=test)

    def radius_map(self, cert: SegmentationCertificate, *, method: str = "bonferroni",
                   alpha: float | None = None, levels=None) -> RadiusMap:
        r"""Every component's own certified radius, from ``cert``'s counts (no sampling).

        Component ``i`` gets the radius ``sampler.radii(p_lower_i)`` of the lower
        confidence bound ``p_lower_i`` on its guessed class's probability, valid
        simultaneously over all components
        (:func:`multitest.simultaneous_lower_bounds`), and abstains (radius 0)
        where ``p_lower_i <= 1/2``.

        **Guarantee.** With probability at least ``1 - alpha`` over the ``n``
        counting samples, simultaneously for every component with radius
        :math:`r_i > 0`: the guessed class has probability :math:`p_i \ge
        \underline p_i > 1/2` under the noise, so the smoothed model (threshold
        1/2) predicts it at every input within :math:`r_i` in the sampler's threat
        model (Theorem 5.1 of [1]_ with :math:`\tau = \underline p_i`; for
        :class:`samplers.GaussianL2`, :math:`r_i = \sigma\,\Phi^{-1}(\underline p_i)`).
        The ``n0`` guesses only pick the hypotheses; any guess keeps the guarantee.

        **Family budget.** The map is a second statement made from the same
        counts. With ``method='bonferroni'`` and the same ``alpha`` as a fixed-tau
        certificate with ``correction='bonferroni'``, the map certifies the same
        class with ``radius >= sampler.radius(tau)`` exactly where that certificate
        does, for every ``tau``, and its error event contains the certificate's:
        both hold together with probability ``1 - alpha``. A Holm certificate can
        certify components the Bonferroni map does not; map and Holm certificate
        hold together with probability ``1 - 2 alpha`` (union bound). With
        ``method='ladder'`` at ``alpha`` versus the grid of fixed-tau certificates
        at its levels, each at ``alpha / L`` (the same total budget): the map
        reaches every level a Bonferroni certificate certifies, and the top level
        wherever the Holm certificate at the top level certifies.

        Parameters
        ----------
        cert : SegmentationCertificate
            A certificate from :meth:`certify` / :meth:`predict` of this certifier.
        method : {'bonferroni', 'ladder'}, default 'bonferroni'
            Simultaneous bounds by Clopper-Pearson at ``alpha / N``, or by Holm over
            a ladder of levels.
        alpha : float, optional
            Error probability of the whole map; default ``cert``'s.
        levels : sequence of float, optional
            The ladder for ``method='ladder'``; default
            :func:`multitest.ladder_levels`. It must not be chosen after looking
            at the counts.

        Returns
        -------
        RadiusMap
            ``radius``, ``labels``, ``p_lower``, ``method``, ``alpha``, ``levels``,
            ``sound``.

        Raises
        ------
        TypeError
            If ``cert`` is not a :class:`SegmentationCertificate`.
        ValueError
            For a bad ``method``, ``alpha`` or ``levels``.

        Examples
        --------
        >>> import torch
        >>> from samplers import GaussianL2
        >>> model = torch.nn.Conv2d(3, 2, kernel_size=1)
        >>> seg = SegCertify(model, GaussianL2(0.25), num_classes=2, n0=10, n=100,
        ...                  tau=0.75, alpha=0.001, correction="bonferroni", batch_size=50)
        >>> cert = seg.certify(torch.rand(3, 4, 4), generator=torch.Generator().manual_seed(0))
        >>> rmap = seg.radius_map(cert)
        >>> rmap.radius.shape, bool((rmap.radius[cert.certified] >= cert.radius).all())
        (torch.Size([4, 4]), True)
        >>> torch.equal(rmap.radius, cert.radius_map)
        True
        """
        if not isinstance(cert, SegmentationCertificate):
            raise TypeError(f"`cert` must be a SegmentationCertificate; got "
                            f"{type(cert).__name__}.")
        alpha = cert.params["alpha"] if alpha is None else S.check_alpha(alpha)
        return radius_map_from_counts(cert.counts, cert.guesses, cert.params["n"],
                                      self.sampler, alpha=alpha, method=method,
                                      levels=levels)

    def _check_rng(self, rng) -> tuple[np.random.Generator | None, dict]:
        """The numpy Generator of the randomized test (``None`` when not randomized)
        and what ``params`` records of it (nothing when not randomized)."""
        if not self.randomized:
            return None, {}
        if rng is None:
            raise ValueError("`rng` is required: this certifier uses the randomized test "
                             "(randomized=True); pass a numpy Generator or an integer seed.")
        generator = check_rng(rng, True)
        return generator, rng_record(rng, generator)  # the state before the U draws

    def _test(self, counts: np.ndarray, guesses: torch.Tensor, n: int, tau: float,
              alpha: float, rng=None) -> tuple[torch.Tensor, multitest.CountCertificate]:
        """The testing step of Algorithm 2: (labels, the count certificate)."""
        self._check_k(counts.size)
        # BINPVALUE + FWERCONTROL: only the counts cross into multitest
        test = multitest.certify_counts(counts, n, tau, alpha, method=self.correction,
                                        k=self.k, randomized=rng is not None, rng=rng)
        # abstain where H0: p <= tau was not rejected
        return torch.where(torch.tensor(test.reject), guesses, ABSTAIN), test

    def _run(self, x: torch.Tensor, n0: int, n: int, alpha: float,
             generator: torch.Generator | None, *, rng=None, record: Mapping | None = None,
             shares: tuple[int, int] | None = None,
             reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
             ) -> SegmentationCertificate:
        # SAMPLE n0 -> guesses; SAMPLE n -> counts of the guesses (on the device).
        # Distributed (smoothing.distributed): this process draws `shares` of the
        # n0 and n samples and `reduce` sums the counts over all processes.
        local_n0, local_n = (n0, n) if shares is None else shares
        if self.k > 1 and isinstance(x, torch.Tensor) and x.ndim in (2, 3):
            layout = S.resolve_layout(self.layout, self.model, x)
            self._check_k(math.prod(S.component_shape(x, layout)))  # before sampling
        sampled = S.guess_and_count(
            self._forward, self.sampler, x, num_classes=self.num_classes, n0=local_n0,
            n=local_n, batch_size=self.batch_size, layout=self.layout, generator=generator,
            progress=self.progress, reduce=reduce,
        )
        t0 = time.perf_counter()
        components = sampled.components
        counts = sampled.counts.cpu().numpy().reshape(components)
        guesses = sampled.guesses.cpu().reshape(components)
        labels, test = self._test(counts, guesses, n, self.tau, alpha, rng)
        time_testing = time.perf_counter() - t0
        params = {
            "n0": n0, "n": n, "tau": self.tau, "alpha": alpha,
            "correction": self.correction, "k": self.k, "num_classes": self.num_classes,
            "batch_size": self.batch_size, "layout": sampled.layout,
            "sampler": repr(self.sampler), "threat_model": self.sampler.threat_model,
            "randomized": self.randomized,
            "precision": self.precision, "compile": self.compiled, **(record or {}),
        }
        return SegmentationCertificate(
            labels=labels,
            radius=self.radius,
            guesses=guesses,
            counts=torch.from_numpy(counts.astype(np.int64)),
            counts0=sampled.counts0.cpu().to(torch.int64).reshape(components),
            threshold=int(test.threshold),
            params=params,
            time_sampling=sampled.seconds,
            time_testing=time_testing,
            sound=self.sound,
            _test=test,
            _sampler=self.sampler,
        )


def check_k_components(k: int, num_components: int) -> None:
    """Refuse ``k`` above ``num_components``: k-FWER with ``k > N`` promises nothing.

    Examples
    --------
    >>> check_k_components(4, 4)
    >>> check_k_components(5, 4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `k` is 5 but the input has only 4 components: ...
    """
    if k > num_components:
        raise ValueError(
            f"`k` is {k} but the input has only {num_components} components: k-FWER "
            f"with k > N promises nothing (fewer than k components can be wrong at all), "
            f"so every component would be 'certified'. Choose k <= {num_components}."
        )


def _check_correction(correction: object) -> str:
    if correction not in multitest.COUNT_METHODS:
        choices = ", ".join(repr(m) for m in multitest.COUNT_METHODS)
        raise ValueError(f"`correction` must be one of {choices}; got {correction!r}.")
    if correction not in CERTIFYING_CORRECTIONS:
        warnings.warn(
            f"correction {correction!r} does not control the FWER under the arbitrary "
            "dependence between the components of one input; the results are not "
            "certificates (sound=False). Use 'holm' or 'bonferroni' to certify.",
            UserWarning,
            stacklevel=3,
        )
    return str(correction)
