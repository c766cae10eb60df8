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
from smoothing.segcertify import CERTIFYING_CORRECTIONS

__all__ = [
    "DATASETS",
    "FOLDER_OPTIONS",
    "HIERARCHY_OPTIONS",
    "HIERARCHY_RULES",
    "MAX_BATCH_SIZE",
    "MAX_CHANNELS",
    "MAX_IMAGE_PIXELS",
    "MAX_INDEX",
    "MAX_K",
    "MAX_NUM_POINTS",
    "MAX_SAMPLES",
    "MAX_SEED",
    "OMITTED_AT_DEFAULT",
    "PRECISION_NAMES",
    "SAMPLERS",
    "GridPoint",
    "ImpossibleGridPointWarning",
    "RunConfig",
    "check_hierarchy_options",
    "noise_seed",
    "plan_grid",
]

#: Largest ``image_size`` (height x width) a run accepts: 2**24 pixels, 16x a Cityscapes
#: frame; one noisy batch of 50 such RGB images already takes 10 GB in float32.
MAX_IMAGE_PIXELS = 2**24
#: Largest ``n0`` and ``n``: a run stores its counts as int32 (2**31 - 1 is already
#: years of forward passes on one GPU).
MAX_SAMPLES = 2**31 - 1
#: Largest ``batch_size``: 2**20 noisy copies per forward pass (one of 64 x 128 RGB
#: scenes is 100 GB in float32).
MAX_BATCH_SIZE = 2**20
#: Largest ``num_points`` per cloud: 2**22 (ShapeNet objects have about 2,500).
MAX_NUM_POINTS = 2**22
#: Input indices lie in ``[0, MAX_INDEX)``: ``start``, ``stride``, ``num_inputs`` and
#: the last selected index ``start + stride * (num_inputs - 1)``.
MAX_INDEX = 2**40
#: Largest ``k`` of the k-FWER corrections (int64; :func:`multitest.lehmann_romano`).
MAX_K = 2**63 - 1
#: ``seed`` and ``data_seed`` are unsigned 64-bit integers.
MAX_SEED = 2**64 - 1
#: Largest ``channels`` of a folder data set's images.
MAX_CHANNELS = 1024

# --------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class DatasetInfo:
    kind: str  # 'image' or 'points'
    synthetic: bool
    default_split: str | None  # None: the folder data set's root itself
    default_model: str | None
    default_num_inputs: int | None


#: Data sets a run can read: name -> input kind, built in?, default split, model, size.
DATASETS: dict[str, DatasetInfo] = {
    "streets": DatasetInfo("image", True, "test", "streets-unet-sigma0.25", 100),
    "parts": DatasetInfo("points", True, "test", "parts-pointnet-normals-sigma0.25", 96),
    "cityscapes": DatasetInfo("image", False, "val", None, None),
    "pascal-context": DatasetInfo("image", False, "val", None, None),
    "shapenet-part": DatasetInfo("points", False, "test", None, None),
    "folder": DatasetInfo("image", False, None, None, None),
}

#: Sampler names -> (class, parameter that ``sigma`` sets, point clouds only?).
SAMPLERS: dict[str, tuple[type[samplers.Sampler], str, bool]] = {
    "gaussian": (samplers.GaussianL2, "sigma", False),
    "laplace": (samplers.LaplaceL1, "scale", False),
    "rotation-z": (samplers.RotationZ, "sigma", True),
    "rotation-3d": (samplers.Rotation3D, "sigma", True),
}

#: The options of a hierarchical run (left out of a flat run's ``config.json``).
HIERARCHY_OPTIONS: tuple[str, ...] = ("hierarchy", "hierarchy_rule")
#: The options of ``dataset='folder'`` (:class:`smoothing.datasets.FolderDataset`) only.
FOLDER_OPTIONS: tuple[str, ...] = ("num_classes", "ignore_index", "class_names", "channels")
#: Rules of a hierarchical run (:data:`smoothing.hierarchical.RULES`).
HIERARCHY_RULES: tuple[str, ...] = ("nested", "adaptive")
#: Precisions of the model's forward pass (:data:`smoothing._precision.PRECISIONS`).
PRECISION_NAMES: tuple[str, ...] = ("float32", "bfloat16", "float16")
#: Options left out of ``config.json`` (and so of the run's digest) while they hold
#: their default: a run folder written before they existed keeps its digest, and a
#: resume of it with the defaults is the same run.
OMITTED_AT_DEFAULT: dict[str, Any] = {"precision": "float32", "compile": False,
                                      **dict.fromkeys((*FOLDER_OPTIONS, "output_key"))}

# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RunConfig:
    """Every option of a certification run that can change its results.

    ``None`` means "the default for this data set / model"; :func:`prepare` fills in
    the resolved values (they are what ``config.json`` records).

    Parameters
    ----------
    dataset : {'streets', 'parts', 'cityscapes', 'pascal-context', 'shapenet-part', 'folder'}
        The first two are built in; the others are read from ``data_root``;
        ``'folder'`` is your own folder of images and label maps
        (:class:`smoothing.datasets.FolderDataset`, with ``num_classes``).
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
    output_key : str, optional
        The entry of a model that returns a dict or a tuple: a dict key, or a tuple
        index written in digits (:class:`smoothing.adapters.OutputSelector` wraps the
        model). Part of the run's identity.
    data_root, split : str, optional
        Folder of a real data set; split (default ``'val'``, ``'test'`` for
        ShapeNet and the synthetic sets; none for ``'folder'``: ``data_root/images``
        and ``data_root/masks``, else ``data_root/{split}/...``).
    image_size : (int, int), optional
        (height, width): the synthetic scenes' size (default (64, 128)); resizes the
        images of Cityscapes / Pascal Context / a folder (default: native size).
    num_classes : int, optional
        The classes of a ``'folder'`` data set (required there, in [2, 255]; an
        error with the other data sets, whose classes are known).
    ignore_index : int, optional
        The label of unlabelled pixels in a folder's mask files (default 255); any
        integer outside ``0 .. num_classes - 1``.
    class_names : tuple of str, optional
        One name per class of a folder data set (default ``'0'``, ``'1'``, ...);
        names only, so not compared on a resume.
    channels : int, optional
        Image channels of a folder data set (default 3; in [1, :data:`MAX_CHANNELS`]).
    num_points : int, default 2048
        Points per cloud (parts, shapenet-part), at most :data:`MAX_NUM_POINTS` (2**22).
    data_seed : int, default 0
        Seed of the synthetic data and of ShapeNet's resampling, in [0, 2**64 - 1].
    sampler : {'gaussian', 'laplace', 'rotation-z', 'rotation-3d'}, default 'gaussian'
        Smoothing distribution; ``sigma`` is its parameter (the Laplace scale).
    sigma : tuple of float, optional
        Noise levels of the grid; default: the model's training sigma (Gaussian).
    n0 : int, default 10
        Samples for guessing the classes, in [1, :data:`MAX_SAMPLES`] (2**31 - 1).
    n, tau : tuple
        Sample sizes (each in [1, 2**31 - 1]) and thresholds of the grid.
    alpha : float, default 0.001
        FWER of every certificate.
    correction : str, default 'holm'
        One of :data:`smoothing.CERTIFYING_CORRECTIONS`; ``k`` (in [1, 2**63 - 1]) for
        the k-FWER ones.
    batch_size : int, default 50
        Noisy copies per forward pass (part of the noise stream, hence compared), at
        most :data:`MAX_BATCH_SIZE` (2**20).
    num_inputs, start, stride : int
        Inputs ``start, start + stride, ...``; ``num_inputs`` of them (default: 100
        for streets, 96 for parts, all for the real data sets). A resume may raise
        ``num_inputs`` when nothing else changed: only the new inputs are certified.
        Every selected index lies below :data:`MAX_INDEX` (2**40).
    seed : int, default 0
        Base seed of the noise, in [0, 2**64 - 1].
    axis : {'x', 'y', 'z'}, optional
        Rotation axis of the ``'rotation-z'`` sampler (default ``'z'``); not allowed
        with the other samplers.
    skip_impossible : bool, default False
        Leave out the grid points whose ``n`` is too small to certify any component
        (:func:`multitest.min_certifying_samples`); otherwise they run with a warning.
    quantize_bits : {8, 16}, optional
        Quantized smoothing (:class:`samplers.Quantized`) of the 'gaussian' or
        'laplace' sampler: certificates sound in floating point at the continuous
        radius. Every image is first rounded to the ``bits``-bit grid (a no-op for
        images read from 8-bit files at 8 bits) and certified there.
    trust_program : bool, default False
        Allow a TorchScript or exported-program ``checkpoint``: loading one runs code
        from the file (:func:`smoothing.models.user.load_user_model`). Not recorded as
        an option that changes results: give it again on every resume.
    follow_symlinks : bool, default False
        Let a real data set's files resolve outside ``data_root`` through symbolic
        links (refused by default).
    hierarchy : str, optional
        Certify over a class hierarchy (:class:`~smoothing.hierarchical.HierarchicalSegCertify`):
        a built-in name (:data:`smoothing.hierarchy.BUILTIN_HIERARCHIES`) or a JSON file
        (:func:`smoothing.hierarchy.read_hierarchy`). :func:`prepare` checks it against
        the data set's classes and records a file as its absolute path; a resume
        compares the hierarchy itself (its fingerprint), not the path. The correction
        must be one of :data:`multitest.NESTED_METHODS`.
    hierarchy_rule : {'nested', 'adaptive'}, default 'nested'
        The rule of :class:`~smoothing.hierarchical.HierarchicalSegCertify`; only
        with ``hierarchy``.
    precision : {'float32', 'bfloat16', 'float16'}, default 'float32'
        dtype of :func:`torch.autocast` around the model's forward pass (the
        ``precision`` of :class:`~smoothing.SegCertify`): every certificate, and the
        clean "base" row too, is then of the model *as run in that precision* -- a
        different, still fixed base classifier (``docs/smoothing.md``, "Reduced
        precision and compilation"). The noise, the counts and the test stay exact.
        Part of the run's identity: a resume with another precision is refused.
    compile : bool or str, default False
        :func:`torch.compile` the model once for the whole run (``True``: torch's
        default backend; a string: that backend, which must be registered with
        torch). A compilation that fails falls back to the eager model with one
        :class:`~smoothing._precision.CompileFallbackWarning`. Part of the run's
        identity, like ``precision``.
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
    quantize_bits: int | None = None
    trust_program: bool = False
    follow_symlinks: bool = False
    hierarchy: str | None = None
    hierarchy_rule: str = "nested"
    precision: str = "float32"
    compile: bool | str = False
    num_classes: int | None = None
    ignore_index: int | None = None
    class_names: tuple[str, ...] | None = None
    channels: int | None = None
    output_key: str | None = None

    def __post_init__(self) -> None:
        # a scalar is a one-point grid; lists become tuples (hashable, comparable)
        for name in ("sigma", "n", "tau", "image_size", "class_names"):
            value = getattr(self, name)
            if isinstance(value, int | float) and name != "image_size":
                object.__setattr__(self, name, (value,))
            elif isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (tuples become lists).

        A flat run (``hierarchy`` None) leaves out ``hierarchy`` and ``hierarchy_rule``,
        and the options of :data:`OMITTED_AT_DEFAULT` are left out at their default
        (precision, compile, and the folder and output options while ``None``), so that
        its ``config.json`` (and digest) is that of earlier versions.

        Examples
        --------
        >>> "precision" in RunConfig().to_dict(), "num_classes" in RunConfig().to_dict()
        (False, False)
        >>> RunConfig(precision="bfloat16").to_dict()["precision"]
        'bfloat16'
        >>> RunConfig(dataset="folder", num_classes=3).to_dict()["num_classes"]
        3
        """
        out = json.loads(json.dumps(asdict(self)))
        if self.hierarchy is None:
            for name in HIERARCHY_OPTIONS:
                out.pop(name)
        for name in OMITTED_AT_DEFAULT:
            if is_default(name, out[name]):
                out.pop(name)
        return out


