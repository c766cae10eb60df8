"""Small base models for certified segmentation and a registry of trained ones.

================================  ==========  =======  =====  ========================
name                              arch        classes  sigma  input
================================  ==========  =======  =====  ========================
``streets-unet-clean``            SmallUNet   8        0      (B, 3, H, W) in [0, 1]
``streets-unet-sigma0.25``        SmallUNet   8        0.25   (B, 3, H, W) in [0, 1]
``streets-unet-sigma0.50``        SmallUNet   8        0.5    (B, 3, H, W) in [0, 1]
``parts-pointnet-sigma0.25``      PointNetSeg 50       0.25   (B, N, 3)
``parts-pointnet-normals-...25``  PointNetSeg 50       0.25   (B, N, 6)
``parts-pointnet-sigma0.50``      PointNetSeg 50       0.5    (B, N, 3)
``parts-pointnet-normals-...50``  PointNetSeg 50       0.5    (B, N, 6)
================================  ==========  =======  =====  ========================

``load_model(name)`` returns one in eval mode; ``load_checkpoint(path, arch=...,
num_classes=...)`` loads a user's own checkpoint of the same architectures.
"""

from smoothing.models.pointnet import CategoryMasked, PointNetSeg
from smoothing.models.registry import (
    ARCHITECTURES,
    BUILTIN_MODELS,
    CHECKPOINT_DIR,
    ModelSpec,
    build_model,
    checkpoint_path,
    get_model_spec,
    list_models,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from smoothing.models.unet import SmallUNet

__all__ = [
    "ARCHITECTURES",
    "BUILTIN_MODELS",
    "CHECKPOINT_DIR",
    "CategoryMasked",
    "ModelSpec",
    "PointNetSeg",
    "SmallUNet",
    "build_model",
    "checkpoint_path",
    "get_model_spec",
    "list_models",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]
