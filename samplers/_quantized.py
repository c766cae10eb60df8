"""Quantized smoothing: continuous noise rounded to the input's grid, sound in floating point."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch

from samplers._alias_kernels import grid_base, quantized_draw, xoshiro_seed
from samplers._base import (
    Sampler,
    _as_probabilities,
    _check_generator,
    _check_input,
    _check_tau,
)
from samplers._gaussian import GaussianL2
from samplers._laplace import LaplaceL1
from samplers._qtable import (
    DRAW_BITS,
    MAX_SLOTS,
    Table,
    gaussian_table,
    laplace_table,
    support_half_width,
)

__all__ = ["Quantized"]

#: Accepted bit depths: the grid is ``k / (2**bits - 1)``, ``k = 0..2**bits - 1``.
BITS = (8, 16)
#: Radii are rounded down by this relative amount (float rounding of the formula).
_ROUND_DOWN = 1e-12


def _gaussian_radii(base: GaussianL2, p: torch.Tensor, q: float) -> torch.Tensor:
    """l2: P(A) >= p at x implies P(A) > q at x + d for ||d|| < sigma (Phi^-1(p) - Phi^-1(q))."""
    ndtri = torch.special.ndtri
    return base.sigma * (ndtri(p) - ndtri(torch.tensor(q, dtype=p.dtype)))


def _laplace_radii(base: LaplaceL1, p: torch.Tensor, q: float) -> torch.Tensor:
    """l1: the density ratio is at most e^{||d||_1 / scale}, so P(A^c) at x + d is at most
    e^{||d||_1 / scale} (1 - p) < 1 - q for ||d||_1 < scale ln((1 - q) / (1 - p))."""
    return base.scale * (math.log1p(-q) - torch.log1p(-p))


#: base sampler type -> (radius formula, pmf table builder, its scale, name of the noise)
_ADDITIVE = {
    GaussianL2: (_gaussian_radii, gaussian_table, "sigma", "gaussian"),
    LaplaceL1: (_laplace_radii, laplace_table, "scale", "laplace"),
}


@dataclass(frozen=True)
class Quantized(Sampler):
    r"""Additive noise rounded to the input's grid: the base sampler's radius, sound in floats.

    Inputs are images on the grid of step :math:`h = 1/(2^{b} - 1)` (``bits = b``):
    every value is the float nearest to :math:`m h`, :math:`m = 0..2^b - 1` (e.g.
    ``uint8_image / 255.0``). The model sees :math:`Q(x + \varepsilon)`, where
    :math:`\varepsilon` is the base sampler's *continuous* noise and :math:`Q` rounds
    every coordinate to the grid. For :math:`x = m h` that is :math:`(m + K) h` with
    :math:`K = \mathrm{round}(\varepsilon / h)`, whose law is known exactly (Gaussian:
    :math:`P(K = k) = \Phi((k + \frac12) h/\sigma) - \Phi((k - \frac12) h/\sigma)`).
    :meth:`perturb` draws ``K`` from an integer alias table (one uniform 63-bit
    integer per coordinate) and feeds the model the float nearest to
    :math:`(m + K) h` (the float64 quotient :math:`(m + K) / (2^b - 1)`, rounded to
    ``x``'s dtype), computed from the integer :math:`m + K` alone.

    Parameters
    ----------
    base : GaussianL2 or LaplaceL1
        The continuous noise (``point_cloud=False``); its radius is the one certified.
    bits : {8, 16}, default 8
        Bit depth of the input grid (16 also holds 12-bit microscopy or medical
        images stored as 16-bit: pass ``image / 65535.0``).
    max_dim : int, default 2**24
        Largest number of coordinates of one input (C x H x W) that :meth:`perturb`
        accepts; the sampling error of every coordinate enters the radius.

    Raises
    ------
    TypeError
        If ``base`` is not a ``GaussianL2``/``LaplaceL1`` or ``bits``/``max_dim``
        are not integers.
    ValueError
        If ``bits`` is not 8 or 16, ``max_dim < 1``, ``base.point_cloud`` is set,
        the noise is smaller than one grid step or needs more than 2**22 table
        slots (Gaussian ``sigma`` above about 3.7 at 16 bits).

    Notes
    -----
    **Certificate.** :math:`f \circ Q` is a fixed base classifier of *real* inputs,
    and its smoothing with the continuous noise is what :meth:`perturb` samples
    (up to the table's error below). The base sampler's theorem therefore applies
    unchanged: it holds for **every real** :math:`x'` within the radius of the
    grid point :math:`m h` that ``x`` represents, not only for inputs on the grid.
    The float arithmetic cannot break it: the model input is a fixed function of the
    integer :math:`m + K`, and the law of :math:`K` is an exact rational (the alias
    table's), within total variation ``tv_bound`` per coordinate of the law of
    :math:`\mathrm{round}(\varepsilon / h)`, so within
    :math:`\epsilon` = ``max_dim * tv_bound`` for a whole input. A class of sampled
    probability :math:`> \tau` has probability :math:`> \tau - \epsilon` under the
    exact noise; the radius is the one that keeps it :math:`> 1/2 + \epsilon` at
    :math:`x'`, so it stays above 1/2 under the sampled noise too:

    * Gaussian (l2): :math:`R = \sigma(\Phi^{-1}(\tau - \epsilon) - \Phi^{-1}(1/2 + \epsilon))`
      (Cohen et al. [2]_ with :math:`p_A = \tau - \epsilon`);
    * Laplace (l1): :math:`R = \lambda \ln((1/2 - \epsilon) / (1 - \tau + \epsilon))`
      (the density ratio of the shifted noise is at most
      :math:`e^{\|\delta\|_1/\lambda}`; at :math:`\epsilon = 0` this is
      ``LaplaceL1.radius``),

    rounded down by a relative 1e-12. With :math:`\epsilon` below 2e-6 this is at
    least 0.9997 of the base sampler's radius for tau up to 0.999.

    **Table.** Support :math:`[-K, K]` with tail mass below 2^-56; the pmf in float64
    with a rigorous error bound (constants in 50-digit decimals); probabilities
    rounded to multiples of 2^-63; ``tv_bound`` adds the three
    (:mod:`samplers._qtable`). A two-level alias table keeps every draw in a table of
    at most 4096 slots, even for 16-bit supports of a million points. Assumes the
    63-bit integers are uniform and independent.

    **Cost.** One 63-bit integer per coordinate and a table lookup. On the CPU: one
    numba kernel, its integers from xoshiro256** seeded by two draws of
    ``generator`` (torch's int64 ``random_`` alone costs as much as ``randn``);
    elsewhere: ``random_`` and a few tensor operations
    (``benchmarks/bench_quantized.py``).

    References
    ----------
    .. [1] V. Voráček, M. Hein, "Sound randomized smoothing in floating-point
       arithmetic", ICLR 2023.
    .. [2] J. Cohen, E. Rosenfeld, Z. Kolter, "Certified Adversarial Robustness via
       Randomized Smoothing", ICML 2019.

    Examples
    --------
    >>> import torch
    >>> from samplers import GaussianL2, Quantized
    >>> sampler = Quantized(GaussianL2(0.25), bits=8)
    >>> round(sampler.radius(0.75), 4), round(GaussianL2(0.25).radius(0.75), 4)
    (0.1686, 0.1686)
    >>> x = torch.randint(0, 256, (2, 3, 4, 4)) / 255.0   # 8-bit image batch
    >>> noisy = sampler.perturb(x, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.equal(noisy, (noisy.double() * 255).round().div(255).float()))  # on the grid
    True
    """

    base: GaussianL2 | LaplaceL1
    bits: int = 8
    max_dim: int = 1 << 24

    sound: ClassVar[bool] = True
    _tab: Table = field(init=False, repr=False, compare=False)
    _on_device: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind = _ADDITIVE.get(type(self.base))
        if kind is None:
            raise TypeError(f"`base` must be a samplers.GaussianL2 or samplers.LaplaceL1; "
                            f"got {type(self.base).__name__}.")
        if self.base.point_cloud:
            raise ValueError("`base` must not be a point-cloud sampler (point_cloud=True): "
                             "quantized smoothing rounds image coordinates to a grid.")
        for name in ("bits", "max_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"`{name}` must be an integer; got {type(v).__name__}.")
        if self.bits not in BITS:
            raise ValueError(f"`bits` must be one of {BITS}; got {self.bits!r}.")
        if self.max_dim < 1:
            raise ValueError(f"`max_dim` must be >= 1; got {self.max_dim!r}.")
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "max_dim", int(self.max_dim))
        _, build, attr, noise = kind
        scale, levels = getattr(self.base, attr), self.levels
        if scale * levels < 1:
            raise ValueError(f"`base.{attr}` must be at least one grid step 1/{levels} at "
                             f"bits={self.bits}; got {scale!r}.")
        if 2 * support_half_width(noise, scale, levels) + 1 > MAX_SLOTS:
            raise ValueError(f"`base.{attr}` = {scale!r} is too large for bits={self.bits}: "
                             f"its alias table would exceed {MAX_SLOTS} slots.")
        object.__setattr__(self, "_tab", build(scale, levels))

    @property
    def levels(self) -> int:
        """``2**bits - 1``: the grid is ``k / levels``, k = 0..levels."""
        return (1 << self.bits) - 1

    @property
    def threat_model(self) -> str:
        """The base sampler's ball around the grid point of ``x``, any real ``x'``."""
        return (f"{self.base.threat_model}; centred on x's {self.bits}-bit grid point, "
                "any real x'")

    @property
    def tv_bound(self) -> float:
        """Per-coordinate TV distance of the sampled ``K`` to ``round(eps / h)``."""
        return self._tab.tv

    @property
    def eps(self) -> float:
        """``max_dim * tv_bound``: TV distance of one input's sampled noise to the exact."""
        return self.max_dim * self._tab.tv

    def pmf(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact sampled law of ``K``: (values in grid steps, probabilities)."""
        K = self._tab.K
        return np.arange(-K, K + 1), self._tab.got / 2.0**DRAW_BITS

    def perturb(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return ``Q(x + noise)`` for every batch element: grid values, fresh noise each.

        Parameters
        ----------
        x : torch.Tensor
            float32 or float64 batch on the grid: every value is the float nearest
            to ``m / (2**bits - 1)``, m in 0..2**bits - 1 (e.g. ``uint8_image / 255.0``).
        generator : torch.Generator, optional
            Source of randomness, on ``x.device``; the same seed gives the same output.

        Returns
        -------
        torch.Tensor
            Same shape, dtype and device as ``x`` (no gradient); every value is the
            float nearest to an integer multiple of the grid step (possibly outside
            [0, 1]).

        Raises
        ------
        TypeError
            If ``x`` is not a float32/float64 tensor or ``generator`` is not a generator.
        ValueError
            If ``x`` has no batch dimension, more than ``max_dim`` coordinates per
            input, values off the grid, or ``generator`` is on another device.
        """
        x = _check_input(x)
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"`x` must be float32 or float64 (values on the {self.bits}-bit "
                            f"grid); got dtype {x.dtype}.")
        generator = _check_generator(generator, x)
        per_input = x[0].numel() if x.shape[0] else 0
        if per_input > self.max_dim:
            raise ValueError(f"`x` has {per_input} coordinates per input; this sampler "
                             f"certifies at most max_dim={self.max_dim}.")
        x = x.detach()
        if x.numel() == 0:
            return x.clone()
        # copies of one input (SegCertify's broadcast batch): read that input once
        src = x[:1] if x.shape[0] > 1 and x.stride(0) == 0 else x
        src = src.contiguous().reshape(-1)
        if x.device.type == "cpu":
            out, bad = _draw_cpu(x, src, generator, self._tab, self.levels)
        else:
            key = str(x.device)
            if key not in self._on_device:  # the tables, copied to the device once
                self._on_device[key] = _device_tables(self._tab, x.device)
            out, bad = _draw_torch(x, src, generator, self._tab, self.levels,
                                   self._on_device[key])
        if bad:
            L = self.levels
            raise ValueError(f"`x` must lie on the {self.bits}-bit grid (values m / {L}, m in "
                             f"0..{L}, as the float nearest to it, e.g. image / {L}.0); "
                             f"{bad} values do not.")
        return out

    def radius(self, tau: float) -> float:
        r"""Certified radius of the base sampler's threat model (see Notes).

        Parameters
        ----------
        tau : float
            Threshold on the top-class probability, in [1/2, 1).

        Returns
        -------
        float
            The base sampler's radius at :math:`p_A = \tau - \epsilon`, keeping the
            class above :math:`1/2 + \epsilon`; 0 where :math:`\tau - \epsilon \le 1/2
            + \epsilon`.

        Raises
        ------
        ValueError
            If ``tau`` lies outside [1/2, 1).
        """
        return float(self.radii(np.array([_check_tau(tau)]))[0])

    def radii(self, p_lower):
        r"""Vectorised :meth:`radius` at every ``p_lower``: 0 where it does not exceed
        :math:`1/2 + 2\epsilon`, finite at 1 (the sampling error caps it). See
        :meth:`samplers.Sampler.radii`."""
        p, back = _as_probabilities(p_lower)
        formula = _ADDITIVE[type(self.base)][0]
        eps = self.eps
        lo, q = p - eps, 0.5 + eps
        r = formula(self.base, lo.clamp(min=q), q) * (1 - _ROUND_DOWN)
        return back(torch.where(lo > q, r, 0.0).clamp_(min=0.0))


def _draw_cpu(x: torch.Tensor, src: torch.Tensor, generator: torch.Generator | None,
              t: Table, levels: int) -> tuple[torch.Tensor, int]:
    """The numba kernels; the 63-bit integers come from xoshiro256** seeded by two
    draws of ``generator`` (on the CPU ``random_`` alone costs as much as ``randn``)."""
    values = src.numpy()
    by_reciprocal = _reciprocal_is_exact(levels, t.K, str(x.dtype))
    base, bad = grid_base(values, levels, t.K, np.empty(1, dtype=values.dtype), by_reciprocal)
    out = torch.empty(x.shape, dtype=x.dtype)
    if bad:
        return out, int(bad)
    seeds = torch.empty(2, dtype=torch.int64).random_(generator=generator)
    state = xoshiro_seed(int(seeds[0]), int(seeds[1]))
    quantized_draw(state, t.coarse, t.c_slot_bits, t.c_low_bits, t.off_bits, t.nbins, t.down,
                   t.residual, t.r_slot_bits, t.r_low_bits, t.r_bits, base, levels,
                   by_reciprocal, out.reshape(-1).numpy())
    return out, 0


@lru_cache(maxsize=32)
def _reciprocal_is_exact(levels: int, K: int, dtype: str) -> bool:
    """Whether ``j * (1 / levels)`` equals ``j / levels`` (float64, then cast to
    ``dtype``) for every grid index ``j`` in ``-K..levels + K``: checked exhaustively
    (float32: always so far; float64: not, so the kernel divides)."""
    j = np.arange(-K, levels + K + 1, dtype=np.float64)
    np_dtype = {"torch.float32": np.float32, "torch.float64": np.float64}[dtype]
    return bool(np.array_equal((j * (1.0 / levels)).astype(np_dtype),
                               (j / levels).astype(np_dtype)))


def _alias_pick(b: torch.Tensor, packed: torch.Tensor, slot_bits: int,
                low_bits: int) -> torch.Tensor:
    """Tensor version of :func:`samplers._alias_kernels._alias_pick`."""
    j = b >> low_bits
    e = packed[j]
    return torch.where((b & ((1 << low_bits) - 1)) < (e >> slot_bits), j,
                       e & ((1 << slot_bits) - 1))


def _device_tables(t: Table, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(coarse, down, residual)`` of ``t`` as int64 tensors on ``device``."""
    return tuple(torch.as_tensor(a, device=device).to(torch.int64)
                 for a in (t.coarse, t.down, t.residual))


def _draw_torch(x: torch.Tensor, src: torch.Tensor, generator: torch.Generator | None,
                t: Table, levels: int, tables: tuple | None = None) -> tuple[torch.Tensor, int]:
    """The kernel in tensor operations (any device): one ``random_`` over all of ``x``,
    then one for the residual draws."""
    dev = x.device
    m = torch.nan_to_num(src.to(torch.float64) * levels, nan=-1.0).round_().clamp_(0, levels)
    m = m.to(torch.int64)
    bad = int(((m.to(torch.float64) / levels).to(x.dtype)).ne(src).sum())
    bits = torch.empty(x.shape, dtype=torch.int64, device=dev).view(-1, src.numel())
    bits.random_(generator=generator)  # uniform on [0, 2**63)
    s, mask = t.off_bits, (1 << t.off_bits) - 1
    coarse, down, residual = _device_tables(t, dev) if tables is None else tables
    c = _alias_pick(bits >> (2 * s), coarse, t.c_slot_bits, t.c_low_bits)
    ramp = (c >= t.nbins) & (c < 2 * t.nbins)
    c = torch.where(ramp, c - t.nbins, c)
    u1, u2 = bits & mask, (bits >> s) & mask
    u = torch.where(ramp, torch.maximum(u1, u2), u1)
    u ^= (ramp & (down[c.clamp(max=t.nbins - 1)] > 0)) * mask
    idx = (c << s) | u
    where = c == 2 * t.nbins
    nres = int(where.sum())
    if nres:
        rbits = torch.empty(nres, dtype=torch.int64, device=dev).random_(generator=generator)
        idx[where] = _alias_pick(rbits >> (63 - t.r_bits), residual, t.r_slot_bits,
                                 t.r_low_bits)
    out = (idx.add_(m - t.K).to(torch.float64) / levels).to(x.dtype)
    return out.view(x.shape), bad