def is_default(name: str, value: object) -> bool:
    """Whether ``value`` of option ``name`` is its :data:`OMITTED_AT_DEFAULT` default
    (of the same type: ``compile`` 0 is not ``False``).

    Examples
    --------
    >>> is_default("compile", False), is_default("compile", 0), is_default("precision", "float16")
    (True, False, False)
    """
    default = OMITTED_AT_DEFAULT[name]
    return type(value) is type(default) and value == default


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
    _check_counts(cfg)
    alpha = _check_real(cfg.alpha, "alpha")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must lie in (0, 1); got {cfg.alpha!r}.")
    for n in _check_list(cfg.n, "n"):
        check_bounded(n, "n", 1, MAX_SAMPLES, "2**31 - 1")
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
    _check_quantize(cfg)
    check_forward_options(cfg)
    if cfg.image_size is not None:
        _check_image_size(cfg.image_size)
    check_folder_options(cfg)
    check_hierarchy_options(cfg)
    if cfg.output_key is not None and (not isinstance(cfg.output_key, str)
                                       or not cfg.output_key.strip()):
        raise TypeError(f"`output_key` must be a dict key or a tuple index in digits (a "
                        f"non-empty string); got {cfg.output_key!r}.")


def check_folder_options(cfg: RunConfig) -> None:
    """The options of ``dataset='folder'``: ``num_classes`` required there, and these
    four options refused with every other data set (whose classes are known).

    Examples
    --------
    >>> check_folder_options(RunConfig(dataset="folder", num_classes=2, class_names=("a", "b")))
    >>> check_folder_options(RunConfig(dataset="streets", num_classes=3))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `num_classes` applies to dataset 'folder' only (dataset 'streets' has its ...
    """
    if cfg.dataset != "folder":
        for name in FOLDER_OPTIONS:
            if getattr(cfg, name) is not None:
                raise ValueError(f"`{name}` applies to dataset 'folder' only (dataset "
                                 f"{cfg.dataset!r} has its own classes); leave it out.")
        return
    if cfg.num_classes is None:
        raise ValueError("dataset 'folder' needs `num_classes` (the number of classes of its "
                         "label maps, 2 to 255).")
    classes = check_bounded(cfg.num_classes, "num_classes", 2, 255, "255")
    if cfg.ignore_index is not None:
        check_bounded(cfg.ignore_index, "ignore_index", -(2**63), 2**63 - 1, "2**63 - 1")
        if 0 <= cfg.ignore_index < classes:
            raise ValueError(f"`ignore_index` must not be a class (0..{classes - 1}); got "
                             f"{cfg.ignore_index!r}.")
    if cfg.channels is not None:
        check_bounded(cfg.channels, "channels", 1, MAX_CHANNELS, str(MAX_CHANNELS))
    names = cfg.class_names
    if names is not None and (
            isinstance(names, str) or not isinstance(names, Sequence) or len(names) != classes
            or not all(isinstance(n, str) and n.strip() for n in names)):
        raise ValueError(f"`class_names` must be {classes} non-empty names, one per class "
                         f"(`num_classes` {classes}); got {_short_list(names)}.")
    if names is not None and len(set(names)) != len(names):
        dup = next(n for n in names if list(names).count(n) > 1)
        raise ValueError(f"`class_names` names {dup!r} twice.")


