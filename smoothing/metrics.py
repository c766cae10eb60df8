"""Metrics for certified segmentation (images and point clouds).

Predictions may contain :data:`~smoothing.ABSTAIN` (-1); an abstained component
always counts as **wrong**. Ground-truth components equal to ``ignore_index``
(255 by default, the Cityscapes / Pascal Context convention) are left out of every
metric. Inputs are torch tensors or numpy arrays of integers, one per input (an
image (H, W) or a point cloud (N,)); pass a list for several inputs.

Two mean-IoU conventions exist, and they differ:

``miou_per_image``
    App. A.1 of the paper: IoU of every (input, class) pair, averaged over all
    pairs whose union is not empty.
``miou_dataset``
    The reference code (HRNet's evaluation): one confusion matrix summed over the
    whole data set, IoU per class ``TP / max(1, TP + FP + FN)``, averaged over all
    ``num_classes`` classes (a class absent from predictions and ground truth
    counts as 0).

:class:`SegmentationMetrics` accumulates everything over a data set in O(C^2)
memory; the functions are one-call shortcuts.

One module (~690 lines, about half docstrings and doctests): the flat and the
hierarchical metrics share the confusion-matrix helpers they are built from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from smoothing._sampling import ABSTAIN, check_int

__all__ = [
    "HierarchicalMetrics",
    "SegmentationMetrics",
    "abstain_rate",
    "certified_accuracy",
    "certified_information_gain",
    "confusion_matrix",
    "miou_dataset",
    "miou_per_image",
]

def _as_int_array(a: object, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"`{name}` must hold integer labels; got dtype {arr.dtype} "
            "(pass class indices, e.g. logits.argmax(dim), not scores)."
        )
    return arr.astype(np.int64, copy=False)


def confusion_matrix(pred: object, target: object, num_classes: int, *,
                     ignore_index: int | None = 255) -> np.ndarray:
    """Confusion matrix of one input, with a column for abstentions.

    Parameters
    ----------
    pred : torch.Tensor or numpy.ndarray of int
        Predicted labels in ``{ABSTAIN} U [0, num_classes)``, any shape.
    target : torch.Tensor or numpy.ndarray of int
        Ground truth of the same shape, in ``[0, num_classes)`` or ``ignore_index``.
    num_classes : int
        Number of classes ``C``.
    ignore_index : int or None, default 255
        Ground-truth value to leave out; ``None``: none.

    Returns
    -------
    numpy.ndarray
        int64 (C, C + 1): ``[t, p]`` counts components of true class ``t``
        predicted as ``p``; column ``C`` counts abstentions.

    Raises
    ------
    TypeError
        If the labels are not integers.
    ValueError
        If the shapes differ, a prediction is outside ``{-1} U [0, C)``, or a
        target is outside ``[0, C)`` and not ``ignore_index`` (negative targets
        included).

    Examples
    --------
    >>> import numpy as np
    >>> from smoothing.metrics import confusion_matrix
    >>> confusion_matrix(np.array([0, 1, -1, 1]), np.array([0, 1, 1, 255]), 2)
    array([[1, 0, 0],
           [0, 1, 1]])
    """
    c = check_int(num_classes, "num_classes")
    p = _as_int_array(pred, "pred")
    t = _as_int_array(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"`pred` and `target` must have the same shape; got {p.shape} "
                         f"and {t.shape}.")
    p, t = p.reshape(-1), t.reshape(-1)
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    if t.size and (t.min() < 0 or t.max() >= c):
        bad = t[(t < 0) | (t >= c)][0]
        raise ValueError(
            f"`target` must lie in [0, {c}) or equal `ignore_index` = {ignore_index!r}; got "
            f"{bad}."
        )
    if p.size and (p.min() < ABSTAIN or p.max() >= c):
        bad = p[(p < ABSTAIN) | (p >= c)][0]
        raise ValueError(f"`pred` must lie in [0, {c}) or be ABSTAIN = {ABSTAIN}; got {bad}.")
    col = np.where(p == ABSTAIN, c, p)
    return np.bincount(t * (c + 1) + col, minlength=c * (c + 1)).reshape(c, c + 1)


def intersection_union(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(intersection, union) per class of a (C, C+1) confusion matrix (abstentions in
    the last column count in the ground-truth class, never in a predicted one)."""
    c = conf.shape[0]
    tp = np.diag(conf[:, :c]).astype(np.int64)
    gt = conf.sum(axis=1)  # incl. abstained: they are in G_c, not in P_c
    pr = conf[:, :c].sum(axis=0)
    return tp, gt + pr - tp


