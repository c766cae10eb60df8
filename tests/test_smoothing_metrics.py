"""Segmentation metrics against brute-force references written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smoothing import (
    ABSTAIN,
    SegmentationMetrics,
    abstain_rate,
    certified_accuracy,
    confusion_matrix,
    miou_dataset,
    miou_per_image,
)

IGNORE = 255


def ref_accuracy(preds, targets):
    right = total = 0
    for p, t in zip(preds, targets, strict=True):
        for a, b in zip(p.ravel(), t.ravel(), strict=True):
            if b == IGNORE:
                continue
            total += 1
            right += int(a == b)  # ABSTAIN (-1) never equals a class
    return right / max(1, total)


def ref_iou_pairs(p, t, c):
    """IoU of every class of one input by set operations; None for an empty union."""
    keep = t != IGNORE
    out = []
    for cls in range(c):
        pred_set = set(np.flatnonzero((p == cls) & keep))
        true_set = set(np.flatnonzero((t == cls) & keep))
        union = pred_set | true_set
        out.append(len(pred_set & true_set) / len(union) if union else None)
    return out


def ref_miou_per_image(preds, targets, c):
    vals = [v for p, t in zip(preds, targets, strict=True)
            for v in ref_iou_pairs(p, t, c) if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


def ref_miou_dataset(preds, targets, c):
    # HRNet: (C+1)x(C+1) confusion with abstain as an extra class, IoU of the first C
    conf = np.zeros((c + 1, c + 1))
    for p, t in zip(preds, targets, strict=True):
        keep = t != IGNORE
        pp = np.where(p == ABSTAIN, c, p)[keep]
        for a, b in zip(t[keep], pp, strict=True):
            conf[a, b] += 1
    tp = np.diag(conf)
    iou = tp / np.maximum(1.0, conf.sum(1) + conf.sum(0) - tp)
    return float(iou[:-1].mean())


@st.composite
def labelled_inputs(draw):
    c = draw(st.integers(1, 5))
    n_inputs = draw(st.integers(1, 4))
    preds, targets = [], []
    for _ in range(n_inputs):
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=6))
        preds.append(draw(hnp.arrays(np.int64, shape, elements=st.integers(-1, c - 1))))
        targets.append(draw(hnp.arrays(np.int64, shape,
                                       elements=st.sampled_from([*range(c), IGNORE]))))
    return c, preds, targets


@settings(max_examples=150, deadline=None)
@given(labelled_inputs())
def test_metrics_agree_with_brute_force(case):
    c, preds, targets = case
    assert certified_accuracy(preds, targets) == pytest.approx(ref_accuracy(preds, targets))
    np.testing.assert_allclose(miou_per_image(preds, targets, c),
                               ref_miou_per_image(preds, targets, c))
    assert miou_dataset(preds, targets, c) == pytest.approx(ref_miou_dataset(preds, targets, c))
    kept = np.concatenate([p[t != IGNORE] for p, t in zip(preds, targets, strict=True)])
    expected = float(np.mean(kept == ABSTAIN)) if kept.size else 0.0
    assert abstain_rate(preds, targets) == pytest.approx(expected)


def test_abstain_counts_as_wrong_and_lowers_iou():
    t = np.array([0, 0, 1, 1])
    full = np.array([0, 0, 1, 1])
    abst = np.array([0, 0, 1, ABSTAIN])
    assert certified_accuracy(full, t) == 1.0
    assert certified_accuracy(abst, t) == 0.75
    assert miou_per_image(abst, t, 2) == pytest.approx((1 + 0.5) / 2)
    assert miou_dataset(abst, t, 2) == pytest.approx((1 + 0.5) / 2)


def test_the_two_miou_variants_differ():
    # image 1 has class 1 right, image 2 has class 1 wrong on a large area
    preds = [np.array([1, 1]), np.array([0, 0, 0, 0, 0, 0, 0, 0])]
    targets = [np.array([1, 1]), np.array([1, 1, 1, 1, 1, 1, 1, 1])]
    per_image = miou_per_image(preds, targets, 2)  # pairs: (1,c1)=1, (2,c0)=0, (2,c1)=0
    dataset = miou_dataset(preds, targets, 2)  # c0: 0/8, c1: 2/10
    assert per_image == pytest.approx(1 / 3) and dataset == pytest.approx(0.1)
    # a class that occurs nowhere counts 0 in the dataset variant only
    assert miou_dataset([np.array([0])], [np.array([0])], 3) == pytest.approx(1 / 3)
    assert miou_per_image([np.array([0])], [np.array([0])], 3) == 1.0


def test_accumulator_equals_functions_and_accepts_torch():
    rng = np.random.default_rng(0)
    m = SegmentationMetrics(4)
    preds, targets = [], []
    for _ in range(5):
        p = rng.integers(-1, 4, size=(6, 7))
        t = rng.integers(0, 4, size=(6, 7))
        t[rng.random((6, 7)) < 0.1] = IGNORE
        m.update(torch.from_numpy(p), torch.from_numpy(t))
        preds.append(p)
        targets.append(t)
    assert m.num_inputs == 5
    assert m.accuracy == pytest.approx(certified_accuracy(preds, targets))
    assert m.miou_dataset == pytest.approx(miou_dataset(preds, targets, 4))
    assert m.miou_per_image == pytest.approx(miou_per_image(preds, targets, 4))
    s = m.summary()
    assert set(s) == {"accuracy", "abstain_rate", "miou_per_image", "miou_dataset",
                      "num_inputs", "num_components"}
    assert m.confusion.sum() == sum(int((t != IGNORE).sum()) for t in targets)


def test_point_cloud_labels_and_no_ignore_index():
    p = torch.tensor([3, 3, ABSTAIN, 0])
    t = torch.tensor([3, 2, 2, 0])
    assert certified_accuracy(p, t, ignore_index=None) == 0.5
    assert abstain_rate(p) == 0.25
    assert confusion_matrix(p, t, 4, ignore_index=None).tolist() == [
        [1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 1, 0]]


@pytest.mark.parametrize("pred,target,exc,match", [
    (np.array([0, 1]), np.array([0, -1]), ValueError, "`target` must lie in"),
    (np.array([0, 1]), np.array([0, 7]), ValueError, "`target` must lie in"),
    (np.array([0, -2]), np.array([0, 1]), ValueError, "`pred` must lie in"),
    (np.array([0, 3]), np.array([0, 1]), ValueError, "`pred` must lie in"),
    (np.array([0.0, 1.0]), np.array([0, 1]), TypeError, "integer labels"),
    (np.array([0, 1, 1]), np.array([0, 1]), ValueError, "same shape"),
])
def test_invalid_labels_raise(pred, target, exc, match):
    with pytest.raises(exc, match=match):
        confusion_matrix(pred, target, 3)


def test_negative_ground_truth_other_than_ignore_raises():
    with pytest.raises(ValueError, match="`target`"):
        certified_accuracy(np.array([0, 0]), np.array([0, -1]))
    # -1 is accepted as ground truth only when it is the ignore index
    assert certified_accuracy(np.array([0, 0]), np.array([0, -1]), ignore_index=-1) == 1.0
    with pytest.raises(ValueError, match="got 2 predictions and 1 targets"):
        miou_dataset([np.array([0]), np.array([0])], [np.array([0])], 2)
    with pytest.raises(TypeError, match="both as arrays or both as sequences"):
        miou_dataset([np.array([0])], np.array([0]), 2)
