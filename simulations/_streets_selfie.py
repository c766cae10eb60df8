"""The inputs shared by the issue-15 studies (``radius_maps.py``, ``certificates_real.py``):
built-in street scenes with the shipped noise-trained U-Net, and the real selfie network
on skimage's astronaut (its clean prediction as the ground truth)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class Settings:
    """What is sampled: sizes, noise levels, sample counts."""

    streets_images: int = 4
    streets_size: tuple[int, int] = (64, 128)
    streets_sigma: float = 0.25
    selfie: bool = True
    selfie_size: int = 256
    selfie_sigma: float = 0.12
    ns: tuple[int, ...] = (100, 500)
    n0: int = 10
    alpha: float = 0.001
    batch: int = 100

    @classmethod
    def quick(cls) -> Settings:
        """One 32 x 64 street scene, n = 50, no selfie network."""
        return cls(streets_images=1, streets_size=(32, 64), selfie=False, ns=(50,), n0=5)


class Study(NamedTuple):
    """One data set of a study: its model, noise level and ``(input, target)`` pairs."""

    dataset: str
    model: Any
    model_name: str
    sigma: float
    inputs: list[tuple[Any, np.ndarray]]
    num_classes: int


def load_studies(settings: Settings, *, cache: str | None, threads: int,
                 prepare: Callable[[Any], Any] = lambda x: x) -> list[Study]:
    """The street scenes and (if ``settings.selfie``) the selfie network, each input
    passed through ``prepare`` (e.g. 8-bit quantisation) before anything sees it."""
    import torch

    from smoothing.datasets import SyntheticStreets
    from smoothing.models import load_model

    name = "streets-unet-sigma0.25"
    h, w = settings.streets_size
    ds = SyntheticStreets(length=settings.streets_images, split="test", seed=0, height=h,
                          width=w)
    studies = [Study("streets", load_model(name), name, settings.streets_sigma,
                     [(prepare(ds[i][0]), ds[i][1].numpy()) for i in range(len(ds))], 8)]
    if settings.selfie:
        from smoothing.real import SelfieSegmenter, asset_path, load_astronaut

        model = SelfieSegmenter(asset_path("selfie_segmentation", cache=cache),
                                num_threads=threads, max_batch=settings.batch)
        x = prepare(load_astronaut(settings.selfie_size))
        with torch.inference_mode():
            clean = model(x[None]).argmax(1)[0].numpy()
        studies.append(Study("selfie", model, "mediapipe-selfie", settings.selfie_sigma,
                             [(x, clean)], 2))
    return studies


def write_csv(rows: list[dict[str, Any]], columns: Sequence[str], path: Path, *,
              lineterminator: str = "\r\n") -> None:
    """``rows`` as CSV, floats with 6 significant digits."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator=lineterminator)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
