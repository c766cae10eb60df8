"""Data sets for certified segmentation: built-in synthetic data and real-data readers.

Built in (generated on the fly from a seed, no download):

========================  =================================================  ==========
class                     items                                              classes
========================  =================================================  ==========
``SyntheticStreets``      street scenes: image (3, H, W) in [0, 1], labels    8
``SyntheticParts``        objects from primitives: points (2048, 6), parts   50 (global)
========================  =================================================  ==========

Readers of the official on-disk layouts (the data themselves must be downloaded):

========================  =================================================  ==========
``Cityscapes``            ``leftImg8bit/`` + ``gtFine/``; labelIds -> train  19
``PascalContext59``       ``JPEGImages/`` + ``SegmentationClassContext/``    59
``ShapeNetPart``          ``..._v0_normal/`` text files + split lists        50 (global)
========================  =================================================  ==========

Your own data: ``FolderDataset(root, num_classes)`` reads ``root/images/*`` and
``root/masks/*`` matched by file stem (PNG/JPEG/TIFF/NPY images, PNG/TIFF/NPY labels).

Image items are ``ImageSample(image, label)`` (float32 (3, H, W), int64 (H, W), 255 =
ignore); point-cloud items are ``PointCloudSample(points, labels, category)``, centred,
with the furthest point at distance 1. All classes are ``torch.utils.data.Dataset``.
"""

from smoothing.datasets._common import (
    IGNORE_INDEX,
    SPLITS,
    ImageSample,
    PointCloudSample,
    normalize_point_cloud,
    resample_indices,
)
from smoothing.datasets.cityscapes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_ID_TO_TRAIN_ID,
    CITYSCAPES_PALETTE,
    Cityscapes,
    cityscapes_train_ids,
)
from smoothing.datasets.folder import IMAGE_SUFFIXES, MASK_SUFFIXES, FolderDataset
from smoothing.datasets.pascal_context import (
    PASCAL_CONTEXT_CLASSES,
    PascalContext59,
    pascal_context59_labels,
)
from smoothing.datasets.shapenet import (
    NUM_SHAPENET_PARTS,
    SHAPENET_CATEGORIES,
    SHAPENET_PARTS,
    ShapeNetPart,
    category_index,
    category_parts,
    part_mask,
)
from smoothing.datasets.synthetic import (
    STREET_CLASSES,
    STREET_PALETTE,
    SyntheticStreets,
    make_street_scene,
)
from smoothing.datasets.synthetic_parts import (
    SYNTHETIC_PART_CATEGORIES,
    SyntheticParts,
    make_part_object,
)

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_ID_TO_TRAIN_ID",
    "CITYSCAPES_PALETTE",
    "IGNORE_INDEX",
    "IMAGE_SUFFIXES",
    "MASK_SUFFIXES",
    "NUM_SHAPENET_PARTS",
    "PASCAL_CONTEXT_CLASSES",
    "SHAPENET_CATEGORIES",
    "SHAPENET_PARTS",
    "SPLITS",
    "STREET_CLASSES",
    "STREET_PALETTE",
    "SYNTHETIC_PART_CATEGORIES",
    "Cityscapes",
    "FolderDataset",
    "ImageSample",
    "PascalContext59",
    "PointCloudSample",
    "ShapeNetPart",
    "SyntheticParts",
    "SyntheticStreets",
    "category_index",
    "category_parts",
    "cityscapes_train_ids",
    "make_part_object",
    "make_street_scene",
    "normalize_point_cloud",
    "part_mask",
    "pascal_context59_labels",
    "resample_indices",
]
