"""Options of a certification run: :class:`RunConfig`, its grid and its noise seeds.

Pure validation and planning: nothing here loads a model, opens a data set or touches
a run folder. :func:`plan_grid` checks each grid point against the smallest ``n`` that
can certify; :func:`noise_seed` derives the noise of one (input, sampling) from the
run's seed alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import samplers
from smoothing._sampling import check_int
from smoothing.segcertify import CERTIFYING_CORRECTIONS

__all__ = [
    "DATASETS",
    "MAX_IMAGE_PIXELS",
    "SAMPLERS",
    "GridPoint",
    "ImpossibleGridPointWarning",
    "RunConfig",
    "noise_seed",
    "plan_grid",
]

#: Largest ``image_size`` (height x width) a run accepts: 2**24 pixels, 16x a Cityscapes
#: frame; one noisy batch of 50 such RGB images already takes 10 GB in float32.
MAX_IMAGE_PIXELS = 2**24
#: Options that may differ between a run and its resume (they do not change results).

# --------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class DatasetInfo:
    kind: str  # 'image' or 'points'
    synthetic: bool
    default_split: str
    default_model: str | None
    default_num_inputs: int | None


#: Data sets a run can read: name -> input kind, built in?, default split, model, size.
DATASETS: dict[str, DatasetInfo] = {
    "streets": DatasetInfo("image", True, "test", "streets-unet-sigma0.25", 100),
    "parts": DatasetInfo("points", True, "test", "parts-pointnet-normals-sigma0.25", 96),
    "cityscapes": DatasetInfo("image", False, "val", None, None),
    "pascal-context": DatasetInfo("image", False, "val", None, None),
    "shapenet-part": DatasetInfo("points", False, "test", None, None),
}

#: Sampler names -> (class, parameter that ``sigma`` sets, point clouds only?).
SAMPLERS: dict[str, tuple[type[samplers.Sampler], str, bool]] = {
    "gaussian": (samplers.GaussianL2, "sigma", False),
    "laplace": (samplers.LaplaceL1, "scale", False),
    "rotation-z": (samplers.RotationZ, "sigma", True),
    "rotation-3d": (samplers.Rotation3D, "sigma", True),
}

#: Columns of ``summary.csv``, in order.

# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RunConfig:
    """Every option of a certification run that can change its results.

    ``None`` means "the default for this data set / model"; :func:`prepare` fills in
    the resolved values (they are what ``config.json`` records).

    Parameters
    ----------
    dataset : {'streets', 'parts', 'cityscapes', 'pascal-context', 'shapenet-part'}
        The first two are built in; the others are read from ``data_root``.
    model : str, optional
        A built-in model (:func:`smoothing.models.list_models`); default:
        ``'streets-unet-sigma0.25'`` for streets, ``'parts-pointnet-normals-sigma0.25'``
        for parts.
    checkpoint, arch : str, optional
        A user's checkpoint (instead of ``model``) and its architecture
        (``'unet'``/``'pointnet'``; needed for a plain state_dict). A TorchScript
        file or an exported program (:mod:`smoothing.models.user`) needs no ``arch``.
    model_factory : str, optional
        ``'module:function'`` returning the user's own model
        (:func:`smoothing.models.user.import_factory`); ``checkpoint`` then holds
        its weights (optional).
    model_kwargs : dict, optional
        JSON-like keyword arguments of ``model_factory``.
    data_root, split : str, optional
        Folder of a real data set; split (default ``'val'``, ``'test'`` for
        ShapeNet and the synthetic sets).
    image_size : (int, int), optional
        (height, width): the synthetic scenes' size (default (64, 128)); resizes the
        images of Cityscapes / Pascal Context (default: native size).
    num_points : int, default 2048
        Points per cloud (parts, shapenet-part).
    data_seed : int, default 0
        Seed of the synthetic data and of ShapeNet's resampling.
    sampler : {'gaussian', 'laplace', 'rotation-z', 'rotation-3d'}, default 'gaussian'
        Smoothing distribution; ``sigma`` is its parameter (the Laplace scale).
    sigma : tuple of float, optional
        Noise levels of the grid; default: the model's training sigma (Gaussian).
    n0 : int, default 10
        Samples for guessing the classes.
    n, tau : tuple
        Sample sizes and thresholds of the grid.
    alpha : float, default 0.001
        FWER of every certificate.
    correction : str, default 'holm'
        One of :data:`smoothing.CERTIFYING_CORRECTIONS`; ``k`` for the k-FWER ones.
    batch_size : int, default 50
        Noisy copies per forward pass (part of the noise stream, hence compared).
    num_inputs, start, stride : int
        Inputs ``start, start + stride, ...``; ``num_inputs`` of them (default: 100
        for streets, 96 for parts, all for the real data sets). A resume may raise
        ``num_inputs`` when nothing else changed: only the new inputs are certified.
    seed : int, default 0
        Base seed of the noise.
    axis : {'x', 'y', 'z'}, optional
        Rotation axis of the ``'rotation-z'`` sampler (default ``'z'``); not allowed
        with the other samplers.
    skip_impossible : bool, default False
        Leave out the grid points whose ``n`` is too small to certify any component
        (:func:`multitest.min_certifying_samples`); otherwise they run with a warning.
    trust_program : bool, default False
        Allow a TorchScript or exported-program ``checkpoint``: loading one runs code
        from the file (:func:`smoothing.models.user.load_user_model`). Not recorded as
        an option that changes results: give it again on every resume.
    follow_symlinks : bool, default False
        Let a real data set's files resolve outside ``data_root`` through symbolic
        links (refused by default).
    """

    dataset: str = "streets"
    model: str | None = None
    checkpoint: str | None = None
    arch: str | None = None
    model_factory: str | None = None
    model_kwargs: dict[str, Any] | None = None
    data_root: str | None = None
    split: str | None = None
    image_size: tuple[int, int] | None = None
    num_points: int = 2048
    data_seed: int = 0
    sampler: str = "gaussian"
    sigma: tuple[float, ...] | None = None
    n0: int = 10
    n: tuple[int, ...] = (100,)
    tau: tuple[float, ...] = (0.75,)
    alpha: float = 0.001
    correction: str = "holm"
    k: int = 1
    batch_size: int = 50
    num_inputs: int | None = None
    start: int = 0
    stride: int = 1
    seed: int = 0
    axis: str | None = None
    skip_impossible: bool = False
    trust_program: bool = False
    follow_symlinks: bool = False

    def __post_init__(self) -> None:
        # a scalar is a one-point grid; lists become tuples (hashable, comparable)
        for name in ("sigma", "n", "tau", "image_size"):
            value = getattr(self, name)
            if isinstance(value, int | float) and name != "image_size":
                object.__setattr__(self, name, (value,))
            elif isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))


def fmt_value(value: float) -> str:
    return format(float(value), ".10g")


@dataclass(frozen=True)
class GridPoint:
    """One (sigma, tau, n) point of a run's grid.

    Examples
    --------
    >>> GridPoint(0.25, 0.75, 100).key
    'sigma0.25-tau0.75-n100'
    """

    sigma: float
    tau: float
    n: int

    @property
    def key(self) -> str:
        """The grid point's name in records and file names."""
        return f"sigma{fmt_value(self.sigma)}-tau{fmt_value(self.tau)}-n{self.n}"

    @property
    def sample_key(self) -> str:
        """The name of its sampling: grid points that differ only in ``tau`` share it.

        Examples
        --------
        >>> GridPoint(0.25, 0.75, 100).sample_key == GridPoint(0.25, 0.9, 100).sample_key
        True
        """
        return f"sigma{fmt_value(self.sigma)}-n{self.n}"


