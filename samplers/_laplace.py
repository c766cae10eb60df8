"""I.i.d. Laplace noise: the l1 certificate of Teng et al. (2020) and Yang et al. (2020)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from samplers._base import (
    Sampler,
    _add_noise,
    _check_generator,
    _check_input,
    _check_positive,
    _noise_dtype,
    _noise_shape,
    _radii_via,
    _radius_via,
)

__all__ = ["LaplaceL1"]


@dataclass(frozen=True)
class LaplaceL1(Sampler):
    r"""Additive i.i.d. Laplace noise with scale :math:`\lambda` in every coordinate.

    Each coordinate has density :math:`\frac{1}{2\lambda} e^{-|t|/\lambda}`.

    Parameters
    ----------
    scale : float
        The Laplace scale :math:`\lambda` (finite, > 0). This is the *scale*, not the
        standard deviation: each coordinate has mean absolute value :math:`\lambda` and
        standard deviation :math:`\sqrt{2}\,\lambda`. To match a Gaussian of standard
        deviation ``sigma`` in variance, use ``scale = sigma / sqrt(2)``.
    point_cloud : bool, default False
        ``False``: every coordinate of ``x`` (e.g. images (B, C, H, W)) gets noise.
        ``True``: ``x`` is a point-cloud batch (B, N, 3) or (B, N, 6) and only the
        positions ``x[..., :3]`` get noise; normals pass through unchanged.

    Raises
    ------
    TypeError
        If ``scale`` is not a real number.
    ValueError
        If ``scale`` is <= 0, infinite or NaN.

    Notes
    -----
    **Certificate.** If a component's top class has probability greater than ``tau``
    under the noise (so every other class has at most ``1 - tau``), the thresholded
    smoothed model keeps that class for every :math:`\delta` with
    :math:`\|\delta\|_1 \le R = -\lambda \ln(2(1 - \tau))`. This is the l1 radius of
    [2]_ (the larger of its two terms when :math:`p_B = 1 - p_A`) and of
    [3]_ at :math:`p_B = 1 - p_A`; SEGCERTIFY uses it with :math:`p_A = \tau` as §5.2
    of [1]_ describes. The norm is taken over all noised coordinates of one input.

    **Sampling.** Each coordinate is :math:`\lambda (E_1 - E_2)` with
    :math:`E_1, E_2` i.i.d. standard exponential (drawn with
    ``Tensor.exponential_``), which is exactly Laplace(0, :math:`\lambda`) and, unlike
    an inverse CDF on ``torch.rand``, never produces an infinite value when the
    uniform draw is exactly 0. Cost: two exponential draws of the noised shape.

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021.
    .. [2] J. Teng, G.-H. Lee, Y. Yuan, "l1 Adversarial Robustness Certificates: a
       Randomized Smoothing Approach", 2020.
    .. [3] G. Yang, T. Duan, J. E. Hu, H. Salman, I. Razenshteyn, J. Li, "Randomized
       Smoothing of All Shapes and Sizes", ICML 2020.

    Examples
    --------
    >>> import math, torch
    >>> from samplers import LaplaceL1
    >>> sampler = LaplaceL1(scale=0.5)
    >>> round(sampler.radius(0.75), 4)  # -0.5 * ln(0.5)
    0.3466
    >>> x = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    >>> noisy = sampler.perturb(x, generator=torch.Generator().manual_seed(0))
    >>> noisy.shape, noisy.dtype
    (torch.Size([2, 3, 16, 16]), torch.float64)
    """

    scale: float
    point_cloud: bool = False

    sound: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _check_positive(self.scale, "scale"))
        object.__setattr__(self, "point_cloud", bool(self.point_cloud))

    @property
    def std(self) -> float:
        r"""Standard deviation :math:`\sqrt{2}\,\lambda` of each noise coordinate."""
        return math.sqrt(2.0) * self.scale

    @property
    def threat_model(self) -> str:
        """l1 ball in input space (or in point-position space)."""
        if self.point_cloud:
            return "l1 ball over the point positions (normals fixed), radius in input units"
        return "l1 ball in input space, radius in input units"

    def perturb(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return ``x`` plus fresh Laplace noise for every batch element.

        Parameters
        ----------
        x : torch.Tensor
            Floating-point batch; dimension 0 indexes independent inputs. Shape
            (B, N, 3) or (B, N, 6) when ``point_cloud=True``.
        generator : torch.Generator, optional
            Source of randomness, on ``x.device``; the same seed gives the same output.

        Returns
        -------
        torch.Tensor
            Same shape, dtype and device as ``x``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor or ``generator`` is not a generator.
        ValueError
            If ``x`` has no batch dimension, has the wrong shape for
            ``point_cloud=True``, or ``generator`` is on another device.
        """
        x = _check_input(x)
        generator = _check_generator(generator, x)
        shape = _noise_shape(x, point_cloud=self.point_cloud)
        dtype = _noise_dtype(x.dtype)  # never draw noise in half precision
        e = torch.empty((2, *shape), device=x.device, dtype=dtype)
        e.exponential_(generator=generator)
        noise = (e[0] - e[1]).mul_(self.scale)
        return _add_noise(x.to(dtype), noise, point_cloud=self.point_cloud).to(x.dtype)

    def radius(self, tau: float) -> float:
        r"""Certified l1 radius :math:`-\lambda \ln(2(1 - \tau))`.

        Parameters
        ----------
        tau : float
            Threshold on the top-class probability, in [1/2, 1).

        Returns
        -------
        float
            The radius (0 at ``tau = 1/2``).

        Raises
        ------
        ValueError
            If ``tau`` lies outside [1/2, 1).
        """
        return _radius_via(self._formula, tau)

    def radii(self, p_lower):
        r"""Vectorised :meth:`radius`: :math:`-\lambda \ln(2(1 - p))` where ``p > 1/2``, else 0.

        The same float64 expression as :meth:`radius`, so ``radii(p) == radius(p)``
        exactly. See :meth:`samplers.Sampler.radii`.
        """
        return _radii_via(self._formula, p_lower)

    def _formula(self, p: torch.Tensor) -> torch.Tensor:
        return -self.scale * torch.log(2.0 * (1.0 - p))
