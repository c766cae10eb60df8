"""Synthetic street scenes: a built-in image-segmentation data set (no download).

Every scene is drawn from its own seeded generator, so item ``i`` of a split is the
same on every machine and in every order of access.
"""

from __future__ import annotations

import numpy as np
import torch

from smoothing._sampling import check_int
from smoothing.datasets._common import (
    SPLITS,
    ImageSample,
    check_choice,
    check_index,
    item_rng,
)

__all__ = [
    "STREET_CLASSES",
    "STREET_PALETTE",
    "SyntheticStreets",
    "make_street_scene",
]

#: Class names of the synthetic street scenes (index = label value).
STREET_CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "vegetation",
    "sky",
    "person",
    "car",
    "pole",
)

#: Display colour (RGB, 0..255) of every class, taken from the Cityscapes palette.
STREET_PALETTE: np.ndarray = np.array(
    [
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (107, 142, 35),
        (70, 130, 180),
        (220, 20, 60),
        (0, 0, 142),
        (153, 153, 153),
    ],
    dtype=np.uint8,
)

ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR, POLE = range(8)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a coarse random grid, bilinearly upsampled."""
    gh, gw = max(2, h // cells + 2), max(2, w // cells + 2)
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw))
    ys = np.linspace(0, gh - 1.001, h)
    xs = np.linspace(0, gw - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    return (1 - fy) * ((1 - fx) * g00 + fx * g01) + fy * ((1 - fx) * g10 + fx * g11)


def _jitter(
    rng: np.random.Generator, base: tuple[float, float, float], amount: float
) -> np.ndarray:
    return np.clip(np.asarray(base) + rng.uniform(-amount, amount, size=3), 0.0, 1.0)


class _Canvas:
    """An RGB image and its label map, painted back to front."""

    def __init__(self, h: int, w: int, rng: np.random.Generator) -> None:
        self.h, self.w, self.rng = h, w, rng
        self.img = np.zeros((h, w, 3))
        self.lab = np.zeros((h, w), dtype=np.int64)
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
        self.shade = _smooth_noise(rng, h, w, cells=8)
        self.grain = rng.normal(0.0, 1.0, size=(h, w))

    def paint(
        self,
        mask: np.ndarray,
        colour: np.ndarray,
        cls: int | None,
        *,
        shade: float = 0.05,
        grain: float = 0.02,
    ) -> None:
        if not mask.any():
            return
        tone = 1.0 + shade * self.shade[mask] + grain * self.grain[mask]
        self.img[mask] = np.clip(colour[None, :] * tone[:, None], 0.0, 1.0)
        if cls is not None:
            self.lab[mask] = cls

    def rect(self, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
        return (self.xx >= x0) & (self.xx < x1) & (self.yy >= y0) & (self.yy < y1)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return ((self.xx - cx) / max(rx, 0.5)) ** 2 + ((self.yy - cy) / max(ry, 0.5)) ** 2 <= 1.0


def make_street_scene(
    rng: np.random.Generator | int, *, height: int = 64, width: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic street scene and its dense labels.

    A vanishing-point street: sky with clouds; facades with windows; trees; a road
    wedge with dashed lane markings, flanked by tiled sidewalks; poles; cars on the
    road and people on the sidewalks, sized by their distance. Every region has
    low-frequency shading and pixel grain, so Gaussian noise blurs its boundaries.

    Parameters
    ----------
    rng : numpy.random.Generator or int
        Source of randomness, or a seed for ``numpy.random.default_rng``.
    height, width : int, default 64, 128
        Image size in pixels; both >= 16.

    Returns
    -------
    image : numpy.ndarray
        float32, shape (3, height, width), values in [0, 1].
    label : numpy.ndarray
        int64, shape (height, width), values in ``range(len(STREET_CLASSES))``.

    Raises
    ------
    ValueError
        If ``height`` or ``width`` is < 16.

    Examples
    --------
    >>> image, label = make_street_scene(0, height=32, width=64)
    >>> image.shape, image.dtype, label.shape, label.dtype
    ((3, 32, 64), dtype('float32'), (32, 64), dtype('int64'))
    >>> bool((make_street_scene(0, height=32, width=64)[0] == image).all())
    True
    """
    height = check_int(height, "height", low=16)
    width = check_int(width, "width", low=16)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    c = _Canvas(height, width, rng)
    H, W = float(height), float(width)
    yy, xx = c.yy, c.xx

    horizon = H * rng.uniform(0.36, 0.5)
    vx = W * rng.uniform(0.35, 0.65)

    # Sky: vertical gradient, blue or overcast, with a few soft clouds.
    if rng.random() < 0.75:
        top, bottom = _jitter(rng, (0.35, 0.55, 0.85), 0.08), _jitter(rng, (0.7, 0.82, 0.95), 0.05)
    else:
        top, bottom = _jitter(rng, (0.6, 0.63, 0.68), 0.06), _jitter(rng, (0.8, 0.8, 0.82), 0.05)
    t = np.clip(yy / horizon, 0.0, 1.0)[..., None]
    c.img[:] = top * (1 - t) + bottom * t
    c.img += 0.01 * c.grain[..., None]
    c.lab[:] = SKY
    for _ in range(rng.integers(0, 4)):
        m = c.ellipse(
            rng.uniform(0, W),
            rng.uniform(0, 0.6 * horizon),
            rng.uniform(6, 18) * W / 128,
            rng.uniform(2, 5) * H / 64,
        )
        c.paint(m, _jitter(rng, (0.93, 0.93, 0.95), 0.04), SKY, shade=0.03)

    # Ground geometry: facades end on a line through the vanishing point.
    kb = rng.uniform(0.12, 0.3)
    ground = yy > horizon + kb * np.abs(xx - vx)
    road_slope = rng.uniform(1.0, 1.8)
    road = (yy > horizon) & (np.abs(xx - vx) < (yy - horizon) * road_slope)

    # Buildings along both sides, with windows.
    facades = [
        (0.55, 0.5, 0.45),
        (0.6, 0.35, 0.28),
        (0.5, 0.5, 0.52),
        (0.75, 0.68, 0.55),
        (0.4, 0.38, 0.36),
    ]
    x = rng.uniform(-0.1, 0.0) * W
    while x < W:
        bw = rng.uniform(0.1, 0.3) * W
        if abs(x + bw / 2 - vx) < 0.08 * W and rng.random() < 0.7:
            x += bw * 0.5  # a gap at the end of the street: sky stays visible
            continue
        dist = abs(x + bw / 2 - vx) / W
        top_y = horizon - H * rng.uniform(0.12, 0.3) * (1.0 + 2.5 * dist)
        mask = c.rect(x, x + bw, top_y, H) & ~ground
        colour = _jitter(rng, facades[rng.integers(len(facades))], 0.07)
        c.paint(mask, colour, BUILDING, shade=0.08)
        wx, wy = rng.uniform(3, 6) * W / 128, rng.uniform(3, 6) * H / 64
        win = (((xx - x) % wx) < 0.5 * wx) & (((yy - top_y) % wy) < 0.5 * wy)
        c.paint(
            mask & win & (yy > top_y + 1.5),
            _jitter(rng, (0.2, 0.25, 0.32), 0.05),
            BUILDING,
            shade=0.1,
        )
        x += bw + (rng.uniform(0.0, 0.06) * W if rng.random() < 0.4 else 0.0)

    # Sidewalks (tiled) and the road (dark, with dashed centre line).
    side = ground & ~road
    c.paint(side, _jitter(rng, (0.72, 0.66, 0.68), 0.05), SIDEWALK, shade=0.04)
    tile = rng.uniform(3, 5) * W / 128
    joints = side & (((xx % tile) < 0.7) | (((yy * 1.7) % tile) < 0.7))
    c.paint(joints, _jitter(rng, (0.55, 0.5, 0.52), 0.04), SIDEWALK)
    curb = side & (np.abs(xx - vx) < (yy - horizon) * road_slope * 1.06)
    c.paint(curb, _jitter(rng, (0.85, 0.85, 0.85), 0.04), SIDEWALK)
    c.paint(road, _jitter(rng, (0.33, 0.32, 0.35), 0.05), ROAD, shade=0.1)
    depth = np.log(np.maximum(yy - horizon, 1e-3))
    lane_x = vx + (yy - horizon) * rng.uniform(-0.1, 0.1)
    dashes = (
        road & (np.abs(xx - lane_x) < 0.025 * (yy - horizon) + 0.3) & ((depth * 3.0) % 1.0 < 0.5)
    )
    c.paint(dashes, _jitter(rng, (0.9, 0.9, 0.85), 0.05), ROAD, shade=0.03)

    def ground_point(on_road: bool) -> tuple[float, float, float]:
        """A foot point on the road or a sidewalk and the perspective scale there."""
        for _ in range(50):
            py = rng.uniform(horizon + 0.12 * (H - horizon), H + 0.1 * (H - horizon))
            px = rng.uniform(-0.1 * W, 1.1 * W)
            half = (py - horizon) * road_slope
            is_road = abs(px - vx) < 0.8 * half
            is_side = 1.1 * half < abs(px - vx) < 1.8 * half
            if (on_road and is_road) or (not on_road and is_side):
                break
        return px, py, (py - horizon) / (H - horizon)

    objects: list[tuple[float, str, float, float, float]] = []
    for kind, count in (
        ("tree", rng.integers(0, 4)),
        ("pole", rng.integers(1, 4)),
        ("person", rng.integers(0, 5)),
        ("car", rng.integers(1, 4)),
    ):
        for _ in range(count):
            px, py, s = ground_point(kind == "car")
            objects.append((py, kind, px, py, s))
    objects.sort(key=lambda o: o[0])  # far (small y) first, near last

    for _, kind, px, py, s in objects:
        if kind == "tree":
            th = H * 0.9 * s + 4
            trunk = c.rect(px - max(0.6, 0.02 * W * s), px + max(0.6, 0.02 * W * s), py - th, py)
            c.paint(trunk, _jitter(rng, (0.35, 0.25, 0.15), 0.05), VEGETATION)
            crown = np.zeros_like(trunk)
            for _ in range(rng.integers(2, 5)):
                crown |= c.ellipse(
                    px + rng.uniform(-0.3, 0.3) * th * 0.5,
                    py - th + rng.uniform(-0.15, 0.15) * th,
                    rng.uniform(0.25, 0.45) * th,
                    rng.uniform(0.2, 0.35) * th,
                )
            leaf = _jitter(rng, (0.25, 0.45, 0.15), 0.06)
            c.paint(crown, leaf, VEGETATION, shade=0.15, grain=0.12)
        elif kind == "pole":
            ph = H * 1.1 * s + 6
            pw = max(0.55, 0.012 * W * s)
            c.paint(
                c.rect(px - pw, px + pw, py - ph, py), _jitter(rng, (0.45, 0.45, 0.48), 0.08), POLE
            )
            if rng.random() < 0.5:
                sw = 3 * pw + 1
                c.paint(
                    c.rect(px - sw, px + sw, py - ph, py - ph + 2 * sw),
                    _jitter(rng, (0.8, 0.75, 0.2), 0.1),
                    POLE,
                )
        elif kind == "person":
            ph = H * 0.55 * s + 4
            pw = 0.28 * ph
            legs = c.rect(px - pw / 2, px + pw / 2, py - 0.45 * ph, py) & (
                np.abs(xx - px) > 0.06 * pw
            )
            c.paint(legs, _jitter(rng, (0.2, 0.2, 0.3), 0.08), PERSON)
            body = c.ellipse(px, py - 0.62 * ph, pw * 0.6, 0.22 * ph)
            c.paint(body, rng.uniform(0.1, 0.9, size=3), PERSON, shade=0.08)
            head = c.ellipse(px, py - 0.9 * ph, pw * 0.35, 0.1 * ph)
            c.paint(head, _jitter(rng, (0.85, 0.65, 0.5), 0.1), PERSON)
        else:  # car
            cw = W * 0.38 * s + 6
            ch = 0.45 * cw
            body = c.rect(px - cw / 2, px + cw / 2, py - 0.6 * ch, py - 0.12 * ch)
            cabin = c.ellipse(px, py - 0.6 * ch, 0.33 * cw, 0.4 * ch) & (yy < py - 0.6 * ch)
            colour = rng.uniform(0.05, 0.95, size=3)
            c.paint(body | cabin, colour, CAR, shade=0.06)
            glass = c.ellipse(px, py - 0.62 * ch, 0.26 * cw, 0.3 * ch) & (yy < py - 0.66 * ch)
            c.paint(glass, _jitter(rng, (0.25, 0.3, 0.38), 0.05), CAR)
            for wxo in (-0.3, 0.3):
                wheel = c.ellipse(px + wxo * cw, py - 0.14 * ch, 0.12 * cw, 0.14 * ch)
                c.paint(wheel, _jitter(rng, (0.08, 0.08, 0.08), 0.03), CAR)
            lights = c.rect(px - 0.45 * cw, px - 0.33 * cw, py - 0.5 * ch, py - 0.38 * ch)
            lights |= c.rect(px + 0.33 * cw, px + 0.45 * cw, py - 0.5 * ch, py - 0.38 * ch)
            c.paint(lights, _jitter(rng, (0.95, 0.85, 0.5), 0.05), CAR)

    image = np.clip(c.img, 0.0, 1.0).astype(np.float32).transpose(2, 0, 1)
    return np.ascontiguousarray(image), c.lab


