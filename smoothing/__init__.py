"""smoothing: certified segmentation of torch models by randomized smoothing.

:class:`SegCertify` (Algorithm 2 of Fischer, Baader & Vechev, ICML 2021) turns a
segmentation model and a :mod:`samplers` distribution into per-component
certified labels, :data:`ABSTAIN` (-1) where it cannot certify. Also here:
hierarchical certification (:class:`HierarchicalSegCertify` over a
:class:`Hierarchy`: a coarser class where the fine class must abstain),
Cohen et al.'s :class:`SmoothClassifier`, the :class:`JointClass` /
:class:`IndivClass` baselines, model adapters (:mod:`smoothing.adapters`),
metrics (:mod:`smoothing.metrics`) and an l2 PGD attack (:func:`pgd_l2`).
Data sets and built-in models live in :mod:`smoothing.datasets` and
:mod:`smoothing.models` (imported on demand, not here).

Every name is imported on first use, so ``import smoothing`` (and the
``segcertify`` command line's ``--help``) does not import torch.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of start-up

#: Public name -> the submodule that defines it (imported on first access, PEP 562,
#: so that ``import smoothing`` and the ``segcertify`` parser do not import torch).
_LAZY: dict[str, str] = {
    "ABSTAIN": "smoothing._sampling",
    "Averaged": "smoothing.adapters",
    "Denoised": "smoothing.adapters",
    "ImageSegmenter": "smoothing.adapters",
    "MultiScale": "smoothing.adapters",
    "OutputSelector": "smoothing.adapters",
    "PointCloudSegmenter": "smoothing.adapters",
    "pgd_l2": "smoothing.attacks",
    "project_l2": "smoothing.attacks",
    "BaselineCertificate": "smoothing.baselines",
    "IndivClass": "smoothing.baselines",
    "JointClass": "smoothing.baselines",
    "ClassCertificate": "smoothing.classification",
    "HierarchicalCertificate": "smoothing.hierarchical",
    "HierarchicalSegCertify": "smoothing.hierarchical",
    "Hierarchy": "smoothing.hierarchy",
    "load_hierarchy": "smoothing.hierarchy",
    "ClassPrediction": "smoothing.classification",
    "SmoothClassifier": "smoothing.classification",
    "HierarchicalMetrics": "smoothing.metrics",
    "SegmentationMetrics": "smoothing.metrics",
    "abstain_rate": "smoothing.metrics",
    "certified_accuracy": "smoothing.metrics",
    "certified_information_gain": "smoothing.metrics",
    "confusion_matrix": "smoothing.metrics",
    "miou_dataset": "smoothing.metrics",
    "miou_per_image": "smoothing.metrics",
    "CERTIFYING_CORRECTIONS": "smoothing.segcertify",
    "RadiusMap": "smoothing.segcertify",
    "SegCertify": "smoothing.segcertify",
    "SegmentationCertificate": "smoothing.segcertify",
}

if TYPE_CHECKING:  # static analysers see the eager imports
    from typing import Any

    from smoothing._sampling import ABSTAIN
    from smoothing.adapters import (
        Averaged,
        Denoised,
        ImageSegmenter,
        MultiScale,
        OutputSelector,
        PointCloudSegmenter,
    )
    from smoothing.attacks import pgd_l2, project_l2
    from smoothing.baselines import BaselineCertificate, IndivClass, JointClass
    from smoothing.classification import ClassCertificate, ClassPrediction, SmoothClassifier
    from smoothing.hierarchical import HierarchicalCertificate, HierarchicalSegCertify
    from smoothing.hierarchy import Hierarchy, load_hierarchy
    from smoothing.metrics import (
        HierarchicalMetrics,
        SegmentationMetrics,
        abstain_rate,
        certified_accuracy,
        certified_information_gain,
        confusion_matrix,
        miou_dataset,
        miou_per_image,
    )
    from smoothing.segcertify import (
        CERTIFYING_CORRECTIONS,
        RadiusMap,
        SegCertify,
        SegmentationCertificate,
    )


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smoothing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ABSTAIN",
    "CERTIFYING_CORRECTIONS",
    "Averaged",
    "BaselineCertificate",
    "ClassCertificate",
    "ClassPrediction",
    "Denoised",
    "HierarchicalCertificate",
    "HierarchicalMetrics",
    "HierarchicalSegCertify",
    "Hierarchy",
    "ImageSegmenter",
    "IndivClass",
    "JointClass",
    "MultiScale",
    "OutputSelector",
    "PointCloudSegmenter",
    "RadiusMap",
    "SegCertify",
    "SegmentationCertificate",
    "SegmentationMetrics",
    "SmoothClassifier",
    "abstain_rate",
    "certified_accuracy",
    "certified_information_gain",
    "confusion_matrix",
    "miou_dataset",
    "load_hierarchy",
    "miou_per_image",
    "pgd_l2",
    "project_l2",
]