def iou_pair_sum(inter: np.ndarray, union: np.ndarray) -> tuple[float, int]:
    """(sum of IoU, number of classes) over the classes with a non-empty union: the
    per-input terms of the paper's mIoU (App. A.1), averaged over all pairs."""
    inter, union = np.asarray(inter), np.asarray(union)
    present = union > 0
    return float(np.sum(inter[present] / union[present])), int(np.count_nonzero(present))


def miou_pooled(inter: np.ndarray, union: np.ndarray) -> float:
    """Mean over all classes of ``intersection / max(1, union)`` of pooled counts (the
    reference code's data-set mIoU)."""
    return float(np.mean(np.asarray(inter) / np.maximum(1, np.asarray(union))))


class SegmentationMetrics:
    """Accumulate certified-segmentation metrics over a data set.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C``.
    ignore_index : int or None, default 255
        Ground-truth value left out of every metric.

    Attributes
    ----------
    confusion : numpy.ndarray
        int64 (C, C + 1) confusion matrix summed over all inputs (last column:
        abstentions).
    num_inputs : int
        Number of inputs seen.

    Notes
    -----
    Memory O(C^2); each :meth:`update` costs one pass over the input.

    Examples
    --------
    >>> import numpy as np
    >>> from smoothing.metrics import SegmentationMetrics
    >>> m = SegmentationMetrics(num_classes=2)
    >>> m.update(np.array([[0, 0], [1, -1]]), np.array([[0, 0], [1, 1]]))
    >>> m.update(np.array([1, 1]), np.array([1, 255]))
    >>> m.accuracy, m.abstain_rate
    (0.8, 0.2)
    >>> round(m.miou_per_image, 4), round(m.miou_dataset, 4)
    (0.8333, 0.8333)
    """

    def __init__(self, num_classes: int, *, ignore_index: int | None = 255) -> None:
        self.num_classes = check_int(num_classes, "num_classes")
        self.ignore_index = ignore_index
        self.confusion = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)
        self.num_inputs = 0
        self._iou_sum = 0.0
        self._iou_pairs = 0

    def update(self, pred: object, target: object) -> None:
        """Add one input: labels ``pred`` (with ABSTAIN) against ``target``."""
        conf = confusion_matrix(pred, target, self.num_classes, ignore_index=self.ignore_index)
        self.confusion += conf
        iou_sum, pairs = iou_pair_sum(*intersection_union(conf))
        self._iou_sum += iou_sum
        self._iou_pairs += pairs
        self.num_inputs += 1

    @property
    def num_components(self) -> int:
        """Number of non-ignored components seen."""
        return int(self.confusion.sum())

    @property
    def num_correct(self) -> int:
        """Number of components labelled with their ground-truth class."""
        return int(np.trace(self.confusion[:, : self.num_classes]))

    @property
    def accuracy(self) -> float:
        """Certified per-component accuracy, pooled over all inputs (abstain = wrong)."""
        return float(self.num_correct) / max(1, self.num_components)

    @property
    def abstain_rate(self) -> float:
        """Fraction of non-ignored components that were abstained on."""
        return float(self.confusion[:, -1].sum()) / max(1, self.num_components)

    @property
    def miou_per_image(self) -> float:
        """Mean IoU over (input, class) pairs with a non-empty union (paper App. A.1)."""
        return self._iou_sum / self._iou_pairs if self._iou_pairs else float("nan")

    def iou_dataset(self) -> np.ndarray:
        """Per-class IoU from the summed confusion matrix, ``TP / max(1, union)``."""
        inter, union = intersection_union(self.confusion)
        return inter / np.maximum(1, union)

    @property
    def miou_dataset(self) -> float:
        """Mean of :meth:`iou_dataset` over all classes (the reference code's mIoU)."""
        return miou_pooled(*intersection_union(self.confusion))

    def summary(self) -> dict[str, float]:
        """All metrics as a dict (for a CSV row)."""
        return {
            "accuracy": self.accuracy,
            "abstain_rate": self.abstain_rate,
            "miou_per_image": self.miou_per_image,
            "miou_dataset": self.miou_dataset,
            "num_inputs": self.num_inputs,
            "num_components": self.num_components,
        }


