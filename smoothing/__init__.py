"""smoothing: certified segmentation of torch models by randomized smoothing.

:class:`SegCertify` (Algorithm 2 of Fischer, Baader & Vechev, ICML 2021) turns a
segmentation model and a :mod:`samplers` distribution into per-component
certified labels, :data:`ABSTAIN` (-1) where it cannot certify. Also here:
Cohen et al.'s :class:`SmoothClassifier`, the :class:`JointClass` /
:class:`IndivClass` baselines, model adapters (:mod:`smoothing.adapters`),
metrics (:mod:`smoothing.metrics`) and an l2 PGD attack (:func:`pgd_l2`).
Data sets and built-in models live in :mod:`smoothing.datasets` and
:mod:`smoothing.models` (imported on demand, not here).
"""

from smoothing._sampling import ABSTAIN
from smoothing.adapters import Averaged, Denoised, ImageSegmenter, MultiScale, PointCloudSegmenter
from smoothing.attacks import pgd_l2, project_l2
from smoothing.baselines import BaselineCertificate, IndivClass, JointClass
from smoothing.classification import ClassCertificate, ClassPrediction, SmoothClassifier
from smoothing.metrics import (
    SegmentationMetrics,
    abstain_rate,
    certified_accuracy,
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

__all__ = [
    "ABSTAIN",
    "CERTIFYING_CORRECTIONS",
    "Averaged",
    "BaselineCertificate",
    "ClassCertificate",
    "ClassPrediction",
    "Denoised",
    "ImageSegmenter",
    "IndivClass",
    "JointClass",
    "MultiScale",
    "PointCloudSegmenter",
    "RadiusMap",
    "SegCertify",
    "SegmentationCertificate",
    "SegmentationMetrics",
    "SmoothClassifier",
    "abstain_rate",
    "certified_accuracy",
    "confusion_matrix",
    "miou_dataset",
    "miou_per_image",
    "pgd_l2",
    "project_l2",
]