def _short_list(values: object) -> str:
    text = repr(list(values)) if isinstance(values, Sequence) and not isinstance(
        values, str) else repr(values)
    return text if len(text) <= 80 else text[:77] + "..."


def check_hierarchy_options(cfg: RunConfig) -> None:
    """Types of ``hierarchy`` / ``hierarchy_rule``, and a correction that keeps its
    guarantee over nested hypotheses (:data:`multitest.NESTED_METHODS`); the
    hierarchy itself is read and checked against the data set by :func:`prepare`.

    Examples
    --------
    >>> check_hierarchy_options(RunConfig(hierarchy="parts", correction="lehmann_romano"))
    >>> check_hierarchy_options(RunConfig(hierarchy_rule="adaptive"))
    Traceback (most recent call last):
    ...
    ValueError: `hierarchy_rule` applies only with `hierarchy`; got 'adaptive' without one.
    """
    if cfg.hierarchy is None:
        if cfg.hierarchy_rule != "nested":
            raise ValueError(f"`hierarchy_rule` applies only with `hierarchy`; got "
                             f"{cfg.hierarchy_rule!r} without one.")
        return
    if not isinstance(cfg.hierarchy, str) or not cfg.hierarchy.strip():
        raise TypeError(f"`hierarchy` must be a built-in name or a JSON file path; got "
                        f"{cfg.hierarchy!r}.")
    if cfg.hierarchy_rule not in HIERARCHY_RULES:
        raise ValueError(f"`hierarchy_rule` must be one of {', '.join(HIERARCHY_RULES)}; got "
                         f"{cfg.hierarchy_rule!r}.")
    import multitest

    if cfg.correction not in multitest.NESTED_METHODS:
        raise ValueError(f"`correction` must be one of {', '.join(multitest.NESTED_METHODS)} "
                         f"with `hierarchy` (those whose guarantee holds over nested "
                         f"hypotheses); got {cfg.correction!r}.")


