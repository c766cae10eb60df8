"""The two direct reductions of segmentation to classification (§4 of the paper).

``JointClass``
    One classification problem over the product space: the whole segmentation is
    the class. CERTIFY (Clopper-Pearson at ``alpha``) on how often the noisy
    segmentation equals the guessed one *exactly*.
``IndivClass``
    CERTIFY for every component, with shared samples and Bonferroni's ``alpha / N``;
    the overall radius is the smallest one and any abstention abstains everywhere.

Both are all-or-nothing and fail on a single unstable component -- the "bad
component" problem that SEGCERTIFY's threshold ``tau`` avoids. They sample
through the same code as :class:`~smoothing.SegCertify`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from multitest import clopper_pearson_lower
from samplers import Sampler
from smoothing import _sampling as S
from smoothing._sampling import ABSTAIN

__all__ = ["BaselineCertificate", "IndivClass", "JointClass"]


@dataclass(frozen=True, eq=False)
class BaselineCertificate:
    """Output of :meth:`JointClass.certify` and :meth:`IndivClass.certify`.

    Attributes
    ----------
    labels : torch.Tensor
        int64, component shape: the guessed segmentation if certified, else all
        :data:`ABSTAIN`.
    certified : bool
        Whether the whole segmentation is certified.
    radius : float
        Certified radius (0.0 when abstaining).
    pA_lower : torch.Tensor
        float64 Clopper-Pearson lower bound(s): 0-d for JointClass, per component
        for IndivClass.
    guesses : torch.Tensor
        int64, component shape: the guessed segmentation.
    counts : torch.Tensor
        int64: JointClass: 0-d, samples whose whole segmentation equals the guess;
        IndivClass: per component, matches with the guess.
    method : str
        ``'jointclass'`` or ``'indivclass'``.
    params : Mapping
        Parameters of the run.
    time_sampling, time_testing : float
        Wall-clock seconds.
    sound : bool
        Copied from the sampler.
    """

    labels: torch.Tensor
    certified: bool
    radius: float
    pA_lower: torch.Tensor
    guesses: torch.Tensor
    counts: torch.Tensor
    method: str
    params: Mapping[str, Any]
    time_sampling: float
    time_testing: float
    sound: bool

    ABSTAIN: ClassVar[int] = ABSTAIN

    @property
    def certified_fraction(self) -> float:
        """1.0 if certified, else 0.0 (all-or-nothing)."""
        return 1.0 if self.certified else 0.0


class _Baseline:
    method: ClassVar[str]

    ABSTAIN: ClassVar[int] = ABSTAIN

    def __init__(self, model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
                 sampler: Sampler, *, num_classes: int, n0: int, n: int, alpha: float,
                 batch_size: int, layout: str = "auto", progress: bool = False) -> None:
        self.model = S.check_model(model)
        self.sampler = S.check_sampler(sampler)
        self.num_classes = S.check_int(num_classes, "num_classes")
        self.n0 = S.check_int(n0, "n0")
        self.n = S.check_int(n, "n")
        self.alpha = S.check_alpha(alpha)
        self.batch_size = S.check_int(batch_size, "batch_size")
        self.layout = S.check_layout(layout, allowed=("BCHW", "BHWC", "BNC", "BCN"))
        self.progress = bool(progress)

    def _params(self, layout: str) -> dict[str, Any]:
        return {"n0": self.n0, "n": self.n, "alpha": self.alpha,
                "num_classes": self.num_classes, "batch_size": self.batch_size,
                "layout": layout, "sampler": repr(self.sampler),
                "threat_model": self.sampler.threat_model}

    def _result(self, guesses, counts, pa_lower, certified, radius, layout, t_sampling,
                t0) -> BaselineCertificate:
        labels = guesses if certified else torch.full_like(guesses, ABSTAIN)
        return BaselineCertificate(
            labels=labels, certified=certified, radius=radius,
            pA_lower=pa_lower, guesses=guesses, counts=counts, method=self.method,
            params=self._params(layout), time_sampling=t_sampling,
            time_testing=time.perf_counter() - t0, sound=bool(self.sampler.sound),
        )


class IndivClass(_Baseline):
    """INDIVCLASS: Cohen et al.'s CERTIFY on every component, Bonferroni-corrected.

    Guesses every component's class from ``n0`` samples and counts it in ``n``
    new samples (the same samples for all components, as SEGCERTIFY does); the
    component's Clopper-Pearson lower bound at level ``1 - alpha / N`` must exceed
    1/2 **for every component**, else the whole output abstains. The radius is
    the smallest per-component radius, ``sampler.radius(min_i pA_lower_i)``.

    **Guarantee.** With probability at least ``1 - alpha`` (union bound over the
    N components), a certified segmentation is the smoothed classifiers'
    segmentation and is constant within ``radius``.

    Parameters
    ----------
    model, sampler, num_classes, n0, n, alpha, batch_size, layout, progress
        As :class:`~smoothing.SegCertify` (there is no ``tau``).

    Examples
    --------
    >>> import torch
    >>> from samplers import GaussianL2
    >>> from smoothing import IndivClass
    >>> model = torch.nn.Conv2d(3, 2, kernel_size=1)
    >>> with torch.no_grad():
    ...     _ = model.weight.zero_(); _ = model.bias.copy_(torch.tensor([0.0, 1.0]))
    >>> cert = IndivClass(model, GaussianL2(0.25), num_classes=2, n0=10, n=100,
    ...                   alpha=0.001, batch_size=50).certify(torch.zeros(3, 4, 4))
    >>> cert.certified, round(float(cert.pA_lower.min()), 4)  # (0.001 / 16)^(1 / 100)
    (True, 0.9077)
    >>> round(cert.radius, 4)                   # 0.25 * Phi^-1(0.9077)
    0.3318
    """

    method: ClassVar[str] = "indivclass"

    def certify(self, x: torch.Tensor, *,
                generator: torch.Generator | None = None) -> BaselineCertificate:
        """Run INDIVCLASS on ONE input (no batch dimension)."""
        sampled = S.guess_and_count(
            self.model, self.sampler, x, num_classes=self.num_classes, n0=self.n0, n=self.n,
            batch_size=self.batch_size, layout=self.layout, generator=generator,
            progress=self.progress,
        )
        t0 = time.perf_counter()
        components = sampled.components
        counts = sampled.counts.cpu().to(torch.int64).reshape(components)
        num = max(1, counts.numel())
        pa_lower = torch.from_numpy(clopper_pearson_lower(counts.numpy(), self.n,
                                                           self.alpha / num))
        certified = bool((pa_lower > 0.5).all())
        radius = float(self.sampler.radius(float(pa_lower.min()))) if certified else 0.0
        guesses = sampled.guesses.cpu().reshape(components)
        return self._result(guesses, counts, pa_lower, certified, radius, sampled.layout,
                            sampled.seconds, t0)


class JointClass(_Baseline):
    """JOINTCLASS: Cohen et al.'s CERTIFY with the whole segmentation as the class.

    The guess is the segmentation seen most often among ``n0`` noisy samples
    (ties: the one that reached the top count first); the count is the number of
    ``n`` new samples whose segmentation equals it in *every* component. It is
    certified, with radius ``sampler.radius(pA_lower)``, if the Clopper-Pearson
    lower bound (level ``1 - alpha``) exceeds 1/2.

    **Guarantee.** As Cohen et al.'s CERTIFY for the product-space classifier:
    wrong with probability at most ``alpha``.

    Parameters
    ----------
    model, sampler, num_classes, n0, n, alpha, batch_size, layout, progress
        As :class:`~smoothing.SegCertify` (there is no ``tau``).

    Notes
    -----
    Memory stays O(N) however many distinct segmentations occur: the ``n0``
    samples are counted by a 64-bit hash of the segmentation, and only the
    current leader is kept. A hash collision could only change the *guess*; the
    ``n`` count compares segmentations exactly, so the guarantee is unaffected.

    Examples
    --------
    >>> import torch
    >>> from samplers import GaussianL2
    >>> from smoothing import JointClass
    >>> model = torch.nn.Conv2d(3, 2, kernel_size=1)
    >>> with torch.no_grad():
    ...     _ = model.weight.zero_(); _ = model.bias.copy_(torch.tensor([0.0, 1.0]))
    >>> cert = JointClass(model, GaussianL2(0.25), num_classes=2, n0=10, n=100,
    ...                   alpha=0.001, batch_size=50).certify(torch.zeros(3, 4, 4))
    >>> cert.certified, cert.labels.unique().tolist(), int(cert.counts)
    (True, [1], 100)
    """

    method: ClassVar[str] = "jointclass"

    def certify(self, x: torch.Tensor, *,
                generator: torch.Generator | None = None) -> BaselineCertificate:
        """Run JOINTCLASS on ONE input (no batch dimension)."""
        ready = S.prepare(self.model, x, layout=self.layout, num_classes=self.num_classes,
                          generator=generator, streams=2)
        x, device, components = ready.x, ready.device, ready.components
        reader, (gen0, gen1) = ready.reader, ready.generators
        # fixed random weights: a deterministic 64-bit polynomial hash of a segmentation
        weights = torch.randint(-(2**62), 2**62, (reader.num_components,),
                                generator=torch.Generator().manual_seed(0x5E6)).to(device)
        watch = S.Stopwatch(device)
        with watch, torch.inference_mode():
            # SAMPLE n0: the most frequent segmentation (kept: only the leader)
            seen: dict[int, int] = {}
            best, leader = 0, None
            for pred in S.iter_predictions(self.model, self.sampler, x, reader, num=self.n0,
                                           batch_size=self.batch_size, generator=gen0,
                                           progress=self.progress, desc="n0 samples"):
                hashes = (pred * weights).sum(dim=1).tolist()
                for row, h in enumerate(hashes):
                    seen[h] = seen.get(h, 0) + 1
                    if seen[h] > best:
                        best, leader = seen[h], pred[row].clone()
            reader.check_finite()
            # SAMPLE n: how often the whole segmentation equals the guess
            count = torch.zeros((), dtype=torch.int64, device=device)
            for pred in S.iter_predictions(self.model, self.sampler, x, reader, num=self.n,
                                           batch_size=self.batch_size, generator=gen1,
                                           progress=self.progress, desc="n samples"):
                count += (pred == leader).all(dim=1).sum()
            reader.check_finite()
        t0 = time.perf_counter()
        count, leader = count.cpu().clone(), leader.clone()  # ordinary tensors
        pa_lower = torch.tensor(float(clopper_pearson_lower(int(count), self.n, self.alpha)),
                                dtype=torch.float64)
        certified = bool(pa_lower > 0.5)
        radius = float(self.sampler.radius(float(pa_lower))) if certified else 0.0
        guesses = leader.cpu().reshape(components)
        return self._result(guesses, count, pa_lower, certified, radius, reader.layout,
                            watch.seconds, t0)