def noise_seed(seed: int, index: int, key: str) -> int:
    """The seed of the noise of input ``index`` for the sampling ``key``.

    A run passes :attr:`GridPoint.sample_key`: the grid points that differ only in
    ``tau`` share one sampling. Derived with :class:`numpy.random.SeedSequence` from
    ``seed``, ``index`` and a SHA-256 of ``key``: it depends on nothing else (not the
    order of the inputs, a resume or the rest of the grid).

    Examples
    --------
    >>> noise_seed(0, 3, "sigma0.25-tau0.75-n100") == noise_seed(0, 3, "sigma0.25-tau0.75-n100")
    True
    >>> noise_seed(0, 3, "sigma0.25-tau0.75-n100") == noise_seed(0, 4, "sigma0.25-tau0.75-n100")
    False
    """
    digest = hashlib.sha256(key.encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    state = np.random.SeedSequence([int(seed), int(index), *words]).generate_state(1, np.uint64)
    return int(state[0])


def _check_list(values: object, name: str) -> tuple:
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ValueError(f"`{name}` must be a non-empty list; got {values!r}.")
    seen = set()
    for v in values:
        if v in seen:
            raise ValueError(f"`{name}` lists {v!r} twice.")
        seen.add(v)
    return tuple(values)


def _check_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"`{name}` must be a real number; got {value!r}.")
    return float(value)


