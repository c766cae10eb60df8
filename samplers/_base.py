"""The abstract noise-sampler interface shared by every smoothing distribution.

Besides :class:`Sampler` this module holds the small validation helpers that every
concrete sampler runs before it touches the random-number generator, so that the
samplers themselves read as "validate, draw, add".
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch

__all__ = ["Sampler"]


class Sampler(ABC):
    """A smoothing distribution: how to perturb inputs and what radius a threshold buys.

    A sampler is the SAMPLE step of SEGCERTIFY (Algorithm 2 of [1]_) together with
    the radius of the theorem that belongs to its noise distribution (§5.2 of [1]_).

    Subclasses implement

    * :meth:`perturb` -- return ``x`` with one *fresh, independent* perturbation per
      batch element (dimension 0), drawn on ``x.device`` from the
      optional ``generator``; the noise is drawn and added in float32 (float64 for
      a float64 input) and only the sum is cast to ``x.dtype``;
    * :meth:`radius` -- the certified radius of every component whose top-class
      probability under the noise exceeds the threshold ``tau`` in [1/2, 1);
    * :attr:`threat_model` -- one phrase naming the set the radius is measured in
      (a norm ball in input space or in a transformation's parameter space).

    The class attribute :attr:`sound` is ``False`` for heuristics whose radius is
    *not* a proven statement about the adversary named in :attr:`threat_model`;
    reports should then say so (:meth:`describe` does).

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021.
    """

    #: Whether :meth:`radius` is a proven certificate (``False`` for heuristics).
    sound: ClassVar[bool] = True

    @property
    @abstractmethod
    def threat_model(self) -> str:
        """The set the radius is measured in, e.g. ``"l2 ball in input space"``."""

    @abstractmethod
    def perturb(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return a perturbed copy of the batch ``x`` (fresh noise for every element)."""

    @abstractmethod
    def radius(self, tau: float) -> float:
        """Certified radius for the threshold ``tau`` in [1/2, 1)."""

    def radii(self, p_lower):
        r"""Certified radius of every component, from lower bounds on its top-class probability.

        Parameters
        ----------
        p_lower : torch.Tensor or array_like of float
            Lower bounds in [0, 1], any shape (e.g.
            :func:`multitest.simultaneous_lower_bounds`).

        Returns
        -------
        torch.Tensor or numpy.ndarray
            float64 radii, same shape: ``radius(p)`` where ``p > 1/2`` (``inf`` at
            ``p = 1``), 0 where ``p <= 1/2`` (no certificate). A tensor for a
            tensor input (on its device), else a NumPy array.

        Raises
        ------
        TypeError
            If `p_lower` is not real-valued.
        ValueError
            If a value is NaN or outside [0, 1].

        Notes
        -----
        The radius of Theorem 5.1 of [1]_ with :math:`\underline{p_A}` = ``p_lower``
        per component. This generic version calls :meth:`radius` per element; the
        concrete samplers override it with one vectorised expression.
        """
        p, back = _as_probabilities(p_lower)
        flat = p.reshape(-1).tolist()
        out = torch.tensor([self._radius_or_zero(v) for v in flat], dtype=torch.float64)
        return back(out.reshape(p.shape))

    def _radius_or_zero(self, p: float) -> float:
        if p <= 0.5:
            return 0.0
        return math.inf if p >= 1.0 else self.radius(p)

    def describe(self) -> str:
        """One line for reports: the distribution, its parameters and threat model.

        Heuristic samplers (``sound = False``) are flagged at the start of the line.
        """
        line = f"{self!r}: {self.threat_model}"
        if not self.sound:
            line = "[HEURISTIC, not proven: the radius is not a certificate] " + line
        return line


# ---------------------------------------------------------------------------
# Validation helpers (private; shared by the concrete samplers).
# ---------------------------------------------------------------------------


def _check_positive(value: object, name: str) -> float:
    """Return ``value`` as a finite, strictly positive ``float``.

    Raises ``TypeError`` for non-real values (booleans included) and ``ValueError``
    for values that are <= 0, infinite or NaN.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {type(value).__name__}.")
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"`{name}` must be finite and > 0; got {value!r}.")
    return v


def _check_tau(tau: object) -> float:
    """Return ``tau`` as a ``float`` in [1/2, 1) or raise."""
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"`tau` must be a real number; got {type(tau).__name__}.")
    t = float(tau)
    if not 0.5 <= t < 1.0:  # also refuses NaN
        raise ValueError(f"`tau` must lie in [1/2, 1); got {tau!r}.")
    return t


def _as_probabilities(p_lower: object):
    """``(float64 CPU-or-device tensor, function converting a result back)``."""
    if isinstance(p_lower, torch.Tensor):
        if p_lower.dtype.is_complex:
            raise TypeError(f"`p_lower` must be real; got dtype {p_lower.dtype}.")
        p = p_lower.to(torch.float64)

        def back(t: torch.Tensor):
            return t.to(p_lower.device)
    else:
        arr = np.asarray(p_lower)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"`p_lower` must be an array of real numbers; got dtype {arr.dtype}.")
        p = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))

        def back(t: torch.Tensor):
            return t.cpu().numpy()
    if p.numel() and (torch.isnan(p).any() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("`p_lower` must lie in [0, 1] (no NaN); got values outside.")
    return p, back


#: ``p -> radius`` on a float64 CPU tensor, elementwise (a sampler's closed form).
RadiusFormula = Callable[[torch.Tensor], torch.Tensor]


def _radius_via(formula: RadiusFormula, tau: object) -> float:
    """``formula`` at one threshold: exactly the double :func:`_radii_via` gives at
    ``p == tau`` (the same kernel on the same float64 CPU value)."""
    t = _check_tau(tau)
    r = float(formula(torch.tensor([t], dtype=torch.float64))[0])
    return max(0.0, r)  # no -0.0 at tau = 1/2


def _radii_via(formula: RadiusFormula, p_lower: object):
    """:meth:`Sampler.radii` through the sampler's one ``formula``.

    Evaluated in float64 on the CPU whatever the input's device (a GPU's ``ndtri``
    or ``log`` may round differently), and moved back: so ``radii(p)`` equals
    ``radius(p)`` bit for bit, and a component whose lower bound is exactly ``tau``
    gets exactly ``radius(tau)``. Both kernels used (``torch.special.ndtri``,
    ``torch.log``) give each element the same double wherever it sits in the array
    (``tests/test_samplers.py`` checks this).
    """
    p, back = _as_probabilities(p_lower)
    host = p.to("cpu")
    return back(torch.where(host > 0.5, formula(host), 0.0))


def _normal_ppf(p: torch.Tensor) -> torch.Tensor:
    """Standard normal quantile Phi^-1, elementwise: the one inverse of the
    Gaussian-type samplers' ``radius`` and ``radii``."""
    return torch.special.ndtri(p)


