"""Isotropic Gaussian noise: the l2 certificate of Cohen et al. (2019)."""

from __future__ import annotations

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
    _normal_ppf,
    _radii_via,
    _radius_via,
)

__all__ = ["GaussianL2"]


@dataclass(frozen=True)
class GaussianL2(Sampler):
    r"""Additive Gaussian noise :math:`x + \varepsilon`, :math:`\varepsilon \sim N(0, \sigma^2 I)`.

    Parameters
    ----------
    sigma : float
        Standard deviation of every noise coordinate; finite and > 0.
    point_cloud : bool, default False
        ``False``: ``x`` is any batch, e.g. images of shape (B, C, H, W), and every
        coordinate gets noise. ``True``: ``x`` is a point-cloud batch of shape
        (B, N, 3) or (B, N, 6) (xyz positions, then unit normals); only the positions
        ``x[..., :3]`` get noise and normals pass through unchanged, as in §6.3 of [1]_.

    Raises
    ------
    TypeError
        If ``sigma`` is not a real number.
    ValueError
        If ``sigma`` is <= 0, infinite or NaN ("`sigma` must be finite and > 0; got -1.").

    Notes
    -----
    **Certificate.** If a component's top class has probability greater than
    ``tau`` under the noise, the thresholded smoothed model keeps that class for every
    perturbation :math:`\delta` with :math:`\|\delta\|_2 \le R = \sigma\,\Phi^{-1}(\tau)`
    (Theorem 5.1 of [1]_, from Theorem 3.1 of [2]_ with :math:`\underline{p_A} = \tau`).
    The norm is taken over every noised coordinate of one input: the whole image, or
    all N x 3 point positions with ``point_cloud=True`` (an adversary who also moves
    the normals is then outside the threat model).

    **Cost.** One ``torch.randn`` of the noised shape per call, on ``x.device``.

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021.
    .. [2] J. Cohen, E. Rosenfeld, Z. Kolter, "Certified Adversarial Robustness via
       Randomized Smoothing", ICML 2019.

    Examples
    --------
    >>> import torch
    >>> from samplers import GaussianL2
    >>> sampler = GaussianL2(sigma=0.25)
    >>> round(sampler.radius(0.75), 4)
    0.1686
    >>> x = torch.zeros(4, 3, 8, 8)
    >>> noisy = sampler.perturb(x, generator=torch.Generator().manual_seed(0))
    >>> noisy.shape, noisy.dtype
    (torch.Size([4, 3, 8, 8]), torch.float32)
    >>> cloud = torch.zeros(2, 100, 6)  # positions and normals
    >>> out = GaussianL2(0.25, point_cloud=True).perturb(cloud)
    >>> bool((out[..., 3:] == cloud[..., 3:]).all())  # normals untouched
    True
    """

    sigma: float
    point_cloud: bool = False

    sound: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _check_positive(self.sigma, "sigma"))
        object.__setattr__(self, "point_cloud", bool(self.point_cloud))

    @property
    def threat_model(self) -> str:
        """l2 ball in input space (or in point-position space)."""
        if self.point_cloud:
            return "l2 ball over the point positions (normals fixed), radius in input units"
        return "l2 ball in input space, radius in input units"

    def perturb(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return ``x`` plus fresh Gaussian noise for every batch element.

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
        noise = torch.randn(shape, generator=generator, device=x.device, dtype=dtype)
        out = _add_noise(x.to(dtype), noise.mul_(self.sigma), point_cloud=self.point_cloud)
        return out.to(x.dtype)

    def radius(self, tau: float) -> float:
        r"""Certified l2 radius :math:`\sigma\,\Phi^{-1}(\tau)`.

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
        r"""Vectorised :meth:`radius`: :math:`\sigma\,\Phi^{-1}(p)` where ``p > 1/2``, else 0.

        The same float64 expression as :meth:`radius`, so ``radii(p) == radius(p)``
        exactly. See :meth:`samplers.Sampler.radii`.
        """
        return _radii_via(self._formula, p_lower)

    def _formula(self, p: torch.Tensor) -> torch.Tensor:
        return self.sigma * _normal_ppf(p)