def _inputs(preds: object, targets: object, what: str = "preds",
            noun: str = "predictions") -> list[tuple[object, object]]:
    """(prediction, target) per input, from two arrays or two sequences of arrays."""
    if isinstance(preds, (list, tuple)) != isinstance(targets, (list, tuple)):
        raise TypeError(f"pass `{what}` and `targets` both as arrays or both as sequences.")
    if not isinstance(preds, (list, tuple)):
        preds, targets = [preds], [targets]
    if len(preds) != len(targets):
        raise ValueError(f"got {len(preds)} {noun} and {len(targets)} targets.")
    return list(zip(preds, targets, strict=True))


def _accumulate(preds: object, targets: object, num_classes: int,
                ignore_index: int | None) -> SegmentationMetrics:
    m = SegmentationMetrics(num_classes, ignore_index=ignore_index)
    for p, t in _inputs(preds, targets):
        m.update(p, t)
    return m


def _num_classes_for(preds: object, targets: object, ignore_index: int | None) -> int:
    """A class count large enough for the labels (for metrics that do not depend on C)."""
    items = list(preds) + list(targets) if isinstance(preds, (list, tuple)) else [preds, targets]
    hi = 0
    for a in items:
        arr = _as_int_array(a, "labels")
        if ignore_index is not None:
            arr = arr[arr != ignore_index]
        if arr.size:
            hi = max(hi, int(arr.max()))
    return hi + 1


def certified_accuracy(preds: Sequence[object] | object, targets: Sequence[object] | object, *,
                       ignore_index: int | None = 255) -> float:
    """Fraction of non-ignored components whose label is right; ABSTAIN counts as wrong.

    Pooled over all inputs (every component weighs the same), as in App. A.1/A.2.

    Parameters
    ----------
    preds, targets : array or sequence of arrays
        Labels of one input, or lists with one entry per input (shapes may differ
        between inputs).
    ignore_index : int or None, default 255
        Ground-truth value to leave out.

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        As :func:`confusion_matrix` (negative ground truth other than
        ``ignore_index`` included).

    Examples
    --------
    >>> import numpy as np
    >>> from smoothing.metrics import certified_accuracy
    >>> certified_accuracy(np.array([0, 1, -1, 2]), np.array([0, 1, 1, 255]))
    0.6666666666666666
    """
    c = _num_classes_for(preds, targets, ignore_index)
    return _accumulate(preds, targets, c, ignore_index).accuracy


def abstain_rate(preds: Sequence[object] | object, targets: Sequence[object] | object = None,
                 *, ignore_index: int | None = 255) -> float:
    """Fraction of components labelled ABSTAIN (of the non-ignored ones if ``targets``).

    Examples
    --------
    >>> import numpy as np
    >>> from smoothing.metrics import abstain_rate
    >>> abstain_rate(np.array([0, -1, -1, 2]))
    0.5
    >>> abstain_rate(np.array([0, -1, -1, 2]), np.array([0, 1, 255, 2]))
    0.3333333333333333
    """
    if targets is None:
        items = preds if isinstance(preds, (list, tuple)) else [preds]
        arrs = [_as_int_array(p, "preds").reshape(-1) for p in items]
        total = sum(a.size for a in arrs)
        return sum(int(np.count_nonzero(a == ABSTAIN)) for a in arrs) / max(1, total)
    c = _num_classes_for(preds, targets, ignore_index)
    return _accumulate(preds, targets, c, ignore_index).abstain_rate