def _check_input(x: object, name: str = "x") -> torch.Tensor:
    """``x`` must be a floating-point tensor with a batch dimension."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}.")
    if not torch.is_floating_point(x):
        raise TypeError(f"`{name}` must be a floating-point tensor; got dtype {x.dtype}.")
    if x.ndim < 1:
        raise ValueError(
            f"`{name}` must have a leading batch dimension; got a 0-d tensor."
        )
    return x


def _check_point_cloud(x: torch.Tensor, name: str = "x") -> None:
    """``x`` must be a point-cloud batch of shape (B, N, 3) or (B, N, 6)."""
    if x.ndim != 3 or x.shape[-1] not in (3, 6):
        raise ValueError(
            f"`{name}` must be a point-cloud batch of shape (B, N, 3) or (B, N, 6) "
            f"(positions, then normals); got shape {tuple(x.shape)}."
        )


def _check_generator(generator: object, x: torch.Tensor) -> torch.Generator | None:
    """``generator`` must be ``None`` or a ``torch.Generator`` on ``x``'s device."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"`generator` must be a torch.Generator or None; got {type(generator).__name__}."
        )
    g, d = generator.device, x.device
    if g.type != d.type or (g.index is not None and d.index is not None and g.index != d.index):
        raise ValueError(
            f"`generator` lives on device {g} but `x` is on {d}; noise is drawn on the "
            f"input's device, so pass torch.Generator(device=x.device)."
        )
    return generator


def _add_noise(x: torch.Tensor, noise: torch.Tensor, *, point_cloud: bool) -> torch.Tensor:
    """Add ``noise`` to all of ``x``, or to the positions ``x[..., :3]`` of a point cloud.

    Out of place, so gradients still flow to ``x`` (attacks may differentiate through
    a perturbation).
    """
    if not point_cloud:
        return x + noise
    return torch.cat((x[..., :3] + noise, x[..., 3:]), dim=-1)


def _noise_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype noise is drawn and added in: float64 for float64 inputs, else float32.

    Drawing in a half-precision dtype would quantise the noise itself (bfloat16
    Gaussian draws take only a few thousand distinct values, Laplace draws get a
    point mass at 0), so the smoothing distribution would not be the one the
    radius assumes. The sum is cast to the input's dtype only afterwards: that cast
    is part of the base model.
    """
    return torch.promote_types(dtype, torch.float32)


def _noise_shape(x: torch.Tensor, *, point_cloud: bool) -> tuple[int, ...]:
    """Shape of the noise tensor: all of ``x``, or the (B, N, 3) positions."""
    if point_cloud:
        _check_point_cloud(x)
        return (*x.shape[:-1], 3)
    return tuple(x.shape)