def check_forward_options(cfg: RunConfig) -> None:
    """``precision`` one of :data:`PRECISION_NAMES`; ``compile`` ``False``, ``True`` or
    the name of a backend registered with torch (an unknown name is refused, so that a
    typo does not silently run uncompiled; a known backend that then fails falls back).

    Examples
    --------
    >>> check_forward_options(RunConfig(precision="bfloat16", compile=True))
    >>> check_forward_options(RunConfig(precision="half"))
    Traceback (most recent call last):
    ...
    ValueError: `precision` must be one of float32, bfloat16, float16; got 'half'.
    """
    if cfg.precision not in PRECISION_NAMES or not isinstance(cfg.precision, str):
        raise ValueError(f"`precision` must be one of {', '.join(PRECISION_NAMES)}; got "
                         f"{cfg.precision!r}.")
    if isinstance(cfg.compile, bool):
        return
    if not isinstance(cfg.compile, str) or not cfg.compile.strip():
        raise TypeError(f"`compile` must be false, true (torch's default backend) or a "
                        f"torch.compile backend name; got {cfg.compile!r}.")
    from torch._dynamo import list_backends, lookup_backend

    try:
        lookup_backend(cfg.compile)
    except Exception:  # torch's InvalidBackend (a RuntimeError), or a broken entry point
        known = ", ".join(sorted({*list_backends(), "eager", "aot_eager"}))
        raise ValueError(f"`compile` backend {cfg.compile!r} is not registered with torch "
                         f"(its backends include {known}).") from None


#: The integer options: name -> (smallest, largest, the largest as written in messages).
_COUNT_BOUNDS: dict[str, tuple[int, int, str]] = {
    "n0": (1, MAX_SAMPLES, "2**31 - 1"),
    "k": (1, MAX_K, "2**63 - 1"),
    "batch_size": (1, MAX_BATCH_SIZE, "2**20"),
    "num_points": (1, MAX_NUM_POINTS, "2**22"),
    "start": (0, MAX_INDEX - 1, "2**40 - 1"),
    "stride": (1, MAX_INDEX - 1, "2**40 - 1"),
    "num_inputs": (1, MAX_INDEX, "2**40"),
    "seed": (0, MAX_SEED, "2**64 - 1"),
    "data_seed": (0, MAX_SEED, "2**64 - 1"),
}


def check_bounded(value: object, name: str, low: int, high: int, high_text: str) -> int:
    """``value`` as an int in ``[low, high]``, else a TypeError/ValueError naming ``name``
    and the range (``high_text`` writes ``high``, e.g. ``'2**31 - 1'``).

    Examples
    --------
    >>> check_bounded(5, "n", 1, 2**31 - 1, "2**31 - 1")
    5
    >>> check_bounded(2**63, "n", 1, 2**31 - 1, "2**31 - 1")
    Traceback (most recent call last):
    ...
    ValueError: `n` must be an integer in [1, 2**31 - 1]; got 9223372036854775808.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be an integer in [{low}, {high_text}]; got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"`{name}` must be an integer in [{low}, {high_text}]; got {value!r}.")
    return int(value)


def _check_counts(cfg: RunConfig) -> None:
    """Every count, index and seed within its range (:data:`_COUNT_BOUNDS`), and the last
    selected index below :data:`MAX_INDEX`: checked before anything is allocated."""
    for name, (low, high, text) in _COUNT_BOUNDS.items():
        value = getattr(cfg, name)
        if value is not None or name != "num_inputs":
            check_bounded(value, name, low, high, text)
    if cfg.num_inputs is not None:
        last = cfg.start + cfg.stride * (cfg.num_inputs - 1)
        if last >= MAX_INDEX:
            raise ValueError(
                f"the last input index `start` + `stride` x (`num_inputs` - 1) = {last} must "
                f"be below 2**40 ({MAX_INDEX}); lower `num_inputs` or `stride`."
            )


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


def _check_quantize(cfg: RunConfig) -> None:
    """``quantize_bits`` is 8 or 16 and only given with an additive sampler."""
    bits = cfg.quantize_bits
    if bits is None:
        return
    if isinstance(bits, bool) or bits not in (8, 16):
        raise ValueError(f"`quantize_bits` must be 8 or 16; got {bits!r}.")
    if cfg.sampler not in ("gaussian", "laplace"):
        raise ValueError(f"`quantize_bits` applies to the 'gaussian' and 'laplace' samplers "
                         f"only; got sampler {cfg.sampler!r}.")


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

