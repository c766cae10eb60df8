"""Per-component certified radius maps from the counts of one SEGCERTIFY run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import multitest
from samplers import Sampler
from smoothing._sampling import ABSTAIN

__all__ = ["RadiusMap", "radius_map_from_counts"]


@dataclass(frozen=True, eq=False)
class RadiusMap:
    """Per-component certified radii: :meth:`smoothing.SegCertify.radius_map`.

    Attributes
    ----------
    radius : torch.Tensor
        float64, component shape: the certified radius of every component in the
        sampler's threat model; 0 where the map abstains (``p_lower <= 1/2``).
    labels : torch.Tensor
        int64, component shape: the guessed class where ``radius > 0``, else
        :data:`smoothing.ABSTAIN`.
    p_lower : torch.Tensor
        float64, component shape: the simultaneous lower bounds on the guessed
        class's probability (:func:`multitest.simultaneous_lower_bounds`).
    method : str
        ``'bonferroni'`` or ``'ladder'``.
    alpha : float
        Simultaneous error probability of the whole map.
    levels : tuple of float or None
        The ladder (``method='ladder'``).
    sound : bool
        Whether the sampler's radius is a proven certificate.
    """

    radius: torch.Tensor
    labels: torch.Tensor
    p_lower: torch.Tensor
    method: str
    alpha: float
    levels: tuple[float, ...] | None
    sound: bool

    @property
    def certified(self) -> torch.Tensor:
        """Boolean mask of the components with a positive radius."""
        return self.radius > 0

    @property
    def mean_radius(self) -> float:
        """Mean radius over all components (0 for abstentions)."""
        return float(self.radius.mean()) if self.radius.numel() else 0.0


def radius_map_from_counts(counts: torch.Tensor, guesses: torch.Tensor, n: int,
                           sampler: Sampler, *, alpha: float, method: str = "bonferroni",
                           levels=None) -> RadiusMap:
    """The radius map of one certificate's counts (see :meth:`SegCertify.radius_map`)."""
    c = counts.cpu().numpy() if isinstance(counts, torch.Tensor) else np.asarray(counts)
    bounds = multitest.simultaneous_lower_bounds(c, n, alpha, method=method, levels=levels)
    p_lower = torch.from_numpy(np.asarray(bounds.p_lower, dtype=np.float64))
    radius = sampler.radii(p_lower)
    labels = torch.where(radius > 0, guesses.cpu().to(torch.int64), ABSTAIN)
    lv = None if bounds.levels is None else tuple(float(v) for v in bounds.levels)
    return RadiusMap(radius=radius, labels=labels, p_lower=p_lower, method=method,
                     alpha=bounds.alpha, levels=lv, sound=bool(sampler.sound))
