"""Smoothing distributions for SEGCERTIFY: how to perturb an input, what radius it buys.

Every sampler implements the small :class:`Sampler` interface:

``perturb(x, *, generator=None)``
    ``x`` plus fresh, independent noise for every batch element, drawn on
    ``x.device`` in ``x.dtype`` (the same generator seed gives the same output).
``radius(tau)``
    The certified radius of a component whose top-class probability exceeds
    ``tau`` in [1/2, 1) (Theorem 5.1 of the paper, with the sampler's theorem).
``radii(p_lower)``
    Vectorised radius per component from lower bounds on its top-class
    probability (0 where ``p_lower <= 1/2``): the per-component radius maps.
``threat_model``, ``sound``, ``describe()``
    What the radius is measured in, whether it is a proven certificate, and one
    line for reports.

===================  ===========================  ====================================
Sampler              noise                        radius for threshold ``tau``
===================  ===========================  ====================================
``GaussianL2``       N(0, sigma^2 I)              l2: sigma * Phi^-1(tau)
``LaplaceL1``        Laplace(0, scale) i.i.d.     l1: -scale * ln(2 (1 - tau))
``Quantized``        a base's, rounded to the     the base's at tau - eps (sound in
                     input's 8- or 16-bit grid    floating point; >= 0.9997x the base's)
``RotationZ``        angle ~ N(0, sigma^2)        angle about one axis: sigma * Phi^-1(tau)
``Rotation3D``       3 Euler angles ~ N(0, s^2)   HEURISTIC (``sound = False``)
===================  ===========================  ====================================

This package knows nothing about models or statistical tests.
"""

from samplers._base import Sampler
from samplers._gaussian import GaussianL2
from samplers._laplace import LaplaceL1
from samplers._quantized import Quantized
from samplers._rotation import Rotation3D, RotationZ

__all__ = ["GaussianL2", "LaplaceL1", "Quantized", "Rotation3D", "RotationZ", "Sampler"]