def check_config(cfg: RunConfig, custom: DatasetInfo | None = None) -> None:
    """Range checks of the scalar options (raise ValueError/TypeError naming the option);
    ``custom``: the description of a data set object (:func:`custom_data`)."""
    if custom is None and cfg.dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {', '.join(DATASETS)}; got {cfg.dataset!r}.")
    if cfg.sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {', '.join(SAMPLERS)}; got {cfg.sampler!r}.")
    if cfg.correction not in CERTIFYING_CORRECTIONS:
        raise ValueError(
            f"`correction` must be one of {', '.join(sorted(CERTIFYING_CORRECTIONS))} (those "
            f"that certify under arbitrary dependence); got {cfg.correction!r}."
        )
    for name in ("n0", "k", "batch_size", "num_points", "stride"):
        check_int(getattr(cfg, name), name, low=1)
    for name in ("start", "seed", "data_seed"):
        check_int(getattr(cfg, name), name, low=0)
    if cfg.num_inputs is not None:
        check_int(cfg.num_inputs, "num_inputs", low=1)
    alpha = _check_real(cfg.alpha, "alpha")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must lie in (0, 1); got {cfg.alpha!r}.")
    for n in _check_list(cfg.n, "n"):
        check_int(n, "n", low=1)
    for tau in _check_list(cfg.tau, "tau"):
        if not 0.5 <= _check_real(tau, "tau") < 1.0:
            raise ValueError(f"`tau` must lie in [0.5, 1); got {tau!r}.")
    if cfg.sigma is not None:
        for s in _check_list(cfg.sigma, "sigma"):
            if not (math.isfinite(_check_real(s, "sigma")) and s > 0):
                raise ValueError(f"`sigma` must be finite and > 0; got {s!r}.")
    info = custom or DATASETS[cfg.dataset]
    if custom is not None and cfg.data_root is not None:
        raise ValueError("`data_root` is not used with a data set object.")
    if info.synthetic and cfg.data_root is not None:
        raise ValueError(f"`data_root` is not used by the built-in dataset {cfg.dataset!r}.")
    if custom is None and not info.synthetic and cfg.data_root is None:
        raise ValueError(f"dataset {cfg.dataset!r} needs `data_root` (its folder).")
    _check_axis(cfg)
    if cfg.image_size is not None:
        _check_image_size(cfg.image_size)


def _check_image_size(size: object) -> None:
    """Two integers >= 1 with at most :data:`MAX_IMAGE_PIXELS` pixels, checked before
    anything is allocated."""
    if (not isinstance(size, Sequence) or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in size)
            or min(size) < 1):
        raise ValueError(f"`image_size` must be two integers >= 1; got {size!r}.")
    if int(size[0]) * int(size[1]) > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"`image_size` {int(size[0])} x {int(size[1])} has {int(size[0]) * int(size[1])} "
            f"pixels; at most {MAX_IMAGE_PIXELS} (2**24, e.g. 4096 x 4096) are supported."
        )


def _check_axis(cfg: RunConfig) -> None:
    """``axis`` is one of x/y/z and only given with the 'rotation-z' sampler."""
    if cfg.axis is None:
        return
    if cfg.axis not in ("x", "y", "z"):
        raise ValueError(f"`axis` must be one of x, y, z; got {cfg.axis!r}.")
    if cfg.sampler != "rotation-z":
        raise ValueError(f"`axis` applies to the 'rotation-z' sampler only; got sampler "
                         f"{cfg.sampler!r}.")




class ImpossibleGridPointWarning(UserWarning):
    """A grid point whose ``n`` is too small to certify any component (see :func:`plan_grid`)."""



def plan_grid(cfg: RunConfig, num_components: int) -> list[GridPoint]:
    """The grid of ``cfg``, checked against the smallest ``n`` that can certify.

    A grid point whose ``n`` is below :func:`multitest.min_certifying_samples` at
    (``num_components``, tau, alpha, correction, k) certifies no component whatever
    the model: it gets a warning naming the ``n`` needed, or is left out when
    ``cfg.skip_impossible``.

    Parameters
    ----------
    cfg : RunConfig
        Options with ``sigma`` resolved.
    num_components : int
        Components (pixels or points) of an input: those of the first selected one.

    Returns
    -------
    list of GridPoint
        ``sigma`` slowest, then ``tau``, then ``n``.

    Raises
    ------
    ValueError
        If ``cfg.skip_impossible`` leaves no grid point.

    Examples
    --------
    >>> import warnings
    >>> cfg = RunConfig(sigma=(0.25,), tau=(0.75, 0.95), n=(100,), skip_impossible=True)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     keys = [g.key for g in plan_grid(cfg, 64 * 128)]
    >>> keys
    ['sigma0.25-tau0.75-n100']
    >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
    grid point sigma0.25-tau0.95-n100 cannot certify any component: tau=0.95 with
    alpha=0.001, holm and 8192 components needs n >= 311; skipped (--skip-impossible).
    """
    import warnings

    import multitest

    grid = []
    for s in cfg.sigma or ():
        for t in cfg.tau:
            need = multitest.min_certifying_samples(num_components, float(t), cfg.alpha,
                                                    cfg.correction, cfg.k)
            for n in cfg.n:
                g = GridPoint(s, t, n)
                if n >= need:
                    grid.append(g)
                    continue
                what = (f"grid point {g.key} cannot certify any component: tau={fmt_value(t)} with "
                        f"alpha={cfg.alpha}, {cfg.correction}"
                        f"{f' (k={cfg.k})' if cfg.k != 1 else ''} and {num_components} "
                        f"components needs n >= {need}")
                if cfg.skip_impossible:
                    warnings.warn(f"{what}; skipped (--skip-impossible).",
                                  ImpossibleGridPointWarning, stacklevel=2)
                else:
                    grid.append(g)
                    warnings.warn(f"{what}; it runs anyway (--skip-impossible leaves it out).",
                                  ImpossibleGridPointWarning, stacklevel=2)
    if not grid:
        raise ValueError("every grid point is too small to certify anything and "
                         "`skip_impossible` leaves them all out; raise `n` (see the warnings).")
    return grid

