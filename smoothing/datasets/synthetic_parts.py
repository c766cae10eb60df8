"""Synthetic part-labelled objects: a built-in point-cloud part-segmentation data set.

Objects are assembled from surface primitives (boxes, cylinders, frusta, spheres,
tori) whose points carry exact outward normals. Part labels are the *global*
ShapeNet part ids of the category (Mug = 36 body + 37 handle, Table = 47-49, ...),
so a model trained here has the 50 outputs of a ShapeNet part model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from smoothing._sampling import check_int
from smoothing.datasets._common import (
    SPLITS,
    PointCloudSample,
    check_choice,
    check_index,
    item_rng,
    normalize_point_cloud,
)
from smoothing.datasets.shapenet import (
    NUM_SHAPENET_PARTS,
    SHAPENET_CATEGORIES,
    category_index,
    category_parts,
)

__all__ = ["SYNTHETIC_PART_CATEGORIES", "SyntheticParts", "make_part_object"]

_Surface = tuple[np.ndarray, np.ndarray]  # points (n, 3), normals (n, 3)
_Sampler = Callable[[int, np.random.Generator], _Surface]


# --------------------------------------------------------------------- primitives
# Each primitive is (area, sampler, part offset); y is up, as in ShapeNet.


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _placed(sampler: _Sampler, rot: np.ndarray, shift: Sequence[float]) -> _Sampler:
    def sample(n: int, rng: np.random.Generator) -> _Surface:
        p, q = sampler(n, rng)
        return p @ rot.T + np.asarray(shift, dtype=float), q @ rot.T

    return sample


def _box(size: Sequence[float]) -> tuple[float, _Sampler]:
    """Surface of an axis-aligned box of extents ``size`` centred at the origin."""
    sx, sy, sz = size
    areas = np.array([sy * sz, sy * sz, sx * sz, sx * sz, sx * sy, sx * sy])

    def sample(n: int, rng: np.random.Generator) -> _Surface:
        face = rng.choice(6, size=n, p=areas / areas.sum())
        p = rng.uniform(-0.5, 0.5, size=(n, 3)) * np.array(size)
        axis, sign = face // 2, np.where(face % 2 == 0, 1.0, -1.0)
        p[np.arange(n), axis] = sign * np.array(size)[axis] / 2
        q = np.zeros((n, 3))
        q[np.arange(n), axis] = sign
        return p, q

    return float(2 * (sx * sy + sy * sz + sx * sz)), sample


def _frustum(
    r0: float, r1: float, h: float, *, bottom: bool = True, top: bool = True
) -> tuple[float, _Sampler]:
    """A (truncated) cone along +y from radius ``r0`` at y=0 to ``r1`` at y=h, with caps."""
    slant = np.hypot(h, r1 - r0)
    areas = np.array([np.pi * (r0 + r1) * slant, np.pi * r0**2 * bottom, np.pi * r1**2 * top])

    def sample(n: int, rng: np.random.Generator) -> _Surface:
        which = rng.choice(3, size=n, p=areas / areas.sum())
        theta = rng.uniform(0, 2 * np.pi, size=n)
        u = rng.random(n)
        # side: density proportional to the radius r(t) = r0 + (r1 - r0) t
        if abs(r1 - r0) > 1e-12:
            t = (np.sqrt(r0**2 + u * (r1**2 - r0**2)) - r0) / (r1 - r0)
        else:
            t = u
        r = np.where(which == 0, r0 + (r1 - r0) * t, np.where(which == 1, r0, r1) * np.sqrt(u))
        y = np.where(which == 0, t * h, np.where(which == 1, 0.0, h))
        p = np.stack([r * np.cos(theta), y, r * np.sin(theta)], axis=1)
        side = np.stack([h * np.cos(theta), np.full(n, r0 - r1), h * np.sin(theta)], axis=1)
        side /= np.linalg.norm(side, axis=1, keepdims=True)
        cap = np.zeros((n, 3))
        cap[:, 1] = np.where(which == 1, -1.0, 1.0)
        return p, np.where((which == 0)[:, None], side, cap)

    return float(areas.sum()), sample


def _sphere(r: float, *, min_y: float = -1.0) -> tuple[float, _Sampler]:
    """Sphere of radius ``r`` at the origin, keeping the cap with y / r >= ``min_y``."""

    def sample(n: int, rng: np.random.Generator) -> _Surface:
        y = rng.uniform(min_y, 1.0, size=n)  # Archimedes: uniform in height = uniform in area
        theta = rng.uniform(0, 2 * np.pi, size=n)
        s = np.sqrt(1 - y**2)
        q = np.stack([s * np.cos(theta), y, s * np.sin(theta)], axis=1)
        return r * q, q

    return float(2 * np.pi * r * r * (1 - min_y)), sample


def _torus_arc(big: float, small: float, arc: float) -> tuple[float, _Sampler]:
    """Torus arc in the x-y plane: ring radius ``big``, tube ``small``, angles in +-arc/2."""

    def sample(n: int, rng: np.random.Generator) -> _Surface:
        out_p, out_q, got = [], [], 0
        while got < n:  # rejection: area density is proportional to big + small cos(phi)
            m = 2 * (n - got) + 8
            a = rng.uniform(-arc / 2, arc / 2, size=m)
            phi = rng.uniform(0, 2 * np.pi, size=m)
            ok = rng.random(m) * (big + small) < big + small * np.cos(phi)
            a, phi = a[ok], phi[ok]
            q = np.stack([np.cos(phi) * np.cos(a), np.cos(phi) * np.sin(a), np.sin(phi)], axis=1)
            ring = np.stack([big * np.cos(a), big * np.sin(a), np.zeros_like(a)], axis=1)
            out_p.append(ring + small * q)
            out_q.append(q)
            got += len(a)
        return np.concatenate(out_p)[:n], np.concatenate(out_q)[:n]

    return float(2 * np.pi * small * big * arc), sample


# ------------------------------------------------------------------------ objects
# Each builder returns a list of (area, sampler, local part 0..k-1).

_Parts = list[tuple[float, _Sampler, int]]


def _add(
    parts: _Parts,
    prim: tuple[float, _Sampler],
    part: int,
    *,
    rot: np.ndarray | None = None,
    at: Sequence[float] = (0, 0, 0),
) -> None:
    area, sampler = prim
    parts.append((area, _placed(sampler, np.eye(3) if rot is None else rot, at), part))


def _table(rng: np.random.Generator) -> _Parts:
    w, d, h = rng.uniform(1.2, 2.0), rng.uniform(0.7, 1.2), rng.uniform(0.6, 0.9)
    t, leg = rng.uniform(0.04, 0.1), rng.uniform(0.05, 0.1)
    parts: _Parts = []
    _add(parts, _box((w, t, d)), 0, at=(0, h, 0))
    for sx in (-1, 1):
        for sz in (-1, 1):
            _add(parts, _box((leg, h, leg)), 1, at=(sx * (w / 2 - leg), h / 2, sz * (d / 2 - leg)))
    ys = rng.uniform(0.15, 0.4) * h
    if rng.random() < 0.5:  # a shelf
        _add(parts, _box((w - 2 * leg, 0.03, d - 2 * leg)), 2, at=(0, ys, 0))
    else:  # stretchers
        for sz in (-1, 1):
            _add(parts, _box((w - 2 * leg, 0.05, 0.04)), 2, at=(0, ys, sz * (d / 2 - leg)))
    return parts


def _chair(rng: np.random.Generator) -> _Parts:
    w, d = rng.uniform(0.8, 1.1), rng.uniform(0.8, 1.1)
    hs, hb, leg = rng.uniform(0.8, 1.0), rng.uniform(0.7, 1.1), rng.uniform(0.06, 0.1)
    parts: _Parts = []
    _add(
        parts,
        _box((w, hb, 0.08)),
        0,
        rot=_rot("x", rng.uniform(-0.25, 0.0)),
        at=(0, hs + hb / 2, -d / 2),
    )
    _add(parts, _box((w, 0.1, d)), 1, at=(0, hs, 0))
    for sx in (-1, 1):
        for sz in (-1, 1):
            _add(
                parts, _box((leg, hs, leg)), 2, at=(sx * (w / 2 - leg), hs / 2, sz * (d / 2 - leg))
            )
    if rng.random() < 0.5:
        for sx in (-1, 1):
            _add(parts, _box((0.08, 0.06, d)), 3, at=(sx * (w / 2 + 0.04), hs + 0.3, 0))
            _add(
                parts, _box((0.05, 0.3, 0.05)), 3, at=(sx * (w / 2 + 0.04), hs + 0.15, d / 2 - 0.05)
            )
    return parts


def _lamp(rng: np.random.Generator) -> _Parts:
    rb, h = rng.uniform(0.3, 0.5), rng.uniform(1.2, 2.0)
    r0, r1, hs = rng.uniform(0.35, 0.6), rng.uniform(0.15, 0.3), rng.uniform(0.35, 0.6)
    parts: _Parts = []
    _add(parts, _frustum(rb, rb * 0.8, 0.12), 0)
    _add(parts, _frustum(0.04, 0.04, h, bottom=False, top=False), 1, at=(0, 0.12, 0))
    _add(parts, _frustum(r0, r1, hs, bottom=False, top=False), 2, at=(0, h - 0.1, 0))
    _add(parts, _sphere(rng.uniform(0.08, 0.14)), 3, at=(0, h, 0))
    return parts


def _mug(rng: np.random.Generator) -> _Parts:
    r, h = rng.uniform(0.35, 0.5), rng.uniform(0.8, 1.2)
    parts: _Parts = []
    _add(parts, _frustum(r, r * rng.uniform(1.0, 1.15), h, top=False), 0)
    big = rng.uniform(0.25, 0.35) * h
    _add(parts, _torus_arc(big, rng.uniform(0.04, 0.07), np.pi), 1, at=(r, h / 2, 0))
    return parts


def _bag(rng: np.random.Generator) -> _Parts:
    w, h, d = rng.uniform(1.0, 1.5), rng.uniform(0.8, 1.2), rng.uniform(0.3, 0.5)
    parts: _Parts = []
    _add(parts, _box((w, h, d)), 0, at=(0, h / 2, 0))
    big = rng.uniform(0.2, 0.35) * w
    _add(parts, _torus_arc(big, 0.04, np.pi), 1, rot=_rot("z", np.pi / 2), at=(0, h, 0))
    return parts


def _airplane(rng: np.random.Generator) -> _Parts:
    length, r = rng.uniform(2.5, 3.5), rng.uniform(0.14, 0.22)
    span, chord = rng.uniform(2.2, 3.2), rng.uniform(0.4, 0.7)
    to_z = _rot("x", np.pi / 2)  # cylinders along +z
    parts: _Parts = []
    _add(parts, _frustum(r, r, length), 0, rot=to_z, at=(0, 0, -length / 2))
    _add(parts, _sphere(r, min_y=0.0), 0, rot=to_z, at=(0, 0, length / 2))
    _add(parts, _box((span, 0.05, chord)), 1, at=(0, 0, rng.uniform(-0.1, 0.3)))
    tz = -length / 2 + 0.2
    _add(parts, _box((0.05, 0.5, 0.35)), 2, at=(0, r + 0.25, tz))
    _add(parts, _box((0.9, 0.04, 0.25)), 2, at=(0, 0.05, tz))
    for sx in (-1, 1) if rng.random() < 0.5 else (-1.4, -0.7, 0.7, 1.4):
        _add(parts, _frustum(0.1, 0.1, 0.45), 3, rot=to_z, at=(sx * span / 4, -0.15, -0.1))
    return parts


def _rocket(rng: np.random.Generator) -> _Parts:
    r, h = rng.uniform(0.15, 0.25), rng.uniform(1.6, 2.4)
    parts: _Parts = []
    _add(parts, _frustum(r, r, h, top=False), 0)
    nfin = int(rng.integers(3, 5))
    for k in range(nfin):
        a = 2 * np.pi * k / nfin
        _add(
            parts,
            _box((0.35, 0.5, 0.03)),
            1,
            rot=_rot("y", a),
            at=(np.cos(a) * (r + 0.15), 0.25, -np.sin(a) * (r + 0.15)),
        )
    _add(parts, _frustum(r, 0.0, rng.uniform(0.4, 0.7), top=False, bottom=False), 2, at=(0, h, 0))
    return parts


def _laptop(rng: np.random.Generator) -> _Parts:
    w, d = rng.uniform(1.2, 1.6), rng.uniform(0.8, 1.1)
    parts: _Parts = []
    _add(parts, _box((w, 0.05, d)), 0, at=(0, 0.025, 0))
    tilt = rng.uniform(0.1, 0.5)
    rot = _rot("x", -tilt)
    centre = np.array([0, 0.05, -d / 2]) + rot @ np.array([0, d / 2, 0])
    _add(parts, _box((w, d, 0.03)), 1, rot=rot, at=centre)
    return parts


def _knife(rng: np.random.Generator) -> _Parts:
    lb, lh = rng.uniform(1.2, 1.8), rng.uniform(0.6, 0.9)
    to_x = _rot("z", -np.pi / 2)  # cylinder axis along +x
    parts: _Parts = []
    _add(parts, _box((lb, rng.uniform(0.15, 0.25), 0.02)), 0, at=(lb / 2, 0, 0))
    _add(parts, _frustum(0.07, 0.07, lh), 1, rot=to_x, at=(-lh, 0, 0))
    return parts


def _guitar(rng: np.random.Generator) -> _Parts:
    lb, ln = rng.uniform(0.9, 1.2), rng.uniform(1.0, 1.3)
    to_z = _rot("x", np.pi / 2)  # flat cylinders: axis along z
    parts: _Parts = []
    _add(parts, _box((0.25, 0.35, 0.06)), 0, at=(0, lb + ln + 0.15, 0))
    _add(parts, _box((0.12, ln, 0.06)), 1, at=(0, lb + ln / 2, 0))
    _add(parts, _frustum(0.45, 0.45, 0.2), 2, rot=to_z, at=(0, 0.45, -0.1))
    _add(parts, _frustum(0.33, 0.33, 0.2), 2, rot=to_z, at=(0, lb - 0.2, -0.1))
    return parts


def _skateboard(rng: np.random.Generator) -> _Parts:
    length, w = rng.uniform(2.0, 2.6), rng.uniform(0.5, 0.7)
    to_x = _rot("z", -np.pi / 2)
    parts: _Parts = []
    _add(parts, _box((w, 0.05, length)), 0, at=(0, 0.3, 0))
    for sz in (-1, 1):
        z = sz * (length / 2 - 0.35)
        _add(parts, _box((w * 0.7, 0.1, 0.12)), 2, at=(0, 0.22, z))
        for sx in (-1, 1):
            _add(
                parts,
                _frustum(0.09, 0.09, 0.1),
                1,
                rot=to_x,
                at=(sx * w * 0.35 + (0 if sx < 0 else -0.1), 0.1, z),
            )
    return parts


def _cap(rng: np.random.Generator) -> _Parts:
    r = rng.uniform(0.5, 0.7)
    parts: _Parts = []
    _add(parts, _sphere(r, min_y=0.0), 0)
    visor_len = rng.uniform(0.4, 0.6)
    _add(
        parts,
        _box((1.4 * r, 0.03, visor_len)),
        1,
        rot=_rot("x", rng.uniform(0.0, 0.25)),
        at=(0, 0.02, r + visor_len / 2 - 0.05),
    )
    return parts


_BUILDERS: dict[str, Callable[[np.random.Generator], _Parts]] = {
    "Airplane": _airplane,
    "Bag": _bag,
    "Cap": _cap,
    "Chair": _chair,
    "Guitar": _guitar,
    "Knife": _knife,
    "Lamp": _lamp,
    "Laptop": _laptop,
    "Mug": _mug,
    "Rocket": _rocket,
    "Skateboard": _skateboard,
    "Table": _table,
}

#: ShapeNet categories that the synthetic generator can build (names).
SYNTHETIC_PART_CATEGORIES: tuple[str, ...] = tuple(_BUILDERS)


def make_part_object(
    category: int | str, rng: np.random.Generator | int, *, num_points: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Sample one synthetic object of ``category`` as a labelled point cloud.

    The object's dimensions are random; points are spread over its surfaces by
    area, then the cloud is centred and scaled to the unit ball.

    Parameters
    ----------
    category : str or int
        A name in ``SYNTHETIC_PART_CATEGORIES`` (or its ShapeNet category index).
    rng : numpy.random.Generator or int
        Source of randomness, or a seed.
    num_points : int, default 2048
        Number of points; >= 1.

    Returns
    -------
    points : numpy.ndarray
        float32 (num_points, 6): positions (centred, max norm 1) and unit normals.
    labels : numpy.ndarray
        int64 (num_points,): global ShapeNet part ids of the category.

    Raises
    ------
    ValueError
        If ``category`` is unknown or has no synthetic builder.

    Examples
    --------
    >>> pts, parts = make_part_object("Mug", 0, num_points=256)
    >>> pts.shape, sorted(set(parts.tolist()))
    ((256, 6), [36, 37])
    >>> round(float(abs(pts[:, :3].mean(axis=0)).max()), 6), round(float(
    ...     (pts[:, :3] ** 2).sum(axis=1).max()), 6)
    (0.0, 1.0)
    """
    name = SHAPENET_CATEGORIES[category_index(category)]
    if name not in _BUILDERS:
        raise ValueError(
            f"`category` must be one of {list(SYNTHETIC_PART_CATEGORIES)}; got {category!r}."
        )
    num_points = check_int(num_points, "num_points", low=1)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    prims = _BUILDERS[name](rng)
    areas = np.array([a for a, _, _ in prims])
    counts = rng.multinomial(num_points, areas / areas.sum())
    offset = category_parts(name)[0]
    pts, nrm, lab = [], [], []
    for (_, sampler, part), k in zip(prims, counts, strict=True):
        if k:
            p, q = sampler(int(k), rng)
            pts.append(p)
            nrm.append(q)
            lab.append(np.full(k, offset + part, dtype=np.int64))
    order = rng.permutation(num_points)
    cloud = np.concatenate([np.concatenate(pts), np.concatenate(nrm)], axis=1)[order]
    return normalize_point_cloud(cloud), np.concatenate(lab)[order]