def miou_per_image(preds: Sequence[object] | object, targets: Sequence[object] | object,
                   num_classes: int, *, ignore_index: int | None = 255) -> float:
    """Mean IoU averaged over (input, class) pairs -- the paper's App. A.1 definition.

    For input ``i`` and class ``c``, ``IoU = |P ∩ G| / |P ∪ G|`` with ``P`` the
    components predicted ``c`` and ``G`` those labelled ``c`` (ignored components
    left out; an abstained component is in no ``P`` but in its ``G``). Pairs with
    an empty union are skipped (0/0); the rest are averaged with equal weight.

    Examples
    --------
    >>> import numpy as np
    >>> from smoothing.metrics import miou_per_image
    >>> miou_per_image([np.array([0, 0, 1]), np.array([1, 1])],
    ...                [np.array([0, 1, 1]), np.array([1, 1])], num_classes=3)
    0.6666666666666666
    """
    return _accumulate(preds, targets, num_classes, ignore_index).miou_per_image


def miou_dataset(preds: Sequence[object] | object, targets: Sequence[object] | object,
                 num_classes: int, *, ignore_index: int | None = 255) -> float:
    """Mean IoU from the dataset-wide confusion matrix -- the reference code's definition.

    One confusion matrix is summed over all inputs; per class
    ``IoU = TP / max(1, TP + FP + FN)`` (abstentions are false negatives), and the
    mean is over all ``num_classes`` classes, so a class seen nowhere counts as 0.

    Examples
    --------
    >>> import numpy as np
    >>> from smoothing.metrics import miou_dataset
    >>> miou_dataset([np.array([0, 0, 1]), np.array([1, 1])],
    ...              [np.array([0, 1, 1]), np.array([1, 1])], num_classes=3)
    0.4166666666666667
    """
    return _accumulate(preds, targets, num_classes, ignore_index).miou_dataset


