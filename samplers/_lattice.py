"""Discrete Gaussian noise on the 8-bit lattice: smoothing that is sound in floating point."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch
from numba import njit

from samplers._base import Sampler, _check_generator, _check_input, _check_positive, _check_tau

__all__ = ["LatticeGaussian"]

#: The 8-bit grid: inputs are k / LEVELS, k = 0..LEVELS.
LEVELS = 255
#: Bits of one draw: ``torch.Tensor.random_()`` on int64 is uniform on [0, 2**63).
DRAW_BITS = 63
#: The truncated support's tail mass (per coordinate) is below this.
TAIL_MASS = 2.0 ** -60
_DIGITS = 60  # decimal precision of the table's probabilities


@dataclass(frozen=True)
class _Table:
    """Walker alias table of the truncated discrete Gaussian, in integer units.

    A draw ``b`` uniform on [0, 2**DRAW_BITS) picks slot ``j = b >> low_bits`` and
    returns ``j - K`` if ``b & (2**low_bits - 1) < thr[j]`` else ``alias[j] - K``:
    the sampled distribution is the exact rational ``prob``, and ``tv`` bounds its
    total-variation distance to the untruncated discrete Gaussian.
    """

    K: int
    low_bits: int
    thr: np.ndarray  # int64, slot -> acceptance threshold in [0, 2**low_bits]
    alias: np.ndarray  # int64, slot -> alias index (0..2K)
    tv: float  # upper bound on TV(sampled, discrete Gaussian) per coordinate


@lru_cache(maxsize=32)
def _table(scale: float) -> _Table:
    """Alias table for P(k) proportional to exp(-k^2 / (2 scale^2)), k integer."""
    with localcontext() as ctx:
        ctx.prec = _DIGITS
        s2 = 2 * Decimal(scale) ** 2
        # K: the geometric tail bound sum_{k>K} w_k <= w_{K+1} / (1 - r), with
        # r = exp(-(2K + 3) / (2 s^2)) >= w_{k+1} / w_k for k > K, both sides
        K = max(1, int(scale * math.sqrt(2 * 62 * math.log(2))))
        while True:
            w_next = (-(Decimal(K + 1) ** 2) / s2).exp()
            ratio = (-Decimal(2 * K + 3) / s2).exp()
            tail_one_side = w_next / (1 - ratio)
            w = [(-(Decimal(k) ** 2) / s2).exp() for k in range(K + 1)]
            z = w[0] + 2 * sum(w[1:])  # truncated normaliser
            tail = 2 * tail_one_side / z  # >= the mass outside [-K, K]
            if tail <= Decimal(TAIL_MASS):
                break
            K += max(1, K // 8)
        pmf = [w[abs(k)] / z for k in range(-K, K + 1)]
        size = 2 * K + 1
        m = max(1, (size - 1).bit_length())
        slots = 1 << m
        low_bits = DRAW_BITS - m
        unit = 1 << low_bits
        # Vose's alias method on integers: slot capacities in units of 2**-DRAW_BITS
        target = [int((p * (1 << DRAW_BITS)).to_integral_value()) for p in pmf]
        target += [0] * (slots - size)
        target[K] += (1 << DRAW_BITS) - sum(target)  # exact total on the mode
        thr = [0] * slots
        alias = list(range(slots))
        small = [j for j in range(slots) if target[j] < unit]
        large = [j for j in range(slots) if target[j] >= unit]
        rest = list(target)
        while small and large:
            a, b = small.pop(), large[-1]
            thr[a], alias[a] = rest[a], b
            rest[b] -= unit - rest[a]
            if rest[b] < unit:
                large.pop()
                small.append(b)
        for j in large + small:
            thr[j], alias[j] = unit, j
        # the exact sampled distribution, and its TV distance to the true pmf
        got = [0] * slots
        for j in range(slots):
            got[j] += thr[j]
            got[alias[j]] += unit - thr[j]
        if sum(got) != 1 << DRAW_BITS or any(got[size:]):  # pragma: no cover - invariant
            raise RuntimeError("alias table construction lost probability mass")
        total = Decimal(1 << DRAW_BITS)
        dev = sum(abs(Decimal(got[i]) / total - pmf[i]) for i in range(size))
        # TV(sampled, truncated) + TV(truncated, untruncated) <= dev / 2 + tail
        tv = float(dev / 2 + tail) * (1 + 1e-9)
    return _Table(K, low_bits, np.asarray(thr, dtype=np.int64),
                  np.asarray(alias, dtype=np.int64), tv)


@njit(cache=True)
def _perturb_kernel(x, bits, thr, alias, low_bits, lut, out):  # pragma: no cover - numba
    """out = lut[round(255 x) + noise]; returns the number of inputs off the lattice.

    ``lut[i]`` is the float nearest to ``(i - K) / 255`` in ``x``'s dtype, so the
    output is a fixed function of the integer lattice point ``round(255 x) + k``.
    Branch-free alias lookup.
    """
    mask = (np.int64(1) << low_bits) - 1
    K = (lut.size - LEVELS - 1) // 2
    bad = 0
    for i in range(x.size):
        b = bits[i]
        j = b >> low_bits
        a = alias[j]
        k = a + ((b & mask) < thr[j]) * (j - a)  # j - K or alias[j] - K, in 0..2K
        m = min(max(np.int64(x[i] * LEVELS + 0.5), 0), LEVELS)
        bad += lut[m + K] != x[i]  # x is the float nearest to m / 255 (NaN: bad)
        out[i] = lut[m + k]
    return bad


@dataclass(frozen=True)
class LatticeGaussian(Sampler):
    r"""Discrete Gaussian noise on the 1/255 lattice for 8-bit inputs (sound in floating point).

    Inputs are 8-bit images scaled to [0, 1]: every value is (the float nearest
    to) ``k / 255``. Each coordinate gets an integer ``k_noise`` drawn from the
    discrete Gaussian :math:`P(k) \propto \exp(-(k/255)^2 / (2\sigma^2))`, and the
    model sees ``(round(255 x) + k_noise) / 255`` computed from the exact integer
    ``round(255 x) + k_noise``. So the model sees a fixed function of an integer
    lattice point whose distribution is exactly the one the certificate is proven
    for; rounding of ``x + noise`` -- which lets standard Gaussian smoothing be made
    to certify wrongly (Voráček & Hein [1]_) -- cannot occur.

    Parameters
    ----------
    sigma : float
        Scale of the discrete Gaussian in input units (``255 sigma`` lattice steps);
        finite, > 0, at most 64.
    max_dim : int, default 2**24
        Largest number of coordinates of one input (C x H x W) that
        :meth:`perturb` accepts; the radius accounts for the sampler's distance to
        the exact discrete Gaussian in each of them.

    Raises
    ------
    TypeError
        If ``sigma`` is not a real number or ``max_dim`` not an integer.
    ValueError
        If ``sigma`` is <= 0, > 64, infinite or NaN, or ``max_dim < 1``.

    Notes
    -----
    **Threat model.** Perturbations that keep the input 8-bit: ``x'`` on the same
    1/255 grid with :math:`\|x' - x\|_2 \le R` (input units). The radius is *not*
    a statement about off-lattice inputs.

    **Certificate.** For a shift :math:`\delta` on the lattice, the discrete
    Gaussian :math:`\mu` satisfies the Rényi-divergence bound
    :math:`D_\alpha(\mu \,\|\, \mu_\delta) \le \alpha \|\delta\|_2^2 / (2\sigma^2)`
    for every :math:`\alpha > 1` (Canonne, Kamath, Steinke [2]_, Prop. 5, per
    coordinate; additive over independent coordinates). Rényi probability
    preservation gives :math:`\mu_\delta(A) \ge \mu(A)^{\alpha/(\alpha-1)}
    e^{-\alpha\|\delta\|^2/(2\sigma^2)}`; optimising over :math:`\alpha`, a class
    of probability :math:`> \tau` keeps probability :math:`> 1/2` (so it stays the
    top class) for

    .. math::
        \|\delta\|_2 \le R = \sigma\sqrt{2}\,
        \bigl(\sqrt{\ln(1/q)} - \sqrt{\ln(1/\tau')}\bigr),

    with :math:`\tau' = \tau - \varepsilon`, :math:`q = 1/2 + \varepsilon`,
    :math:`\varepsilon = ` ``max_dim`` :math:`\times` the per-coordinate
    total-variation distance between the sampled distribution (truncated to a
    support of tail mass < 2^-60, alias-table probabilities that are exact
    multiples of 2^-63) and the exact discrete Gaussian, computed at table
    construction in 60-digit decimal arithmetic. ``R`` is smaller than the
    continuous Gaussian's :math:`\sigma\Phi^{-1}(\tau)` (0.62 of it at tau = 0.75,
    0.37 at tau = 0.999): the price of a bound proven for the lattice.

    **Cost.** One int64 ``random_`` per coordinate from the generator, then one
    fused table lookup: on the CPU a numba kernel over chunks of 2^16 draws
    (``benchmarks/bench_lattice.py``: about 1.3x ``GaussianL2.perturb``), on
    other devices a few tensor operations (unmeasured on GPU).

    References
    ----------
    .. [1] V. Voráček, M. Hein, "Sound randomized smoothing in floating-point
       arithmetics", 2022.
    .. [2] C. Canonne, G. Kamath, T. Steinke, "The discrete Gaussian for
       differential privacy", NeurIPS 2020.
    .. [3] I. Mironov, "Rényi differential privacy", CSF 2017, Prop. 10.

    Examples
    --------
    >>> import torch
    >>> from samplers import LatticeGaussian
    >>> sampler = LatticeGaussian(sigma=0.25)
    >>> round(sampler.radius(0.75), 4)
    0.1047
    >>> x = torch.randint(0, 256, (2, 3, 4, 4)) / 255.0   # 8-bit image batch
    >>> noisy = sampler.perturb(x, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.equal(noisy * 255, (noisy * 255).round()))  # still on the lattice
    True
    """

    sigma: float
    max_dim: int = 1 << 24

    sound: ClassVar[bool] = True
    _tab: _Table = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sigma = _check_positive(self.sigma, "sigma")
        if sigma > 64:
            raise ValueError(f"`sigma` must be at most 64 (input units); got {self.sigma!r}.")
        if isinstance(self.max_dim, bool) or not isinstance(self.max_dim, (int, np.integer)):
            raise TypeError(f"`max_dim` must be an integer; got {type(self.max_dim).__name__}.")
        if self.max_dim < 1:
            raise ValueError(f"`max_dim` must be >= 1; got {self.max_dim!r}.")
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "max_dim", int(self.max_dim))
        object.__setattr__(self, "_tab", _table(LEVELS * sigma))

    @property
    def threat_model(self) -> str:
        """l2 ball of 8-bit inputs (x' on the 1/255 grid)."""
        return "l2 ball over 8-bit inputs (x' on the 1/255 grid), radius in input units"

    @property
    def tv_bound(self) -> float:
        """Per-coordinate TV distance of the sampler to the exact discrete Gaussian."""
        return self._tab.tv

    def pmf(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact sampled distribution: (noise values in lattice steps, probabilities)."""
        t = self._tab
        got = np.zeros(t.thr.size, dtype=np.float64)
        unit = 1 << t.low_bits
        np.add.at(got, np.arange(t.thr.size), t.thr.astype(np.float64))
        np.add.at(got, t.alias, (unit - t.thr).astype(np.float64))
        size = 2 * t.K + 1
        return np.arange(-t.K, t.K + 1), got[:size] / 2.0 ** DRAW_BITS

    def perturb(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return ``x`` plus fresh discrete-Gaussian lattice noise for every batch element.

        Parameters
        ----------
        x : torch.Tensor
            float32 or float64 batch of 8-bit inputs: every value is the float
            nearest to ``k / 255``, k in 0..255 (e.g. ``uint8_image / 255.0``).
        generator : torch.Generator, optional
            Source of randomness, on ``x.device``; the same seed gives the same output.

        Returns
        -------
        torch.Tensor
            Same shape, dtype and device as ``x``; every value is the float nearest
            to an integer / 255.

        Raises
        ------
        TypeError
            If ``x`` is not a float32/float64 tensor or ``generator`` is not a generator.
        ValueError
            If ``x`` has no batch dimension, more than ``max_dim`` coordinates per
            input, values off the 8-bit grid, or ``generator`` is on another device.
        """
        x = _check_input(x)
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"`x` must be float32 or float64 (exact lattice arithmetic); "
                            f"got dtype {x.dtype}.")
        generator = _check_generator(generator, x)
        per_input = x[0].numel() if x.shape[0] else 0
        if per_input > self.max_dim:
            raise ValueError(f"`x` has {per_input} coordinates per input; this sampler "
                             f"certifies at most max_dim={self.max_dim}.")
        t = self._tab
        if x.device.type == "cpu":
            out, bad = _perturb_cpu(x, generator, t)
        else:
            bits = torch.empty(x.shape, dtype=torch.int64, device=x.device)
            bits.random_(generator=generator)  # uniform on [0, 2**63)
            out, bad = _perturb_torch(x, bits, t)
        if bad:
            raise ValueError(f"`x` must be 8-bit (values k / 255, k in 0..255); {int(bad)} "
                             "values are not.")
        return out

    def radius(self, tau: float) -> float:
        r"""Certified l2 radius over 8-bit perturbations (see Notes).

        Parameters
        ----------
        tau : float
            Threshold on the top-class probability, in [1/2, 1).

        Returns
        -------
        float
            :math:`\sigma\sqrt2(\sqrt{\ln(1/q)} - \sqrt{\ln(1/\tau')})`, 0 where
            :math:`\tau' \le q`.

        Raises
        ------
        ValueError
            If ``tau`` lies outside [1/2, 1).
        """
        tau = _check_tau(tau)
        eps = self.max_dim * self._tab.tv
        lo, q = tau - eps, 0.5 + eps
        if lo <= q:
            return 0.0
        r = self.sigma * math.sqrt(2.0) * (math.sqrt(math.log(1.0 / q))
                                           - math.sqrt(math.log(1.0 / lo)))
        return max(0.0, r * (1 - 1e-12))  # round down


def _lut(t: _Table, dtype: torch.dtype, device) -> torch.Tensor:
    """``lut[i]`` = the float nearest to ``(i - K) / 255``, i in 0..2K + 255."""
    i = torch.arange(-t.K, LEVELS + t.K + 1, dtype=torch.float64, device=device)
    return (i / LEVELS).to(dtype)


#: Coordinates per chunk on the CPU: the chunk's random draws stay in cache.
_CHUNK = 1 << 16


def _perturb_cpu(x: torch.Tensor, generator: torch.Generator | None,
                 t: _Table) -> tuple[torch.Tensor, int]:
    """The numba kernel over chunks of draws (the CPU generator draws sequentially, so
    this equals one ``random_`` over all of ``x`` followed by the kernel)."""
    src = x.detach().contiguous().reshape(-1).numpy()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    dst = out.reshape(-1).numpy()
    lut = _lut(t, x.dtype, "cpu").numpy()
    buf = torch.empty(min(_CHUNK, src.size), dtype=torch.int64)
    bits = buf.numpy()
    bad = 0
    for lo in range(0, src.size, _CHUNK):
        hi = min(lo + _CHUNK, src.size)
        buf[: hi - lo].random_(generator=generator)  # uniform on [0, 2**63)
        bad += _perturb_kernel(src[lo:hi], bits[: hi - lo], t.thr, t.alias, t.low_bits,
                               lut, dst[lo:hi])
    return out, bad


def _perturb_torch(x: torch.Tensor, bits: torch.Tensor, t: _Table) -> tuple[torch.Tensor, int]:
    """The kernel in tensor operations (any device; the result carries no gradient)."""
    thr = torch.as_tensor(t.thr, device=x.device)
    alias = torch.as_tensor(t.alias, device=x.device)
    lut = _lut(t, x.dtype, x.device)
    j = bits >> t.low_bits
    k = torch.where((bits & ((1 << t.low_bits) - 1)) < thr[j], j, alias[j])
    x = x.detach()
    m = torch.round(x.to(torch.float64) * LEVELS).clamp_(0, LEVELS).to(torch.int64)
    bad = int(lut[m + t.K].ne(x).sum())
    return lut[m + k], bad
