"""numba kernels of :mod:`multitest.oracle`: the oracle's counts and JOINTCLASS trials.

They draw from a NumPy ``Generator`` passed into the jitted code (numba reproduces
``Generator.binomial`` bit for bit) and validate nothing: :mod:`multitest.oracle`
checks the arguments first.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["joint_kernel", "oracle_kernel", "positive_binomial"]


@njit(cache=True)
def oracle_kernel(rng, q, n0, n, right, counts):  # pragma: no cover - numba
    half = (n0 + 1) // 2  # right guess iff right votes >= n0 / 2 (ties to class 0)
    reps, N = counts.shape
    for r in range(reps):
        for i in range(N):
            votes = rng.binomial(n0, q[i])
            x = rng.binomial(n, q[i])  # occurrences of the right class
            ok = votes >= half
            right[r, i] = ok
            counts[r, i] = x if ok else n - x


@njit(cache=True)
def _lchoose(a, b):  # pragma: no cover - numba
    return math.lgamma(a + 1.0) - math.lgamma(b + 1.0) - math.lgamma(a - b + 1.0)


@njit(cache=True)
def _xlog(count, logp):  # pragma: no cover - numba
    return 0.0 if count == 0 else count * logp


@njit(cache=True)
def positive_binomial(rng, m, p):  # pragma: no cover - numba
    """One draw of ``Bin(m, p)`` conditioned on being >= 1 (requires m >= 1, p > 0)."""
    p0 = math.exp(_xlog(m, math.log1p(-p))) if p < 1.0 else 0.0
    if p0 < 0.5:  # rejection: at most 2 tries on average
        while True:
            x = rng.binomial(m, p)
            if x > 0:
                return x
    # inversion from 1 upward; the mass sits at small values here
    u = rng.random() * (1.0 - p0)
    ratio = p / (1.0 - p)
    pmf = m * p * math.exp(_xlog(m - 1, math.log1p(-p)))  # P(X = 1)
    x = 1
    acc = pmf
    while acc < u and x < m:
        pmf *= (m - x) / (x + 1.0) * ratio
        x += 1
        acc += pmf
    return x


@njit(cache=True)
def joint_kernel(rng, N, k, gamma, q_bad, n0, n, t, certified, n_wrong):  # pragma: no cover
    Ng = N - k
    pg = gamma  # probability that a good component is wrong
    pb = 1.0 - q_bad  # probability that a bad component is wrong
    lg_r = math.log1p(-pg) if pg < 1.0 else -np.inf
    lg_w = math.log(pg) if pg > 0.0 else -np.inf
    lb_r = math.log1p(-pb) if pb < 1.0 else -np.inf
    lb_w = math.log(pb) if pb > 0.0 else -np.inf
    log_pi0 = _xlog(Ng, lg_r) + _xlog(k, lb_r)  # the all-right label
    pi0 = math.exp(log_pi0)
    # P(wg > 0) and P(wg = 0, wb > 0) among labels that are not all right
    p_g_pos = 1.0 - math.exp(_xlog(Ng, lg_r))
    p_b_only = math.exp(_xlog(Ng, lg_r)) * (1.0 - math.exp(_xlog(k, lb_r)))
    keys = np.empty(n0, np.int64)
    mult = np.empty(n0, np.int64)
    for r in range(certified.shape[0]):
        # --- guess: the most frequent joint label among n0 samples ---------------
        a = rng.binomial(n0, pi0)  # samples equal to the all-right label
        best_mult = a
        best_wg = 0
        best_wb = 0
        m_other = n0 - a
        if m_other > a:  # another label can only win with more than `a` samples
            for s in range(m_other):  # draws conditioned on "not all right"
                if rng.random() * (p_g_pos + p_b_only) < p_g_pos:
                    wg = positive_binomial(rng, Ng, pg)
                    wb = rng.binomial(k, pb) if k > 0 else 0
                else:
                    wg = 0
                    wb = positive_binomial(rng, k, pb)
                keys[s] = (wg + wb) * (k + 1) + wb  # ascending key = ascending index
            ks = np.sort(keys[:m_other])
            s = 0
            while s < m_other:
                e = s
                while e < m_other and ks[e] == ks[s]:
                    e += 1
                wb = ks[s] % (k + 1)
                wg = ks[s] // (k + 1) - wb
                # occupancy of e - s uniform draws among K equally likely labels
                inv_k = math.exp(-(_lchoose(Ng, wg) + _lchoose(k, wb)))
                d = 0
                top = 0
                for _ in range(e - s):
                    if d > 0 and rng.random() < d * inv_k:
                        j = min(int(rng.random() * d), d - 1)
                        mult[j] += 1
                    else:
                        j = d
                        mult[j] = 1
                        d += 1
                    if mult[j] > top:
                        top = mult[j]
                if top > best_mult:  # strict: ties go to the lower index
                    best_mult = top
                    best_wg = wg
                    best_wb = wb
                s = e
        # --- count the guess among n fresh samples; CERTIFY -------------------
        log_pi = (_xlog(Ng - best_wg, lg_r) + _xlog(best_wg, lg_w)
                  + _xlog(k - best_wb, lb_r) + _xlog(best_wb, lb_w))
        c = rng.binomial(n, math.exp(log_pi))
        certified[r] = c >= t
        n_wrong[r] = best_wg + best_wb