class HierarchicalMetrics:
    """Accumulate hierarchical-certification metrics over a data set.

    A certified node is **correct** when it contains the ground-truth fine class
    (the node is the class or one of its ancestors); an abstained component is
    never correct.

    Parameters
    ----------
    hierarchy : smoothing.hierarchy.Hierarchy
        The hierarchy the nodes refer to.
    ignore_index : int or None, default 255
        Ground-truth value left out of every metric.

    Attributes
    ----------
    num_components, num_inputs : int
        Non-ignored components and inputs seen.

    Notes
    -----
    **Certified information gain** (CIG, Anani et al., ICML 2024, Sec. 5): a
    component correctly certified at node ``v`` gains ``log C - log |L(v)|`` nats,
    ``C`` the number of fine classes and ``|L(v)|`` the number of fine classes in
    ``v`` (a fine class gains ``log C``, a node holding every class nothing);
    abstained and wrong components gain 0. :attr:`cig_nats` is the mean gain per
    component; :attr:`cig` divides it by ``log C``, as the paper's tables do, so
    that 1 means every component certified correctly at the fine level (and CIG
    equals the certified accuracy of a flat certificate).

    **Per level.** :meth:`certified_fraction` and :meth:`certified_accuracy` count
    the components certified at a node of each level (``hierarchy.levels``). The
    level-``l`` view (:meth:`~smoothing.hierarchy.Hierarchy.level_groups`) maps
    every fine class and every node of level ``<= l`` to its class at level ``l``;
    a node of a higher level says too little and counts as an abstention there.
    :meth:`miou` is the mean IoU of that view (level 0: the flat mIoU).

    **Records.** :meth:`state` returns the accumulated counts as JSON-ready values
    and :meth:`add_state` adds such a state (validated: it may come from a file), so
    a run can store one input's state per record and pool any subset of records.

    Examples
    --------
    >>> import numpy as np
    >>> from smoothing.hierarchy import Hierarchy
    >>> h = Hierarchy.from_tree(["sky", {"flat": ["road", "sidewalk"]}],
    ...                         ["road", "sidewalk", "sky"])
    >>> m = HierarchicalMetrics(h)
    >>> m.update(np.array([0, 3, 3, -1, 2, 1]), np.array([0, 1, 2, 0, 2, 0]))
    >>> m.certified_fraction().tolist(), m.certified_accuracy().tolist()
    ([0.5, 0.3333333333333333], [0.3333333333333333, 0.16666666666666666])
    >>> round(m.abstain_rate, 4), round(m.accuracy, 4)
    (0.1667, 0.5)
    >>> round(m.cig, 4)   # (log 3 + (log 3 - log 2) + log 3) / (6 log 3)
    0.3948
    >>> round(m.miou(1), 4), round(m.miou(0), 4)   # the 'flat' | 'sky' view; the fine one
    (0.55, 0.2778)
    """

    def __init__(self, hierarchy: object, *, ignore_index: int | None = 255) -> None:
        from smoothing.hierarchy import Hierarchy

        if not isinstance(hierarchy, Hierarchy):
            raise TypeError(f"`hierarchy` must be a smoothing.hierarchy.Hierarchy; got "
                            f"{type(hierarchy).__name__}.")
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        L = hierarchy.num_levels
        self.num_inputs = 0
        self.num_components = 0
        self._abstained = 0
        self._certified = np.zeros(L, dtype=np.int64)
        self._correct = np.zeros(L, dtype=np.int64)
        self._gain = 0.0
        C = hierarchy.num_classes
        self._gain_of = np.log(C) - np.log(hierarchy.leaf_counts.astype(float))
        self._lookups: list[np.ndarray] = []  # node -> class of the level view, or -1
        self._inter: list[np.ndarray] = []  # per level: pooled intersection, union per class
        self._union: list[np.ndarray] = []
        self._iou = np.zeros(L)  # per level: sum of per-input IoUs and their count
        self._pairs = np.zeros(L, dtype=np.int64)
        for level in range(L):
            groups = hierarchy.level_groups(level)
            ids = np.unique(groups[:C])
            compact = np.full(hierarchy.num_nodes, ABSTAIN, dtype=np.int64)
            compact[ids] = np.arange(ids.size)
            self._lookups.append(np.where(groups >= 0, compact[np.maximum(groups, 0)], ABSTAIN))
            self._inter.append(np.zeros(ids.size, dtype=np.int64))
            self._union.append(np.zeros(ids.size, dtype=np.int64))

    def update(self, nodes: object, target: object) -> None:
        """Add one input: certified ``nodes`` (ABSTAIN = -1) against fine ``target``."""
        h = self.hierarchy
        v = _as_int_array(nodes, "nodes")
        t = _as_int_array(target, "target")
        if v.shape != t.shape:
            raise ValueError(f"`nodes` and `target` must have the same shape; got {v.shape} "
                             f"and {t.shape}.")
        v, t = v.reshape(-1), t.reshape(-1)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            v, t = v[keep], t[keep]
        if t.size and (t.min() < 0 or t.max() >= h.num_classes):
            bad = t[(t < 0) | (t >= h.num_classes)][0]
            raise ValueError(f"`target` must lie in [0, {h.num_classes}) or equal "
                             f"`ignore_index` = {self.ignore_index!r}; got {bad}.")
        if v.size and (v.min() < ABSTAIN or v.max() >= h.num_nodes):
            bad = v[(v < ABSTAIN) | (v >= h.num_nodes)][0]
            raise ValueError(f"`nodes` must lie in [0, {h.num_nodes}) or be ABSTAIN = "
                             f"{ABSTAIN}; got {bad}.")
        done = v != ABSTAIN
        correct = h.contains(v, t)
        levels = h.levels[v[done]]
        L = h.num_levels
        self._certified += np.bincount(levels, minlength=L)
        self._correct += np.bincount(h.levels[v[correct]], minlength=L)
        self._abstained += int(v.size - np.count_nonzero(done))
        self._gain += float(self._gain_of[v[correct]].sum())
        for level, lookup in enumerate(self._lookups):
            pred = np.where(done, lookup[np.maximum(v, 0)], ABSTAIN)
            inter, union = intersection_union(confusion_matrix(
                pred, lookup[t], self._inter[level].size, ignore_index=None))
            self._inter[level] += inter
            self._union[level] += union
            iou_sum, pairs = iou_pair_sum(inter, union)
            self._iou[level] += iou_sum
            self._pairs[level] += pairs
        self.num_components += int(v.size)
        self.num_inputs += 1

    @property
    def abstain_rate(self) -> float:
        """Fraction of components abstained on at every level."""
        return self._abstained / max(1, self.num_components)

    def certified_fraction(self) -> np.ndarray:
        """Fraction of components certified at each level, shape (num_levels,)."""
        return self._certified / max(1, self.num_components)

    def certified_accuracy(self) -> np.ndarray:
        """Fraction of components certified *correctly* at each level, (num_levels,)."""
        return self._correct / max(1, self.num_components)

    @property
    def accuracy(self) -> float:
        """Fraction of components certified correctly at any level."""
        return float(self._correct.sum()) / max(1, self.num_components)

    @property
    def cig_nats(self) -> float:
        """Certified information gain per component, in nats (see Notes)."""
        return self._gain / max(1, self.num_components)

    @property
    def cig(self) -> float:
        """Certified information gain per component divided by ``log C``: in [0, 1]
        (NaN for a hierarchy of one class)."""
        c = self.hierarchy.num_classes
        return float(self.cig_nats / np.log(c)) if c > 1 else float("nan")

    def miou(self, level: int = 0, *, per_image: bool = False) -> float:
        """mIoU of the level-``level`` view: the data-set convention of
        :func:`miou_dataset`, or with ``per_image=True`` the paper's (App. A.1) of
        :func:`miou_per_image`."""
        self.hierarchy.level_groups(level)  # validates `level`
        if per_image:
            pairs = self._pairs[level]
            return float(self._iou[level] / pairs) if pairs else float("nan")
        return miou_pooled(self._inter[level], self._union[level])

    def state(self) -> dict[str, Any]:
        """Everything accumulated, as JSON-ready additive counts: one input's
        :meth:`state` is what a run record stores, and :meth:`add_state` pools records
        into data-set metrics (the same numbers as one object updated with all inputs,
        up to the rounding of float sums)."""
        return {
            "hierarchy_sha256": self.hierarchy.fingerprint,
            "num_inputs": self.num_inputs, "num_components": self.num_components,
            "abstained": self._abstained, "certified": self._certified.tolist(),
            "correct": self._correct.tolist(), "gain_nats": self._gain,
            "intersection": [a.tolist() for a in self._inter],
            "union": [a.tolist() for a in self._union],
            "iou_sum": self._iou.tolist(), "iou_pairs": self._pairs.tolist(),
        }

    def add_state(self, state: Mapping[str, Any]) -> None:
        """Add another :meth:`state` (e.g. one read back from a run record).

        Raises
        ------
        ValueError
            If ``state`` was made with another hierarchy, misses a field, or holds
            a value of the wrong length, sign or type (records are untrusted).
        """
        h = self.hierarchy
        if not isinstance(state, Mapping):
            raise ValueError(f"`state` must be a mapping; got {type(state).__name__}.")
        if state.get("hierarchy_sha256") != h.fingerprint:
            raise ValueError(f"`state` was made with another hierarchy "
                             f"({str(state.get('hierarchy_sha256'))[:12]}...) than "
                             f"{h.name!r} ({h.fingerprint[:12]}...).")
        L = h.num_levels
        sizes = [a.size for a in self._inter]
        got = {
            "num_inputs": _counts(state, "num_inputs", None),
            "num_components": _counts(state, "num_components", None),
            "abstained": _counts(state, "abstained", None),
            "certified": _counts(state, "certified", L),
            "correct": _counts(state, "correct", L),
            "iou_pairs": _counts(state, "iou_pairs", L),
            "intersection": [_counts(state["intersection"], lv, g, "intersection")
                             for lv, g in enumerate(sizes)] if _is_list(state, "intersection",
                                                                        L) else None,
            "union": [_counts(state["union"], lv, g, "union") for lv, g in enumerate(sizes)]
            if _is_list(state, "union", L) else None,
            "gain_nats": _reals(state, "gain_nats", None),
            "iou_sum": _reals(state, "iou_sum", L),
        }
        self.num_inputs += int(got["num_inputs"])
        self.num_components += int(got["num_components"])
        self._abstained += int(got["abstained"])
        self._certified += got["certified"]
        self._correct += got["correct"]
        self._pairs += got["iou_pairs"]
        self._gain += float(got["gain_nats"])
        self._iou += got["iou_sum"]
        for level in range(L):
            self._inter[level] += got["intersection"][level]
            self._union[level] += got["union"][level]

    def summary(self) -> dict[str, float]:
        """All metrics as a flat dict (for a CSV row): ``abstain_rate``, ``accuracy``,
        ``cig``, ``cig_nats`` and, per level ``l``, ``certified_l``, ``accuracy_l``,
        ``miou_l`` (data set) and ``miou_per_image_l``."""
        out: dict[str, float] = {"abstain_rate": self.abstain_rate, "accuracy": self.accuracy,
                                 "cig": self.cig, "cig_nats": self.cig_nats}
        for level, (f, a) in enumerate(zip(self.certified_fraction(),
                                           self.certified_accuracy(), strict=True)):
            out[f"certified_{level}"] = float(f)
            out[f"accuracy_{level}"] = float(a)
            out[f"miou_{level}"] = self.miou(level)
            out[f"miou_per_image_{level}"] = self.miou(level, per_image=True)
        out["num_inputs"] = self.num_inputs
        out["num_components"] = self.num_components
        return out


