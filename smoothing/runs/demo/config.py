"""Settings of the demo: :class:`DemoConfig`, the presets :data:`QUICK` and :data:`FULL`,
and their checks (:func:`resolve_config`), run before anything is computed or written."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from samplers import GaussianL2, RotationZ
from smoothing import _sampling as S

__all__ = ["CLEAN_MODEL", "FULL", "QUICK", "DemoConfig", "check_config", "resolve_config"]

CLEAN_MODEL = "streets-unet-clean"


@dataclass(frozen=True)
class DemoConfig:
    """Settings of :func:`run_demo`; :data:`QUICK` and :data:`FULL` are the presets.

    Attributes
    ----------
    n_images : int
        Number of ``SyntheticStreets`` test scenes.
    height, width : int
        Scene size in pixels (the shipped U-Nets were trained at 64 x 128).
    image_runs : tuple of (str, float, int)
        ``(model, sigma, n)`` of every sampling run on the scenes.
    taus : tuple of float
        Thresholds tested on every scene run (the points of Fig. 3).
    table_taus : tuple of (int, float)
        ``(n, tau)`` pairs shown in the Table 1 analogue.
    n0, alpha, batch_size : int, float, int
        SEGCERTIFY parameters of the scene runs (Holm correction).
    attack_run : (str, float, int, float) or None
        ``(model, sigma, n, tau)`` of the scene run whose certified radius ``R`` the
        attack of Fig. 1 uses (the paper's: sigma 0.25, tau 0.75, n 100); ``None``:
        no attack.
    attack_margin : float
        The Fig. 1 attack's l2 budget as a fraction of ``R`` (0.95: just inside).
    attack_eps : tuple of float
        Further l2 budgets of the attack table.
    attack_steps : int
        PGD steps (step size ``10 eps / steps``).
    n_clouds, num_points : int
        Number of ``SyntheticParts`` test objects, and points per object.
    rotation_model, rotation_axis : str
        Point-cloud model (restricted to the object's category) and rotation axis
        (``'y'`` is the up axis of ShapeNet-style objects).
    rotation_sigmas : tuple of float
        Standard deviations of the rotation angle, in radians.
    rotation_taus, rotation_n0, rotation_n, rotation_alpha, rotation_batch_size
        SEGCERTIFY parameters of the rotation runs.
    power_args : tuple of str or None
        Extra arguments of the power study's command line
        (:func:`smoothing.runs.power.main`, the one of ``simulations/power_curves.py``;
        ``--out``, ``--seed`` and ``--no-progress`` are added); ``None`` skips the
        power study.
    """

    n_images: int = 4
    height: int = 64
    width: int = 128
    image_runs: tuple[tuple[str, float, int], ...] = (
        ("streets-unet-sigma0.25", 0.25, 100),
        ("streets-unet-sigma0.25", 0.25, 300),
        ("streets-unet-sigma0.50", 0.5, 100),
        ("streets-unet-sigma0.50", 0.5, 300),
        (CLEAN_MODEL, 0.25, 100),
    )
    taus: tuple[float, ...] = (0.6, 0.75, 0.85, 0.9, 0.95, 0.97, 0.99)
    table_taus: tuple[tuple[int, float], ...] = ((100, 0.75), (300, 0.9))
    n0: int = 10
    alpha: float = 0.001
    batch_size: int = 100
    attack_run: tuple[str, float, int, float] | None = ("streets-unet-sigma0.25", 0.25, 100, 0.75)
    attack_margin: float = 0.95
    attack_eps: tuple[float, ...] = (1.0, 2.0, 4.0)
    attack_steps: int = 20
    n_clouds: int = 3
    num_points: int = 2048
    rotation_model: str = "parts-pointnet-normals-sigma0.50"
    rotation_axis: str = "y"
    rotation_sigmas: tuple[float, ...] = (0.125, 0.25)
    rotation_taus: tuple[float, ...] = (0.6, 0.75)
    rotation_n0: int = 10
    rotation_n: int = 100
    rotation_alpha: float = 1e-4
    rotation_batch_size: int = 110
    power_args: tuple[str, ...] | None = ("--quick",)


#: Small settings: about a minute on 2 CPU cores (49-61 s measured; docs/quickstart.md).
QUICK = DemoConfig()

#: Bigger settings for the committed results (docs/builtin-results.md): 19 minutes
#: measured on 2 CPU cores shared with another job.
FULL = DemoConfig(
    n_images=20,
    image_runs=(
        ("streets-unet-sigma0.25", 0.25, 100),
        ("streets-unet-sigma0.25", 0.25, 500),
        ("streets-unet-sigma0.50", 0.5, 100),
        ("streets-unet-sigma0.50", 0.5, 500),
        (CLEAN_MODEL, 0.25, 100),
    ),
    taus=(0.6, 0.75, 0.85, 0.9, 0.95, 0.97, 0.99),
    table_taus=((100, 0.75), (500, 0.95)),
    attack_steps=50,
    n_clouds=12,
    rotation_sigmas=(0.125, 0.25),
    rotation_taus=(0.6, 0.75, 0.85, 0.95),
    rotation_n0=50,
    rotation_n=500,
)


_POSITIVE_INTS = ("n_images", "height", "width", "n0", "batch_size", "attack_steps",
                  "n_clouds", "num_points", "rotation_n0", "rotation_n", "rotation_batch_size")


def _check_model(name: object, field: str, layouts: tuple[str, ...]) -> None:
    """``name`` must be a built-in model whose input layout is one of ``layouts``."""
    from smoothing.models import get_model_spec, list_models

    if not isinstance(name, str) or name not in list_models():
        raise ValueError(f"`{field}` must name a built-in model, one of {list(list_models())}; "
                         f"got {name!r}.")
    layout = get_model_spec(name).input_layout
    if layout not in layouts:
        raise ValueError(f"`{field}` must be a model with input layout {' or '.join(layouts)}; "
                         f"{name!r} takes {layout!r}.")


def check_config(cfg: DemoConfig) -> None:
    """Raise TypeError/ValueError for a bad or self-contradictory setting (before any work)."""
    for name in _POSITIVE_INTS:
        S.check_int(getattr(cfg, name), name)
    if not cfg.image_runs or not cfg.taus or not cfg.rotation_taus or not cfg.rotation_sigmas:
        raise ValueError("`image_runs`, `taus`, `rotation_taus` and `rotation_sigmas` must not "
                         "be empty.")
    for model, sigma, n in cfg.image_runs:
        _check_model(model, "image_runs", ("image",))
        GaussianL2(sigma)  # validates sigma
        S.check_int(n, "n")
    _check_model(cfg.rotation_model, "rotation_model", ("points", "points+normals"))
    for sigma in cfg.rotation_sigmas:
        RotationZ(sigma, axis=cfg.rotation_axis)  # validates sigma and the axis
    for tau in (*cfg.taus, *cfg.rotation_taus):
        S.check_tau(tau)
    S.check_alpha(cfg.alpha)
    S.check_alpha(cfg.rotation_alpha)
    ns = {n for _, _, n in cfg.image_runs}
    for pair in cfg.table_taus:
        if len(pair) != 2 or pair[0] not in ns or pair[1] not in cfg.taus:
            raise ValueError(f"`table_taus` must hold (n, tau) pairs with n of `image_runs` "
                             f"and tau of `taus`; got {pair!r}.")
    if cfg.power_args is not None and not all(isinstance(a, str) for a in cfg.power_args):
        raise TypeError(f"`power_args` must be a tuple of str or None; got {cfg.power_args!r}.")
    if cfg.attack_run is None:
        return
    model, sigma, n, tau = cfg.attack_run
    if (model, sigma, n) not in cfg.image_runs or tau not in cfg.taus:
        raise ValueError(
            f"`attack_run` must be (model, sigma, n) of one of the `image_runs` and a tau "
            f"of `taus`; got {cfg.attack_run!r}."
        )
    if model == CLEAN_MODEL:
        raise ValueError(f"`attack_run` must use a noise-trained model, not {CLEAN_MODEL}.")
    for name, value in (("attack_margin", cfg.attack_margin),
                        *(("attack_eps", e) for e in cfg.attack_eps)):
        S.check_real(value, name, 0.0, math.inf, closed_low=False, text="(0, inf)")


def resolve_config(quick: bool, config: DemoConfig | None,
                    overrides: dict[str, Any]) -> DemoConfig:
    """The preset (or ``config``) with ``overrides`` applied and checked."""
    if config is not None and not isinstance(config, DemoConfig):
        raise TypeError(f"`config` must be a DemoConfig or None; got {type(config).__name__}.")
    known = {f.name for f in fields(DemoConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"run_demo() got unknown setting(s) {unknown}: the overrides must be "
                        f"fields of DemoConfig, one of {sorted(known)}.")
    cfg = replace(config or (QUICK if quick else FULL), **overrides)
    check_config(cfg)
    return cfg