class SyntheticParts(torch.utils.data.Dataset):
    """Built-in part-segmentation point clouds, generated on the fly.

    Item ``i`` has category ``categories[i % len(categories)]`` and is drawn by
    :func:`make_part_object` from ``numpy.random.default_rng([seed, split_index, i])``.

    Parameters
    ----------
    length : int, default 96
        Number of items; >= 1.
    split : {'train', 'val', 'test'}, default 'test'
        Which seed stream to draw from.
    seed : int, default 0
        Base seed.
    num_points : int, default 2048
        Points per cloud.
    normals : bool, default True
        Return (N, 6) rows ``[xyz, normal]``; ``False`` returns (N, 3).
    categories : sequence of str or int, optional
        Categories to cycle through; default ``SYNTHETIC_PART_CATEGORIES``.

    Notes
    -----
    Items are :class:`PointCloudSample` ``(points, labels, category)`` exactly as
    :class:`ShapeNetPart` returns them: global part ids in [0, 50) and the ShapeNet
    category index. **Cost.** About a millisecond per 2048-point object.

    Examples
    --------
    >>> ds = SyntheticParts(length=3, num_points=512, categories=["Mug", "Table"])
    >>> points, labels, category = ds[1]
    >>> points.shape, category, sorted(set(labels.tolist()))
    (torch.Size([512, 6]), 15, [47, 48, 49])
    """

    num_classes = NUM_SHAPENET_PARTS

    def __init__(
        self,
        length: int = 96,
        *,
        split: str = "test",
        seed: int = 0,
        num_points: int = 2048,
        normals: bool = True,
        categories: Sequence[str | int] | None = None,
    ) -> None:
        self.length = check_int(length, "length", low=1)
        self.split = check_choice(split, "split", SPLITS)
        self.seed = check_int(seed, "seed", low=0)
        self.num_points = check_int(num_points, "num_points", low=1)
        self.normals = bool(normals)
        cats = SYNTHETIC_PART_CATEGORIES if categories is None else tuple(categories)
        if not cats:
            raise ValueError("`categories` must name at least one category; got an empty list.")
        self.categories: tuple[int, ...] = tuple(category_index(c) for c in cats)
        for c in self.categories:
            if SHAPENET_CATEGORIES[c] not in _BUILDERS:
                raise ValueError(
                    f"`categories` must be drawn from {list(SYNTHETIC_PART_CATEGORIES)}; "
                    f"got {SHAPENET_CATEGORIES[c]!r}."
                )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> PointCloudSample:
        index = check_index(index, self.length)
        cat = self.categories[index % len(self.categories)]
        rng = item_rng(self.seed, SPLITS.index(self.split), index)
        pts, labels = make_part_object(cat, rng, num_points=self.num_points)
        if not self.normals:
            pts = np.ascontiguousarray(pts[:, :3])
        return PointCloudSample(torch.from_numpy(pts), torch.from_numpy(labels), cat)

    def __repr__(self) -> str:
        return (
            f"SyntheticParts(length={self.length}, split={self.split!r}, seed={self.seed}, "
            f"num_points={self.num_points}, categories={len(self.categories)})"
        )