def _is_list(state: Mapping[str, Any], key: str, length: int) -> bool:
    value = state.get(key)
    if not isinstance(value, list) or len(value) != length:
        raise ValueError(f"`state[{key!r}]` must be a list of {length} entries; got "
                         f"{value!r:.60}.")
    return True


def _counts(state: Any, key: Any, length: int | None, name: str | None = None) -> Any:
    """``state[key]``: a non-negative int (``length`` None) or a list of ``length`` of them."""
    what = f"`state[{name!r}][{key}]`" if name else f"`state[{key!r}]`"
    try:
        value = state[key]
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"{what} is missing.") from None
    items = [value] if length is None else value
    if length is not None and (not isinstance(value, list) or len(value) != length):
        raise ValueError(f"{what} must be a list of {length} counts; got {value!r:.60}.")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in items):
        raise ValueError(f"{what} must hold non-negative integers; got {value!r:.60}.")
    return np.asarray(value, dtype=np.int64)


def _reals(state: Mapping[str, Any], key: str, length: int | None) -> Any:
    value = state.get(key)
    items = [value] if length is None else value
    if length is not None and (not isinstance(value, list) or len(value) != length):
        raise ValueError(f"`state[{key!r}]` must be a list of {length} numbers; got "
                         f"{value!r:.60}.")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               and v >= 0 for v in items):
        raise ValueError(f"`state[{key!r}]` must hold finite non-negative numbers; got "
                         f"{value!r:.60}.")
    return np.asarray(value, dtype=np.float64)


