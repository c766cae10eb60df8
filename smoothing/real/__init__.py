"""Certify real things: a pretrained network on a real photo, a model on real microscopy.

* :mod:`smoothing.real.assets` -- fetch the pinned files from the package registry
  (``python -m smoothing.real fetch``) into a cache; never at run time.
* :mod:`smoothing.real.selfie` -- MediaPipe's selfie segmentation network (TFLite,
  run by LiteRT) as a SEGCERTIFY base model: a plain callable, not a torch module.
* :mod:`smoothing.real.nuclei` -- the 2018 Data Science Bowl nuclei image shipped
  with stardist, a small U-Net trained with noise on it, and an Otsu baseline
  (clean, and as the callable :class:`OtsuSegmenter` for smoothing).

Needs the ``real`` extra: ``pip install 'segcertify[real]'`` (ai-edge-litert,
tifffile, scikit-image). The experiment is ``simulations/real_models.py``;
results and commands in ``docs/real-models.md``.
"""

from smoothing.real.assets import (
    ASSETS,
    FETCH_COMMAND,
    Asset,
    AssetMissingError,
    asset_path,
    cache_dir,
    fetch,
    missing_assets,
)
from smoothing.real.nuclei import (
    NucleiImage,
    OtsuSegmenter,
    TrainConfig,
    load_nuclei,
    normalize_percentile,
    nuclei_model,
    otsu_segmentation,
    predict_clean,
    read_array,
    segmentation_scores,
    split_columns,
    train_nuclei_model,
)
from smoothing.real.selfie import SelfieSegmenter, litert_interpreter, load_astronaut

__all__ = [
    "ASSETS",
    "FETCH_COMMAND",
    "Asset",
    "AssetMissingError",
    "NucleiImage",
    "OtsuSegmenter",
    "SelfieSegmenter",
    "TrainConfig",
    "asset_path",
    "cache_dir",
    "fetch",
    "litert_interpreter",
    "load_astronaut",
    "load_nuclei",
    "missing_assets",
    "normalize_percentile",
    "nuclei_model",
    "otsu_segmentation",
    "predict_clean",
    "read_array",
    "segmentation_scores",
    "split_columns",
    "train_nuclei_model",
]