class SyntheticStreets(torch.utils.data.Dataset):
    """Built-in street-scene segmentation data, generated on the fly.

    Item ``i`` of split ``split`` is drawn by :func:`make_street_scene` from the
    generator ``numpy.random.default_rng([seed, split_index, i])``: the same seed gives
    the same item on every machine, and the splits never share a scene.

    Parameters
    ----------
    length : int, default 100
        Number of items; >= 1.
    split : {'train', 'val', 'test'}, default 'test'
        Which seed stream to draw from.
    seed : int, default 0
        Base seed.
    height, width : int, default 64, 128
        Image size in pixels; both >= 16.

    Attributes
    ----------
    classes : tuple of str
        ``STREET_CLASSES``; ``num_classes`` is its length (8).
    palette : numpy.ndarray
        ``STREET_PALETTE``, uint8 (8, 3).

    Notes
    -----
    **Cost.** About a millisecond per 64 x 128 scene on one CPU core; nothing is
    cached, so wrap the data set in a list when you read it many times.

    Examples
    --------
    >>> ds = SyntheticStreets(length=4, split="val", seed=1, height=32, width=64)
    >>> image, label = ds[0]
    >>> image.shape, label.shape, len(ds), ds.num_classes
    (torch.Size([3, 32, 64]), torch.Size([32, 64]), 4, 8)
    >>> bool((ds[0].image == image).all())
    True
    """

    classes = STREET_CLASSES
    palette = STREET_PALETTE
    num_classes = len(STREET_CLASSES)

    def __init__(
        self,
        length: int = 100,
        *,
        split: str = "test",
        seed: int = 0,
        height: int = 64,
        width: int = 128,
    ) -> None:
        self.length = check_int(length, "length", low=1)
        self.split = check_choice(split, "split", SPLITS)
        self.seed = check_int(seed, "seed", low=0)
        self.height = check_int(height, "height", low=16)
        self.width = check_int(width, "width", low=16)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> ImageSample:
        index = check_index(index, self.length)
        rng = item_rng(self.seed, SPLITS.index(self.split), index)
        image, label = make_street_scene(rng, height=self.height, width=self.width)
        return ImageSample(torch.from_numpy(image), torch.from_numpy(label))

    def __repr__(self) -> str:
        return (
            f"SyntheticStreets(length={self.length}, split={self.split!r}, seed={self.seed}, "
            f"height={self.height}, width={self.width})"
        )
