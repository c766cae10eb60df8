"""Hierarchical certification: certify a coarser class where the fine class must abstain.

SEGCERTIFY abstains where no single class is stable under the noise, mostly at
boundaries between similar classes (car/truck, two parts of one object). With a
class hierarchy (:mod:`smoothing.hierarchy`) such a component can still be
certified at a coarser node ("vehicle", "chair") that holds the unstable classes.
:class:`HierarchicalSegCertify` does it with the same samples and the same
family-wise guarantee as the flat certificate; the proof is in
``docs/hierarchical.md``.

References
----------
.. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
   Randomized Smoothing", ICML 2021.
.. [2] A. Anani, T. Lorenz, B. Schiele, M. Fritz, "Adaptive Hierarchical
   Certification for Segmentation using Randomized Smoothing", ICML 2024.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch

import multitest
from samplers import Sampler
from smoothing import _sampling as S
from smoothing._labels import soundness_note
from smoothing._sampling import ABSTAIN
from smoothing.hierarchy import Hierarchy, load_hierarchy
from smoothing.segcertify import check_k_components

__all__ = ["GUESSES", "RULES", "HierarchicalCertificate", "HierarchicalSegCertify"]

#: How the tested nodes are chosen per component (from the ``n0`` samples only):
#: ``'nested'`` tests every node on the guessed class's path and reports the finest
#: rejected one; ``'adaptive'`` tests one node, the finest that at least ``agree * n0``
#: of the ``n0`` samples fall into (the level choice of Anani et al. [2]_).
RULES: tuple[str, ...] = ("nested", "adaptive")
#: How the guessed path is chosen from the ``n0`` samples: ``'fine'`` the path of the
#: most frequent fine class; ``'top_down'`` the most frequent top-level class, then its
#: most frequent child, and so on down to a fine class (siblings that tie are told
#: apart by the counts further down: the fine class whose counts along its path from
#: the top are lexicographically largest; then the lowest class index).
GUESSES: tuple[str, ...] = ("fine", "top_down")


@dataclass(frozen=True, eq=False)
class HierarchicalCertificate:
    """Output of :meth:`HierarchicalSegCertify.certify` for one input.

    Attributes
    ----------
    nodes : torch.Tensor
        int64, component shape: the certified node of every component (a fine
        class ``< num_classes`` or a coarser node id of ``hierarchy``), or
        :data:`ABSTAIN` (-1).
    levels : torch.Tensor
        int64, component shape: ``hierarchy.levels`` of the certified node (0 =
        fine), -1 where abstained.
    labels : torch.Tensor
        int64, component shape: ``nodes`` where a fine class is certified,
        ABSTAIN elsewhere. With ``rule='nested'`` these are exactly the labels of
        the flat :class:`~smoothing.SegCertify` certificate (same correction, same
        generator).
    radius : float
        ``sampler.radius(tau)``, as in the flat certificate: every certified node
        keeps probability above ``tau`` -- hence stays the smoothed model's node --
        for every perturbation within this radius.
    guesses : torch.Tensor
        int64, component shape: the fine class at the bottom of the guessed path.
    paths : torch.Tensor
        int64, component shape + (D,): the guessed path, finest node first
        (``hierarchy.paths[guesses]``; top-down guesses may differ from it above).
    counts, counts0 : torch.Tensor
        int64, component shape + (D,): how many of the ``n`` counting samples and
        of the ``n0`` guessing samples predicted a fine class inside each path node.
    threshold : int
        Count threshold of the test: a tested node is certified iff its count is
        at least this (``n + 1``: none can be).
    params : Mapping
        ``n0``, ``n``, ``tau``, ``alpha``, ``correction``, ``k``, ``rule``,
        ``guess``, ``agree``, ``hierarchy`` (name), ``hierarchy_sha256``,
        ``num_classes``, ``batch_size``, ``layout``, ``sampler``, ``threat_model``.
    time_sampling, time_testing : float
        Seconds spent sampling (both phases) and testing.
    sound : bool
        ``True`` if the certificate is a proven statement (a sound sampler; the
        corrections offered are all certifying ones).
    hierarchy : Hierarchy
        The hierarchy the nodes refer to.
    """

    nodes: torch.Tensor
    levels: torch.Tensor
    labels: torch.Tensor
    radius: float
    guesses: torch.Tensor
    paths: torch.Tensor
    counts: torch.Tensor
    counts0: torch.Tensor
    threshold: int
    params: Mapping[str, Any]
    time_sampling: float
    time_testing: float
    sound: bool
    hierarchy: Hierarchy

    #: The label of an abstained component.
    ABSTAIN: ClassVar[int] = ABSTAIN

    @property
    def certified(self) -> torch.Tensor:
        """Boolean mask of the certified (non-abstaining) components, at any level."""
        return self.nodes != ABSTAIN

    @property
    def certified_fraction(self) -> float:
        """Fraction of components certified at any level (1 - abstain rate)."""
        return int(self.certified.sum()) / max(1, self.nodes.numel())

    def level_fractions(self) -> np.ndarray:
        """Fraction of components certified at each level, shape (num_levels,)."""
        lv = self.levels.reshape(-1).numpy()
        hist = np.bincount(lv[lv >= 0], minlength=self.hierarchy.num_levels)
        return hist / max(1, lv.size)

    def __repr__(self) -> str:
        p = self.params
        fractions = ", ".join(f"{f:.4f}" for f in self.level_fractions())
        return (
            f"HierarchicalCertificate(shape={tuple(self.nodes.shape)}, "
            f"hierarchy={p['hierarchy']!r}, rule={p['rule']!r}, "
            f"certified_per_level=[{fractions}], "
            f"abstain={1 - self.certified_fraction:.4f}, radius={self.radius:.4g}, "
            f"n0={p['n0']}, n={p['n']}, tau={p['tau']}, alpha={p['alpha']}, "
            f"correction={p['correction']!r}, "
            f"sound={soundness_note(str(self.sound), self.sound)})"
        )


class HierarchicalSegCertify:
    r"""SEGCERTIFY over a class hierarchy: the finest certifiable node per component.

    Algorithm 2 of [1]_ with the classes of a :class:`~smoothing.hierarchy.Hierarchy`:
    (1) draw ``n0`` samples and guess, per component, a path of nested nodes (the
    guessed fine class and the coarser nodes above it); (2) draw ``n`` new samples
    and count, for every node on the path, the samples whose predicted fine class
    lies in it; (3) test ``H0: P(node) <= tau`` and report a certified node or
    ABSTAIN.

    **Guarantee.** With probability at least ``1 - alpha`` over the sampling, every
    non-abstaining component's node has probability above ``tau`` under the noise
    -- simultaneously for all components, under any dependence between them --
    so, as in [1]_, the hierarchical smoothed model keeps that node for every
    perturbation within ``radius`` (k-FWER: fewer than ``k`` wrong components).

    Parameters
    ----------
    model : torch.nn.Module or callable
        The base model, as for :class:`~smoothing.SegCertify`; its number of
        classes is ``hierarchy.num_classes``.
    sampler : samplers.Sampler
        The smoothing distribution; ``radius = sampler.radius(tau)``.
    hierarchy : Hierarchy, str or mapping
        The class hierarchy: a :class:`~smoothing.hierarchy.Hierarchy`, a built-in
        name (``'cityscapes'``, ``'streets'``, ``'parts'``, ...), a JSON file or a
        document mapping (:func:`~smoothing.hierarchy.load_hierarchy`).
    n0, n, tau, alpha, batch_size, layout, progress
        As for :class:`~smoothing.SegCertify`.
    correction : {'holm', 'bonferroni', 'lehmann_romano', 'generalized_bonferroni'}
        The multiple-testing procedure, default ``'holm'``.
    k : int, default 1
        ``k`` of the k-FWER procedures.
    rule : {'nested', 'adaptive'}, default 'nested'
        ``'nested'``: the procedure on the fine nodes (exactly the flat
        certificate), then every coarser node on each path at the procedure's
        final critical value (:func:`multitest.certify_nested_counts`); the finest
        rejected node is reported. ``'adaptive'``: one node per component, the
        finest node of the path that at least ``ceil(agree * n0)`` guessing samples
        fall into (else the coarsest), tested with the procedure across components
        -- the level choice of [2]_ from counts instead of softmax scores.
    guess : {'fine', 'top_down'}, default 'fine'
        How the path is guessed from the ``n0`` samples (:data:`GUESSES`).
    agree : float, default 1.0
        For ``rule='adaptive'``: the fraction of the ``n0`` samples a node needs,
        in (0, 1].

    Raises
    ------
    TypeError, ValueError
        As :class:`~smoothing.SegCertify`, and for an invalid hierarchy, ``rule``,
        ``guess``, ``agree`` or a correction outside :data:`multitest.NESTED_METHODS`.

    Notes
    -----
    The guesses use the ``n0`` samples only and the tests the ``n`` independent
    samples, so the tested nodes are fixed before the counts are seen. With a
    one-level hierarchy (:meth:`Hierarchy.flat`) the certificate is the flat one,
    bit for bit. The randomized binomial test and the non-certifying corrections of
    :class:`~smoothing.SegCertify` are not offered here.

    **Cost.** As :class:`~smoothing.SegCertify`, plus, per batch, one (b, N, D)
    membership lookup (``D`` = ``hierarchy.depth``) and, once, an (N, M) table of
    node counts of the ``n0`` samples.

    Examples
    --------
    A 1x1-convolution "segmenter" whose classes 1 and 2 are equally likely on the
    right half: no fine class is stable there, but their parent is.

    >>> import torch
    >>> from samplers import GaussianL2
    >>> from smoothing.hierarchy import Hierarchy
    >>> h = Hierarchy.from_tree(["bg", {"fg": ["fg-a", "fg-b"]}], ["bg", "fg-a", "fg-b"])
    >>> model = torch.nn.Conv2d(3, 3, kernel_size=1)
    >>> with torch.no_grad():
    ...     _ = model.weight.zero_(); _ = model.bias.zero_()
    ...     model.weight[1, 0] = 8.0; model.weight[2, 0] = 8.0; model.bias[1:] = -4.0
    ...     model.weight[1, 1] = 1.0; model.weight[2, 2] = 1.0
    >>> x = torch.zeros(3, 4, 8)
    >>> x[0, :, 4:] = 1.0                       # right half red: classes 1 or 2
    >>> cert = HierarchicalSegCertify(model, GaussianL2(0.25), hierarchy=h, n0=10,
    ...     n=100, tau=0.75, alpha=0.001, batch_size=50).certify(
    ...     x, generator=torch.Generator().manual_seed(0))
    >>> [h.names[int(v)] for v in cert.nodes[0]]
    ['bg', 'bg', 'bg', 'bg', 'fg', 'fg', 'fg', 'fg']
    >>> cert.labels[0].tolist()                 # the flat certificate abstains there
    [0, 0, 0, 0, -1, -1, -1, -1]
    """

    #: The label of an abstained component.
    ABSTAIN: ClassVar[int] = ABSTAIN

    def __init__(
        self,
        model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
        sampler: Sampler,
        *,
        hierarchy: Hierarchy | str | Mapping[str, Any],
        n0: int,
        n: int,
        tau: float,
        alpha: float,
        correction: str = "holm",
        k: int = 1,
        rule: str = "nested",
        guess: str = "fine",
        agree: float = 1.0,
        batch_size: int,
        layout: str = "auto",
        progress: bool = False,
    ) -> None:
        self.model = S.check_model(model)
        self.sampler = S.check_sampler(sampler)
        self.hierarchy = load_hierarchy(hierarchy)
        self.num_classes = self.hierarchy.num_classes
        self.n0 = S.check_int(n0, "n0")
        self.n = S.check_int(n, "n")
        self.tau = S.check_tau(tau)
        self.alpha = S.check_alpha(alpha)
        self.correction = _choice(correction, "correction", multitest.NESTED_METHODS)
        self.k = S.check_int(k, "k")
        if self.k != 1 and not multitest.COUNT_METHODS[self.correction].takes_k:
            raise ValueError(f"`k` must be 1 for correction {self.correction!r}; got {k!r}.")
        self.rule = _choice(rule, "rule", RULES)
        self.guess = _choice(guess, "guess", GUESSES)
        self.agree = S.check_real(agree, "agree", 0.0, math.nextafter(1.0, 2.0),
                                  closed_low=False, text="(0, 1]")
        self.batch_size = S.check_int(batch_size, "batch_size")
        self.layout = S.check_layout(layout, allowed=("BCHW", "BHWC", "BNC", "BCN"))
        self.progress = bool(progress)
        self.radius = self.sampler.radius(self.tau)

    def __repr__(self) -> str:
        return (
            f"HierarchicalSegCertify(sampler={self.sampler!r}, hierarchy="
            f"{self.hierarchy.name!r}, rule={self.rule!r}, guess={self.guess!r}, "
            f"n0={self.n0}, n={self.n}, tau={self.tau}, alpha={self.alpha}, "
            f"correction={self.correction!r}, k={self.k}, batch_size={self.batch_size})"
        )

    @property
    def sound(self) -> bool:
        """Whether results are proven certificates (every correction offered is)."""
        return bool(self.sampler.sound)

    # ------------------------------------------------------------------ public
    def certify(self, x: torch.Tensor, *,
                generator: torch.Generator | None = None) -> HierarchicalCertificate:
        """Run hierarchical SEGCERTIFY on one input.

        Parameters
        ----------
        x : torch.Tensor
            ONE input without a batch dimension: an image (C, H, W) or a point
            cloud (N, d).
        generator : torch.Generator, optional
            Source of randomness: the ``n0`` and ``n`` phases draw from two
            independent streams seeded from it, exactly as
            :meth:`SegCertify.certify <smoothing.SegCertify.certify>` does (so the
            same seed gives the same noise as the flat certificate).

        Returns
        -------
        HierarchicalCertificate

        Raises
        ------
        TypeError, ValueError
            As :meth:`SegCertify.certify <smoothing.SegCertify.certify>`.
        """
        h = self.hierarchy
        state: dict[str, torch.Tensor] = {}

        def guess(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            member = torch.as_tensor(_membership(h), device=table.device)
            state["member"] = member
            return _guess_paths(table, member, h, self.guess)

        def match(pred: torch.Tensor, guesses: torch.Tensor) -> torch.Tensor:
            # hits[b, i, d]: is sample b's prediction at component i inside node d of its path?
            return state["member"][pred.unsqueeze(-1), guesses]

        if self.k > 1 and isinstance(x, torch.Tensor) and x.ndim in (2, 3):
            layout = S.resolve_layout(self.layout, self.model, x)
            check_k_components(self.k, math.prod(S.component_shape(x, layout)))
        sampled = S.guess_and_count(
            self.model, self.sampler, x, num_classes=self.num_classes, n0=self.n0, n=self.n,
            batch_size=self.batch_size, layout=self.layout, generator=generator,
            progress=self.progress, guess=guess, match=match,
        )
        t0 = time.perf_counter()
        shape = (*sampled.components, h.depth)
        paths = sampled.guesses.cpu().to(torch.int64).reshape(shape)
        counts = sampled.counts.cpu().to(torch.int64).reshape(shape)
        counts0 = sampled.counts0.cpu().to(torch.int64).reshape(shape)
        params = {
            "n0": self.n0, "n": self.n, "tau": self.tau, "alpha": self.alpha,
            "correction": self.correction, "k": self.k, "rule": self.rule,
            "guess": self.guess, "agree": self.agree, "hierarchy": h.name,
            "hierarchy_sha256": h.fingerprint, "num_classes": self.num_classes,
            "batch_size": self.batch_size, "layout": sampled.layout,
            "sampler": repr(self.sampler), "threat_model": self.sampler.threat_model,
        }
        blank = HierarchicalCertificate(
            nodes=paths[..., 0], levels=paths[..., 0], labels=paths[..., 0],
            radius=self.radius, guesses=paths[..., 0].clone(), paths=paths, counts=counts,
            counts0=counts0, threshold=self.n + 1, params=params,
            time_sampling=sampled.seconds, time_testing=0.0, sound=self.sound, hierarchy=h)
        return self._decided(blank, t0, self.tau)

    def retest(self, cert: HierarchicalCertificate, *,
               tau: float | None = None) -> HierarchicalCertificate:
        """``cert``'s counts tested again with this certifier's rule, correction and
        ``tau`` (default: this certifier's), without sampling.

        The paths and counts do not depend on the rule, the correction or ``tau``;
        the result is what :meth:`certify` returns for the same generator. Each
        retest holds with probability ``1 - alpha`` on its own, not jointly with
        ``cert``.

        Parameters
        ----------
        cert : HierarchicalCertificate
            A certificate over the same hierarchy, with the same ``n0``, ``n`` and
            ``guess``.
        tau : float, optional
            The threshold to test at, in [1/2, 1).

        Returns
        -------
        HierarchicalCertificate

        Raises
        ------
        TypeError
            If ``cert`` is not a :class:`HierarchicalCertificate`.
        ValueError
            If ``cert`` was sampled over another hierarchy or with another ``n0``,
            ``n`` or ``guess``, or ``tau`` is outside [1/2, 1).
        """
        if not isinstance(cert, HierarchicalCertificate):
            raise TypeError(f"`cert` must be a HierarchicalCertificate; got "
                            f"{type(cert).__name__}.")
        p = cert.params
        mine = (self.hierarchy.fingerprint, self.n0, self.n, self.guess)
        theirs = (p["hierarchy_sha256"], p["n0"], p["n"], p["guess"])
        if mine != theirs:
            raise ValueError(f"`cert` was sampled with (hierarchy, n0, n, guess) = "
                             f"({p['hierarchy']!r}, {p['n0']}, {p['n']}, {p['guess']!r}); "
                             f"this certifier uses ({self.hierarchy.name!r}, {self.n0}, "
                             f"{self.n}, {self.guess!r}).")
        tau = self.tau if tau is None else S.check_tau(tau)
        return self._decided(cert, time.perf_counter(), tau)

    # ------------------------------------------------------------------ testing
    def _decided(self, cert: HierarchicalCertificate, t0: float,
                 tau: float) -> HierarchicalCertificate:
        """``cert`` with nodes, levels, labels and threshold decided by this certifier
        at threshold ``tau``."""
        h = self.hierarchy
        counts = cert.counts.numpy()
        N = int(np.prod(counts.shape[:-1]))
        check_k_components(self.k, N)
        flat_counts = counts.reshape(N, h.depth)
        paths = cert.paths.numpy().reshape(N, h.depth)
        if self.rule == "nested":
            res = multitest.certify_nested_counts(flat_counts, self.n, tau, self.alpha,
                                                  method=self.correction, k=self.k)
            step, threshold = res.finest, res.threshold
        else:
            step, threshold = adaptive_steps(
                flat_counts, cert.counts0.numpy().reshape(N, h.depth), self.n, self.n0, tau,
                self.alpha, method=self.correction, k=self.k, agree=self.agree)
        rows = np.arange(N)
        nodes = np.where(step >= 0, paths[rows, np.maximum(step, 0)], ABSTAIN)
        nodes = _finest_equal(nodes, paths, h)
        shape = counts.shape[:-1]
        nodes_t = torch.from_numpy(nodes.reshape(shape))
        levels = np.where(nodes >= 0, h.levels[np.maximum(nodes, 0)], ABSTAIN)
        labels = np.where(nodes < self.num_classes, nodes, ABSTAIN)
        params = {**cert.params, "tau": tau, "alpha": self.alpha,
                  "correction": self.correction, "k": self.k, "rule": self.rule,
                  "agree": self.agree}
        return replace(cert, nodes=nodes_t, levels=torch.from_numpy(levels.reshape(shape)),
                       labels=torch.from_numpy(labels.reshape(shape)),
                       guesses=cert.paths[..., 0].clone(), radius=self.sampler.radius(tau),
                       threshold=int(threshold), params=params,
                       time_testing=time.perf_counter() - t0, sound=self.sound)


# ---------------------------------------------------------------------- helpers
def adaptive_steps(counts: np.ndarray, counts0: np.ndarray, n: int, n0: int, tau: float,
                   alpha: float, *, method: str, k: int, agree: float) -> tuple[np.ndarray, int]:
    """The level choice of [2]_ from counts: per chain (rows of the (N, D) arrays) the
    finest step that at least ``ceil(agree * n0)`` guessing samples fall into (else
    the coarsest), tested across chains with ``method``. Returns the certified step
    (-1: abstain) of every chain and the count threshold."""
    D = counts.shape[1]
    need = math.ceil(agree * n0 - 1e-9)
    enough = counts0 >= need
    step = np.where(enough.any(axis=1), enough.argmax(axis=1), D - 1)
    chosen = counts[np.arange(counts.shape[0]), step]
    test = multitest.certify_counts(chosen, n, tau, alpha, method=method, k=k)
    return np.where(test.reject, step, -1), int(test.threshold)


def _choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; "
                         f"got {value!r}.")
    return str(value)


def _membership(h: Hierarchy) -> np.ndarray:
    """bool (C, M): ``[c, v]`` iff fine class ``c`` lies in node ``v``."""
    member = np.zeros((h.num_classes, h.num_nodes), dtype=bool)
    member[np.arange(h.num_classes)[:, None], h.paths] = True
    return member


def _guess_paths(table: torch.Tensor, member: torch.Tensor, h: Hierarchy,
                 how: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Paths (N, D) guessed from the (N, C) ``n0`` table, and their node counts."""
    ptab = torch.tensor(h.paths, device=table.device)
    # node counts (N, M): the fine classes, then the sums over each coarser node
    extra = [table[:, member[:, v]].sum(dim=1, dtype=table.dtype)
             for v in range(h.num_classes, h.num_nodes)]
    nodes = torch.cat([table, torch.stack(extra, dim=1)], dim=1) if extra else table
    if how == "fine":
        fine = table.argmax(dim=1)  # ties: the lowest class index
    else:  # top-down: compare the fine classes' paths from the top, node by node
        down = torch.as_tensor(_top_down(h), device=table.device)  # (C, D)
        alive = torch.ones_like(table, dtype=torch.bool)
        for d in range(h.depth):
            key = nodes[:, down[:, d]].to(torch.int64)
            key = torch.where(alive, key, -1)
            alive &= key == key.max(dim=1, keepdim=True).values
        fine = alive.to(torch.uint8).argmax(dim=1)  # ties: the lowest class index
    paths = ptab[fine]
    return paths, nodes.gather(1, paths)


def _top_down(h: Hierarchy) -> np.ndarray:
    """(C, D): every fine class's path from its top-level class down, padded at the
    end with the fine class itself."""
    out = np.empty_like(h.paths)
    for c in range(h.num_classes):
        down = list(dict.fromkeys(h.paths[c].tolist()))[::-1]
        out[c] = down + [c] * (h.depth - len(down))
    return out


def _finest_equal(nodes: np.ndarray, paths: np.ndarray, h: Hierarchy) -> np.ndarray:
    """Each certified node replaced by the finest node of its path with the same fine
    classes (a chain of one-child nodes is one class; their counts are equal)."""
    leafs = h.leaf_counts[paths]  # (N, D), nondecreasing along the path
    target = h.leaf_counts[np.maximum(nodes, 0)]
    first = (leafs == target[:, None]).argmax(axis=1)
    return np.where(nodes >= 0, paths[np.arange(nodes.size), first], nodes)