def certified_information_gain(nodes: Sequence[object] | object,
                               targets: Sequence[object] | object, hierarchy: object, *,
                               normalize: bool = True, ignore_index: int | None = 255) -> float:
    """Certified information gain of hierarchical certificates (Anani et al., ICML 2024).

    Parameters
    ----------
    nodes, targets : array or sequence of arrays
        Certified nodes (ABSTAIN = -1) and fine ground truth of one input, or lists
        with one entry per input.
    hierarchy : smoothing.hierarchy.Hierarchy
        The hierarchy of the nodes.
    normalize : bool, default True
        Divide by ``log C`` (the paper's tables): 1 = every component certified
        correctly at the fine level. ``False``: nats per component.
    ignore_index : int or None, default 255
        Ground-truth value to leave out.

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        As :meth:`HierarchicalMetrics.update`.

    Examples
    --------
    >>> import numpy as np
    >>> from smoothing.hierarchy import Hierarchy
    >>> h = Hierarchy.from_tree({"a": ["x", "y"], "b": ["z", "w"]}, ["x", "y", "z", "w"])
    >>> certified_information_gain(np.array([0, 4, -1, 5]), np.array([0, 1, 2, 0]), h)
    0.375
    """
    m = HierarchicalMetrics(hierarchy, ignore_index=ignore_index)
    for v, t in _inputs(nodes, targets, "nodes", "node maps"):
        m.update(v, t)
    return m.cig if normalize else m.cig_nats
