"""The end-to-end demonstration on built-in data (``python -m smoothing demo``).

:func:`run_demo` runs, on a CPU in a few minutes:

1. the power study of §6.1 on the synthetic oracle, in its quick mode
   (``simulations/power_curves.py --quick``) -> ``power/``;
2. SEGCERTIFY on built-in :class:`~smoothing.datasets.SyntheticStreets` scenes with
   the shipped U-Nets (``sigma`` 0.25 and 0.5 with the model trained at that
   ``sigma``, and the non-robust ``streets-unet-clean``), for a grid of ``n`` and
   ``tau``, plus an l2 PGD attack on the non-robust model for Fig. 1 -> ``streets/``;
3. SEGCERTIFY with :class:`samplers.RotationZ` (rotation smoothing, App. B.5) on
   built-in :class:`~smoothing.datasets.SyntheticParts` objects with a shipped
   PointNet -> ``rotation/``;

saving every certified label map, count and timing (``.npz``) **first**. Only then
:func:`write_tables` reads the saved files back into tidy CSVs and the tables
(Table 1 and Table 7 of the paper, CSV + Markdown), and :func:`draw_figures`
draws the figures from the saved files; both can be re-run on a finished
output folder.

Output folder::

    manifest.json            what was run (the configuration, files, timings)
    power/                   power_curves.csv, power_fig*.png
    streets/                 data.npz, base_<model>.npz, cert_<model>_sigma<s>_n<n>.npz,
                             attack.npz
    streets_attack.csv/.md   accuracy of the base models under l2 PGD
    rotation/                data.npz, base.npz, cert_sigma<s>.npz
    streets_table.csv/.md    Table 1 analogue        streets_per_image.csv
    streets_curve.csv        accuracy per (run, tau) for Fig. 3
    rotation_table.csv/.md   Table 7 analogue        rotation_per_cloud.csv
    rotation_curve.csv       accuracy per (sigma, tau)
    figures/                 fig1_streets.png, streets_tau.png,
                             cert_acc_radius_streets.png, cert_acc_radius_rotation.png

**Several tau from one sampling run.** The guesses and counts of SEGCERTIFY do
not depend on ``tau``; only the test does. Each sampling run is therefore done
once (``SegCertify.certify`` with the first ``tau``) and re-tested with
:func:`multitest.certify_counts` for every ``tau`` of the grid. The labels are
exactly those of ``SegCertify(..., tau=t).certify`` with the same generator seed
(tested), and each tau's certificate holds with probability ``1 - alpha`` on its
own. The time per input reported for a ``tau`` is the sampling time of its run
plus the time of its test, i.e. what a separate run would take.

**Resuming.** Every ``.npz`` is written atomically (a temporary file, then
``os.replace``) and stores, under ``meta``, the settings that determine it. Running
the demo again into the same folder reuses every complete file whose settings
match and recomputes only the others, so a killed demo loses at most the sampling
run or attack it was in; the power study is skipped when its marker
``power/demo_power.json`` matches. ``manifest.json`` lists ``files_computed`` and
``files_reused``; reused files keep their original timings. To start afresh, use a
new folder (or delete the old one).

**Seeds.** Every sampling run and attack draws from its own generator seeded by
``SeedSequence([seed, ...])`` of the demo's ``seed`` and the run's parameters,
so a number does not depend on which other runs are done. The data are the
built-in ``test`` splits with data seed 0.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samplers import GaussianL2, RotationZ
from smoothing import _sampling as S
from smoothing._io import write_atomic
from smoothing._labels import HEADERS
from smoothing._sampling import ABSTAIN
from smoothing.metrics import SegmentationMetrics
from smoothing.segcertify import SegCertify

__all__ = ["FULL", "QUICK", "DemoConfig", "draw_figures", "run_demo", "write_tables"]

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
        Extra arguments of ``simulations/power_curves.py`` (``--out``, ``--seed``
        and ``--no-progress`` are added); ``None`` skips the power study.
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


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def _seed(seed: int, *keys: int) -> int:
    """A 32-bit seed of its own for every (demo seed, run, item) combination."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def _model_code(name: str) -> int:
    from smoothing.models import list_models

    return list_models().index(name)


def _generator(seed: int, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(seed, *keys))


def _tag(x: float) -> str:
    return f"{x:.4g}"


def _timed_forward(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                   class_dim: int) -> tuple[np.ndarray, float]:
    """argmax labels of one input (no batch dim) and the seconds of the forward pass."""
    with torch.inference_mode():
        model(x[None])  # warm-up: the first call pays one-off costs
        t0 = time.perf_counter()
        pred = model(x[None]).argmax(class_dim)[0]
        dt = time.perf_counter() - t0
    return pred.numpy().astype(np.int8), dt


def _progress(total: int, desc: str, enabled: bool, unit: str) -> Any:
    from smoothing._progress import progress_bar  # plain lines when not a terminal

    return progress_bar(total=total, desc=desc, unit=unit, enabled=enabled, leave=False)


# ---------------------------------------------------------------------------
# saved results: atomic writes, reuse of finished files (resuming)
# ---------------------------------------------------------------------------

#: Version of the saved files; a file of another version is recomputed.
FORMAT_VERSION = 1


def _save_npz(path: Path, arrays: dict[str, Any]) -> None:
    """Write ``arrays`` to ``path`` atomically (:func:`smoothing._io.write_atomic`)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(path, buf.getvalue(), tag=f".{os.getpid()}")


def _load_complete(path: Path, meta: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``path`` if it is a complete file written for ``meta``, else ``None``.

    Every array is read (which checks the zip CRCs), so a damaged file counts as
    missing.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        return None
    if str(arrays.pop("meta", "")) != meta:
        return None
    return arrays


class _Store:
    """Computes a result file once: reuses it when a complete one with the same meta exists.

    ``meta`` is every setting that determines the file's content (plus
    :data:`FORMAT_VERSION`); it is saved inside the file, as JSON, under ``meta``.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.computed: list[str] = []
        self.reused: list[str] = []

    def get(self, path: Path, meta: dict[str, Any], compute: Callable[[], dict[str, Any]],
            *, bar: Any = None, units: int = 0) -> dict[str, np.ndarray]:
        """The arrays of ``path``, computed by ``compute()`` and saved unless reusable.

        A reused file advances ``bar`` by the ``units`` its computation would have.
        """
        text = json.dumps({"format_version": FORMAT_VERSION, **meta}, sort_keys=True)
        rel = path.relative_to(self.out).as_posix()
        arrays = _load_complete(path, text)
        if arrays is not None:
            self.reused.append(rel)
            if bar is not None:
                bar.update(units)
            return arrays
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        _save_npz(path, {**arrays, "meta": np.array(text)})
        self.computed.append(rel)
        return arrays


# ---------------------------------------------------------------------------
# 1. power study
# ---------------------------------------------------------------------------


def _run_power(out: Path, cfg: DemoConfig, seed: int, progress: bool) -> bool:
    """Run ``simulations/power_curves.py`` into ``out`` unless it finished there before.

    A marker ``demo_power.json`` (written atomically after the script returns)
    records the arguments; with the same arguments and ``power_curves.csv``
    present the study is not redone. Returns whether it ran.
    """
    from simulations import power_curves

    argv = [*cfg.power_args, "--out", str(out), "--seed", str(seed)]
    marker = out / "demo_power.json"
    done = {"format_version": FORMAT_VERSION, "args": [*cfg.power_args], "seed": seed}
    try:
        if json.loads(marker.read_text()) == done and (out / "power_curves.csv").is_file():
            return False
    except (OSError, ValueError):
        pass
    if not progress:
        argv.append("--no-progress")
    power_curves.main(argv)
    write_atomic(marker, json.dumps(done).encode(), tag=f".{os.getpid()}")
    return True


# ---------------------------------------------------------------------------
# 2. street scenes: certification and attack
# ---------------------------------------------------------------------------


def _streets_data(cfg: DemoConfig) -> dict[str, Any]:
    """The scenes, their labels, class names and palette (the built-in ``test`` split)."""
    from smoothing.datasets import STREET_CLASSES, STREET_PALETTE, SyntheticStreets

    ds = SyntheticStreets(length=cfg.n_images, split="test", seed=0, height=cfg.height,
                          width=cfg.width)
    items = [ds[i] for i in range(len(ds))]
    return {"images": torch.stack([s.image for s in items]).numpy(),
            "labels": torch.stack([s.label for s in items]).numpy(),
            "classes": np.array(STREET_CLASSES), "palette": np.asarray(STREET_PALETTE)}


def _base_predictions(models: Sequence[Callable[[torch.Tensor], torch.Tensor]],
                      inputs: Sequence[torch.Tensor], class_dim: int) -> dict[str, np.ndarray]:
    """Labels of ``models[i]`` on clean input ``i``, and the seconds of each forward."""
    preds, secs = zip(*(_timed_forward(m, x, class_dim) for m, x in
                        zip(models, inputs, strict=True)), strict=True)
    return {"preds": np.stack(preds), "seconds": np.array(secs)}


def _certify_streets(out: Path, cfg: DemoConfig, seed: int, progress: bool,
                     store: _Store) -> dict[str, Any]:
    """Base models and every ``image_runs`` entry on the scenes, then the attack."""
    from smoothing.models import load_model

    folder = out / "streets"
    folder.mkdir(parents=True, exist_ok=True)
    size = {"n_images": cfg.n_images, "height": cfg.height, "width": cfg.width, "data_seed": 0}
    data = store.get(folder / "data.npz", {"kind": "streets-data", **size},
                     lambda: _streets_data(cfg))
    images = torch.from_numpy(data["images"])
    names = list(dict.fromkeys([CLEAN_MODEL] + [m for m, _, _ in cfg.image_runs]))
    models = {name: load_model(name) for name in names}
    entry: dict[str, Any] = {"data": "streets/data.npz", "base": {}, "runs": []}
    for name, model in models.items():  # base models without smoothing, clean input
        path = folder / f"base_{name}.npz"
        store.get(path, {"kind": "streets-base", "model": name, **size},
                  lambda m=model: _base_predictions([m] * len(images), images, 1))
        entry["base"][name] = path.relative_to(out).as_posix()
    bar = _progress(len(cfg.image_runs) * len(images), "certify streets", progress,
                    "certificate")
    for model_name, sigma, n in cfg.image_runs:
        meta = {"kind": "streets-certify", "seed": seed, "model": model_name, "sigma": sigma,
                "n0": cfg.n0, "n": n, "alpha": cfg.alpha, "taus": list(cfg.taus),
                "batch_size": cfg.batch_size, **size}

        def compute(model_name: str = model_name, sigma: float = sigma, n: int = n
                    ) -> dict[str, np.ndarray]:
            certifier = SegCertify(models[model_name], GaussianL2(sigma), num_classes=8,
                                   n0=cfg.n0, n=n, tau=cfg.taus[0], alpha=cfg.alpha,
                                   correction="holm", batch_size=cfg.batch_size)
            return _certify_items(lambda i: certifier, images, cfg.taus, bar,
                                  keys=_run_keys(1, model_name, sigma, n), seed=seed)

        path = folder / f"cert_{model_name}_sigma{_tag(sigma)}_n{n}.npz"
        arrays = store.get(path, meta, compute, bar=bar, units=len(images))
        entry["runs"].append({"file": path.relative_to(out).as_posix(), "model": model_name,
                              "sigma": sigma, "n0": cfg.n0, "n": n, "alpha": cfg.alpha,
                              "batch_size": cfg.batch_size, "taus": list(cfg.taus),
                              "radius": arrays["radius"].tolist()})
    bar.close()
    entry["table_taus"] = [list(p) for p in cfg.table_taus]
    entry["attack"] = _attack_streets(out, cfg, seed, data, models, entry, store, progress)
    return entry


def _run_keys(kind: int, model_name: str, sigma: float, n: int) -> tuple[int, ...]:
    """The seed keys of one sampling run: what it is, model, sigma and n."""
    return (kind, _model_code(model_name), round(sigma * 1e4), n)


def _certify_items(certifier_for: Callable[[int], SegCertify], inputs: Sequence[torch.Tensor],
                   taus: Sequence[float], bar: Any, *, keys: tuple[int, ...],
                   seed: int) -> dict[str, np.ndarray]:
    """Certify every input once, re-test for every ``tau``; stacked arrays for an npz.

    ``certifier_for(i)`` is the :class:`SegCertify` of input ``i`` (at ``taus[0]``);
    input ``i`` draws its noise from ``_generator(seed, *keys, i)``. ``labels[i, j]``
    are the labels of ``taus[j]`` (:meth:`SegCertify.retest`): exactly those of
    ``SegCertify(..., tau=taus[j])`` with that generator.
    """
    out: dict[str, list] = {k: [] for k in ("labels", "guesses", "counts", "counts0",
                                            "time_sampling", "time_testing")}
    for i, x in enumerate(inputs):
        certifier = certifier_for(i)
        cert = certifier.certify(x, generator=_generator(seed, *keys, i))
        counts, guesses = cert.counts.numpy(), cert.guesses.numpy()
        tested = [cert if tau == certifier.tau else certifier.retest(cert, tau)
                  for tau in taus]
        out["labels"].append(np.stack([c.labels.numpy().astype(np.int8) for c in tested]))
        secs = [c.time_testing for c in tested]
        out["guesses"].append(guesses.astype(np.int8))
        out["counts"].append(counts.astype(np.int32))
        out["counts0"].append(cert.counts0.numpy().astype(np.int32))
        out["time_sampling"].append(cert.time_sampling)
        out["time_testing"].append(secs)
        bar.update(1)
    arrays = {k: np.stack([np.asarray(v) for v in vals]) for k, vals in out.items()}
    arrays["taus"] = np.asarray(taus, dtype=np.float64)
    arrays["radius"] = np.array([certifier_for(0).sampler.radius(t) for t in taus])
    return arrays


def _attack_streets(out: Path, cfg: DemoConfig, seed: int, data: dict[str, np.ndarray],
                    models: dict[str, Any], entry: dict[str, Any], store: _Store,
                    progress: bool) -> str | None:
    """PGD on the scenes (Fig. 1 and the attack table), just inside a certified radius."""
    if cfg.attack_run is None:
        return None
    model_name, sigma, n, tau = cfg.attack_run
    run = next(r for r in entry["runs"] if (r["model"], r["sigma"], r["n"]) ==
               (model_name, sigma, n))
    meta = {"kind": "streets-attack", "seed": seed, "attack_run": list(cfg.attack_run),
            "attack_margin": cfg.attack_margin, "attack_eps": list(cfg.attack_eps),
            "attack_steps": cfg.attack_steps, "clean_model": CLEAN_MODEL,
            "run": {k: run[k] for k in ("model", "sigma", "n0", "n", "alpha", "batch_size",
                                        "taus")},
            "n_images": cfg.n_images, "height": cfg.height, "width": cfg.width}
    path = out / "streets" / "attack.npz"
    store.get(path, meta, lambda: _attack(out, cfg, seed, data, models, run, progress))
    return path.relative_to(out).as_posix()


def _attack(out: Path, cfg: DemoConfig, seed: int, data: dict[str, np.ndarray],
            models: dict[str, Any], run: dict[str, Any], progress: bool) -> dict[str, Any]:
    """The arrays of ``attack.npz``; see :func:`_attack_streets`."""
    from smoothing.attacks import pgd_l2

    model_name, sigma, n, tau = cfg.attack_run
    images, labels = torch.from_numpy(data["images"]), torch.from_numpy(data["labels"])
    j = run["taus"].index(tau)
    radius = run["radius"][j]
    budgets = (cfg.attack_margin * radius, *cfg.attack_eps)
    attacked = {CLEAN_MODEL: models[CLEAN_MODEL], model_name: models[model_name]}
    accuracy = np.empty((len(attacked), len(budgets)))
    first: dict[str, Any] = {}  # image 0 under the first budget, per model
    bar = _progress(len(attacked) * len(budgets) + 1, "attack streets", progress, "step")
    for a, (name, model) in enumerate(attacked.items()):
        for b, eps in enumerate(budgets):
            adv = pgd_l2(model, images, labels, eps=eps, steps=cfg.attack_steps,
                         generator=_generator(seed, 2, _model_code(name), round(eps * 1e4)))
            with torch.inference_mode():
                pred = model(adv).argmax(1).numpy().astype(np.int8)
            accuracy[a, b] = _metrics(list(pred), list(data["labels"]), 8).accuracy
            if b == 0:
                first[name] = adv[0]
                first[f"pred_{name}"] = pred[0]
            bar.update(1)
    with np.load(out / run["file"]) as saved:
        certified = saved["labels"][0, j]
    certifier = SegCertify(models[model_name], GaussianL2(sigma), num_classes=8,
                           n0=run["n0"], n=n, tau=tau, alpha=run["alpha"], correction="holm",
                           batch_size=run["batch_size"])
    # certify the input attacked against the noise-trained base model, with the same
    # noise as the clean input's run (common random numbers)
    cert_adv = certifier.certify(first[model_name],
                                 generator=_generator(seed, *_run_keys(1, model_name, sigma, n),
                                                      0))
    bar.update(1)
    bar.close()
    cert_adv_lab = cert_adv.labels.numpy().astype(np.int8)
    both = (certified != ABSTAIN) & (cert_adv_lab != ABSTAIN)
    x = images[0]
    return {
        "image": x.numpy(), "label": labels[0].numpy(), "adv": first[CLEAN_MODEL].numpy(),
        "adv_robust": first[model_name].numpy(), "pred_adv": first[f"pred_{CLEAN_MODEL}"],
        "pred_robust_adv": first[f"pred_{model_name}"], "certified": certified,
        "certified_adv": cert_adv_lab, "eps": budgets[0], "radius": radius, "tau": tau,
        "sigma": sigma, "n": n,
        "delta_norm": float((first[CLEAN_MODEL] - x).double().norm()),
        "delta_norm_robust": float((first[model_name] - x).double().norm()),
        "changed_certified": int((both & (certified != cert_adv_lab)).sum()),
        "model": model_name, "clean_model": CLEAN_MODEL, "steps": cfg.attack_steps,
        "table_eps": np.array(budgets), "table_models": np.array(list(attacked)),
        "table_accuracy": accuracy,
    }


# ---------------------------------------------------------------------------
# 3. part objects under rotation
# ---------------------------------------------------------------------------


def _parts_data(cfg: DemoConfig, normals: bool) -> dict[str, np.ndarray]:
    """The objects, their part labels and categories (the built-in ``test`` split)."""
    from smoothing.datasets import SyntheticParts

    ds = SyntheticParts(length=cfg.n_clouds, split="test", seed=0, num_points=cfg.num_points,
                        normals=normals)
    items = [ds[i] for i in range(len(ds))]
    return {"points": torch.stack([s.points for s in items]).numpy(),
            "labels": torch.stack([s.labels for s in items]).numpy(),
            "categories": np.array([s.category for s in items])}


def _certify_rotation(out: Path, cfg: DemoConfig, seed: int, progress: bool,
                      store: _Store) -> dict[str, Any]:
    """SEGCERTIFY with :class:`samplers.RotationZ` on the objects, one run per sigma."""
    from smoothing.datasets import category_parts
    from smoothing.models import CategoryMasked, get_model_spec, load_model

    folder = out / "rotation"
    folder.mkdir(parents=True, exist_ok=True)
    spec = get_model_spec(cfg.rotation_model)
    normals = spec.input_layout == "points+normals"
    size = {"n_clouds": cfg.n_clouds, "num_points": cfg.num_points, "normals": normals,
            "data_seed": 0}
    data = store.get(folder / "data.npz", {"kind": "parts-data", **size},
                     lambda: _parts_data(cfg, normals))
    clouds = list(torch.from_numpy(data["points"]))
    base = load_model(cfg.rotation_model)
    # restricted to the object's category, as in the ShapeNet benchmark
    masked = [CategoryMasked(base, category_parts(int(c))).eval() for c in data["categories"]]
    store.get(folder / "base.npz", {"kind": "parts-base", "model": cfg.rotation_model, **size},
              lambda: _base_predictions(masked, clouds, 2))
    entry: dict[str, Any] = {"data": "rotation/data.npz", "base": "rotation/base.npz",
                             "model": cfg.rotation_model, "axis": cfg.rotation_axis, "runs": []}
    bar = _progress(len(cfg.rotation_sigmas) * len(clouds), "certify rotations", progress,
                    "certificate")
    for sigma in cfg.rotation_sigmas:
        sampler = RotationZ(sigma, axis=cfg.rotation_axis)

        def certifier_for(i: int, sampler: RotationZ = sampler) -> SegCertify:
            return SegCertify(masked[i], sampler, num_classes=spec.num_classes,
                              n0=cfg.rotation_n0, n=cfg.rotation_n, tau=cfg.rotation_taus[0],
                              alpha=cfg.rotation_alpha, correction="holm",
                              batch_size=cfg.rotation_batch_size)

        meta = {"kind": "rotation-certify", "seed": seed, "model": cfg.rotation_model,
                "axis": cfg.rotation_axis, "sigma": sigma, "n0": cfg.rotation_n0,
                "n": cfg.rotation_n, "alpha": cfg.rotation_alpha,
                "taus": list(cfg.rotation_taus), "batch_size": cfg.rotation_batch_size, **size}
        path = folder / f"cert_sigma{_tag(sigma)}.npz"
        arrays = store.get(
            path, meta,
            lambda f=certifier_for, s=sigma: _certify_items(
                f, clouds, cfg.rotation_taus, bar,
                keys=_run_keys(3, cfg.rotation_model, s, cfg.rotation_n), seed=seed),
            bar=bar, units=len(clouds))
        entry["runs"].append({"file": path.relative_to(out).as_posix(), "sigma": sigma,
                              "n0": cfg.rotation_n0, "n": cfg.rotation_n,
                              "alpha": cfg.rotation_alpha, "taus": list(cfg.rotation_taus),
                              "radius": arrays["radius"].tolist()})
    bar.close()
    return entry


# ---------------------------------------------------------------------------
# tables (from the saved files)
# ---------------------------------------------------------------------------


def _fmt(value: Any, spec: str) -> str:
    """A Markdown cell: ``-`` for missing; spec ``'pct'`` prints a fraction in percent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if spec == "pct":
        return f"{100 * value:.1f}"
    return format(value, spec) if spec else str(value)


def _write_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str, str]],
                 csv_path: Path, md_path: Path | None, title: str) -> str:
    """Write ``rows`` as CSV (all keys) and, with ``md_path``, a Markdown table."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                             for k, v in row.items()})
    lines = [f"**{title}**", "", "| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k), f) for k, _, f in columns) + " |")
    text = "\n".join(lines) + "\n"
    if md_path is not None:
        md_path.write_text(text)
    return text


def _metrics(preds: Iterable[np.ndarray], targets: Iterable[np.ndarray], num_classes: int
             ) -> SegmentationMetrics:
    m = SegmentationMetrics(num_classes)
    for p, t in zip(preds, targets, strict=True):
        m.update(p, t)
    return m


def _image_row(m: SegmentationMetrics, seconds: float) -> dict[str, Any]:
    return {"accuracy": m.accuracy, "miou": m.miou_per_image, "miou_dataset": m.miou_dataset,
            "abstain_rate": m.abstain_rate, "seconds_per_input": seconds}


def _streets_tables(out: Path, entry: dict[str, Any]) -> tuple[dict[str, Path], str]:
    data = np.load(out / entry["data"])
    targets = list(data["labels"])
    table, per_image, curve = [], [], []
    for name, file in entry["base"].items():
        base = np.load(out / file)
        kind = "non-robust model" if name == CLEAN_MODEL else "base model"
        m = _metrics(base["preds"], targets, 8)
        table.append({"model": name, "method": f"{kind}, no smoothing", "sigma": None,
                      "radius": None, "n0": None, "n": None, "tau": None,
                      **_image_row(m, float(base["seconds"].mean()))})
    shown = {tuple(p) for p in entry["table_taus"]}
    for run in entry["runs"]:
        saved = np.load(out / run["file"])
        for j, tau in enumerate(run["taus"]):
            secs = saved["time_sampling"] + saved["time_testing"][:, j]
            params = {"model": run["model"], "sigma": run["sigma"],
                      "radius": float(saved["radius"][j]), "n0": run["n0"], "n": run["n"],
                      "tau": tau}
            m = _metrics(saved["labels"][:, j], targets, 8)
            row = {**params, **_image_row(m, float(secs.mean()))}
            curve.append(row)
            if (run["n"], tau) in shown:
                table.append({"model": run["model"], "method": "SegCertify", **params,
                              **_image_row(m, float(secs.mean()))})
            for i, (lab, tgt) in enumerate(zip(saved["labels"][:, j], targets, strict=True)):
                mi = _metrics([lab], [tgt], 8)
                per_image.append({**params, "alpha": run["alpha"], "image": i,
                                  "num_components": mi.num_components,
                                  "num_correct": mi.num_correct,
                                  **_image_row(mi, float(secs[i]))})
    h = HEADERS
    cols = [("model", "model", ""), ("method", "", ""), ("sigma", h["sigma"], "g"),
            ("radius", h["radius"], ".3f"), ("n", h["n"], ""), ("tau", h["tau"], "g"),
            ("accuracy", h["accuracy"], ".3f"), ("miou", h["miou"], ".3f"),
            ("miou_dataset", h["miou_dataset"], ".3f"), ("abstain_rate", h["abstain"], "pct"),
            ("seconds_per_input", h["time"], ".2f")]
    title = (f"Table 1 analogue: {len(targets)} SyntheticStreets test scenes "
             f"{targets[0].shape[0]}x{targets[0].shape[1]}; SEGCERTIFY n0 = "
             f"{entry['runs'][0]['n0'] if entry['runs'] else '-'}, alpha = "
             f"{entry['runs'][0]['alpha'] if entry['runs'] else '-'}, Holm; "
             "% abstain = percentage of pixels abstained on; R = certified l2 radius")
    text = _write_table(table, cols, out / "streets_table.csv", out / "streets_table.md", title)
    _write_table(per_image, cols, out / "streets_per_image.csv", None, "")
    _write_table(curve, cols, out / "streets_curve.csv", None, "")
    paths = {k: out / f"streets_{k}.csv" for k in ("table", "per_image", "curve")}
    paths["table_md"] = out / "streets_table.md"
    if entry.get("attack"):
        text += "\n" + _attack_table(out, entry["attack"], len(targets))
        paths["attack"] = out / "streets_attack.csv"
        paths["attack_md"] = out / "streets_attack.md"
    return paths, text


def _attack_table(out: Path, file: str, num_images: int) -> str:
    a = np.load(out / file)
    rows = []
    for name, accs in zip(a["table_models"], a["table_accuracy"], strict=True):
        kind = "non-robust model" if str(name) == CLEAN_MODEL else "noise-trained base model"
        for eps, acc in zip(a["table_eps"], accs, strict=True):
            rows.append({"model": str(name), "kind": kind, "eps": float(eps),
                         "steps": int(a["steps"]), "accuracy": float(acc)})
    cols = [("model", "model", ""), ("kind", "", ""), ("eps", "PGD l2 budget ε", ".3f"),
            ("steps", "steps", ""), ("accuracy", "pixel acc. under attack", ".3f")]
    title = (f"l2 PGD on the base models without smoothing, {num_images} scenes; the first "
             f"budget is {float(a['eps']) / float(a['radius']):.2f} x the certified radius "
             f"R = {float(a['radius']):.3f} (sigma = {float(a['sigma']):g}, "
             f"tau = {float(a['tau']):g}). Image 0 attacked against {a['model']} and then "
             f"certified: {int(a['changed_certified'])} pixels certified on both the clean "
             "and the attacked input changed label.")
    return _write_table(rows, cols, out / "streets_attack.csv", out / "streets_attack.md",
                        title)


def _rotation_tables(out: Path, entry: dict[str, Any]) -> tuple[dict[str, Path], str]:
    data = np.load(out / entry["data"])
    targets = list(data["labels"])
    base = np.load(out / entry["base"])
    m = _metrics(base["preds"], targets, 50)
    table = [{"model": entry["model"], "method": "base model, no smoothing", "axis": None,
              "sigma": None, "sigma_deg": None, "radius": None, "radius_deg": None,
              "n0": None, "n": None, "tau": None, "alpha": None, "accuracy": m.accuracy,
              "abstain_rate": 0.0, "seconds_per_input": float(base["seconds"].mean())}]
    per_cloud = []
    for run in entry["runs"]:
        saved = np.load(out / run["file"])
        for j, tau in enumerate(run["taus"]):
            secs = saved["time_sampling"] + saved["time_testing"][:, j]
            radius = float(saved["radius"][j])
            params = {"model": entry["model"], "axis": entry["axis"], "sigma": run["sigma"],
                      "sigma_deg": math.degrees(run["sigma"]), "radius": radius,
                      "radius_deg": math.degrees(radius), "n0": run["n0"], "n": run["n"],
                      "tau": tau, "alpha": run["alpha"]}
            m = _metrics(saved["labels"][:, j], targets, 50)
            table.append({**params, "method": "SegCertify", "accuracy": m.accuracy,
                          "abstain_rate": m.abstain_rate,
                          "seconds_per_input": float(secs.mean())})
            for i, (lab, tgt) in enumerate(zip(saved["labels"][:, j], targets, strict=True)):
                mi = _metrics([lab], [tgt], 50)
                per_cloud.append({**params, "cloud": i, "category": int(data["categories"][i]),
                                  "num_components": mi.num_components,
                                  "num_correct": mi.num_correct,
                                  "accuracy": mi.accuracy, "abstain_rate": mi.abstain_rate,
                                  "seconds_per_input": float(secs[i])})
    h = HEADERS
    cols = [("method", "", ""), ("sigma", f"{h['sigma']} (rad)", ".4g"),
            ("sigma_deg", f"{h['sigma']} (°)", ".2f"), ("tau", h["tau"], "g"),
            ("n0", h["n0"], ""), ("n", h["n"], ""), ("radius", f"{h['radius']} (rad)", ".4f"),
            ("radius_deg", f"{h['radius']} (°)", ".2f"), ("accuracy", h["accuracy"], ".3f"),
            ("abstain_rate", h["abstain"], "pct"), ("seconds_per_input", h["time"], ".2f")]
    alpha = entry["runs"][0]["alpha"] if entry["runs"] else "-"
    title = (f"Table 7 analogue: rotation about the {entry['axis']} axis, "
             f"{len(targets)} SyntheticParts test objects ({targets[0].shape[0]} points), "
             f"model {entry['model']} restricted to the object's category; alpha = {alpha}, "
             "Holm; % abstain = percentage of points abstained on; acc. = certified "
             "accuracy; R = certified rotation radius")
    text = _write_table(table, cols, out / "rotation_table.csv", out / "rotation_table.md",
                        title)
    _write_table(per_cloud, cols, out / "rotation_per_cloud.csv", None, "")
    _write_table(table[1:], cols, out / "rotation_curve.csv", None, "")
    paths = {k: out / f"rotation_{k}.csv" for k in ("table", "per_cloud", "curve")}
    paths["table_md"] = out / "rotation_table.md"
    return paths, text


def _read_manifest(out_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    out = Path(out_dir)
    path = out / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"'{path}' does not exist: run `run_demo` into '{out}' first.")
    return out, json.loads(path.read_text())


def write_tables(out_dir: str | os.PathLike[str], *, echo: bool = True) -> dict[str, Path]:
    """Rebuild the CSV and Markdown tables of a demo folder from its saved ``.npz`` files.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`run_demo` (it holds ``manifest.json``).
    echo : bool, default True
        Print the Markdown tables.

    Returns
    -------
    dict of str to pathlib.Path
        The files written, e.g. ``'streets_table'``, ``'rotation_table_md'``.

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` holds no ``manifest.json``.
    """
    out, manifest = _read_manifest(out_dir)
    paths: dict[str, Path] = {}
    for key, build in (("streets", _streets_tables), ("rotation", _rotation_tables)):
        if manifest.get(key):
            written, text = build(out, manifest[key])
            paths.update({f"{key}_{k}": p for k, p in written.items()})
            if echo:
                print("\n" + text)
    return paths


# ---------------------------------------------------------------------------
# figures (from the saved files)
# ---------------------------------------------------------------------------


def draw_figures(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Redraw the demo's figures from its saved files.

    The accuracy-vs-radius figures read the ``*_curve.csv`` tables;
    :func:`write_tables` is run first if they are missing.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`run_demo`.

    Returns
    -------
    dict of str to pathlib.Path
        The PNG files written under ``out_dir/figures``: ``'fig1'`` (with an
        attack), ``'tau_panel'``, ``'cert_acc_streets'``, ``'cert_acc_rotation'``.

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` holds no ``manifest.json``.
    """
    from smoothing import figures

    out, manifest = _read_manifest(out_dir)
    if any(manifest.get(k) and not (out / f"{k}_curve.csv").is_file()
           for k in ("streets", "rotation")):
        write_tables(out, echo=False)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    streets = manifest.get("streets")
    if streets:
        data = np.load(out / streets["data"])
        names = [str(c) for c in data["classes"]]
        if streets.get("attack"):
            a = np.load(out / streets["attack"])
            paths["fig1"] = fig_dir / "fig1_streets.png"
            figures.figure1_panel(
                a["image"], a["label"], a["pred_adv"], a["certified"], data["palette"],
                eps=float(a["eps"]), radius=float(a["radius"]),
                extra=[(f"(e) {a['model']},\nPGD on it, same budget",
                        a["pred_robust_adv"])],
                class_names=names,
                title=(f"(c) non-robust {a['clean_model']}; (d) SEGCERTIFY with "
                       f"{a['model']}, σ={float(a['sigma']):g}, τ={float(a['tau']):g}, "
                       f"n={int(a['n'])}"),
                out=paths["fig1"])
        if any(r["model"] != CLEAN_MODEL for r in streets["runs"]):
            paths["tau_panel"] = fig_dir / "streets_tau.png"
            _tau_panel(out, streets, data, names, paths["tau_panel"])
        paths["cert_acc_streets"] = fig_dir / "cert_acc_radius_streets.png"
        figures.plot_certified_accuracy_vs_radius(
            out / "streets_curve.csv", xlabel="l2 radius R = σ Φ⁻¹(τ) (pixel values in [0, 1])",
            title="SyntheticStreets: certified pixel accuracy vs radius (numbers: τ)",
            out=paths["cert_acc_streets"])
    if manifest.get("rotation"):
        paths["cert_acc_rotation"] = fig_dir / "cert_acc_radius_rotation.png"
        figures.plot_certified_accuracy_vs_radius(
            out / "rotation_curve.csv", group_keys=("sigma_deg", "n"), radius_key="radius_deg",
            xlabel=f"rotation radius about the {manifest['rotation']['axis']} axis (degrees)",
            title="SyntheticParts under rotation: certified point accuracy (numbers: τ)",
            out=paths["cert_acc_rotation"])
    return paths


def _tau_panel(out: Path, streets: dict[str, Any], data: Any, names: list[str],
               path: Path) -> Any:
    """Image 0: input, truth, base model, and the certified maps of the table's taus."""
    from smoothing import figures

    runs = [r for r in streets["runs"] if r["model"] != CLEAN_MODEL]
    model = runs[0]["model"]
    base = np.load(out / streets["base"][model])
    panels = [("ground truth", data["labels"][0]), (f"{model}, no smoothing", base["preds"][0])]
    for n, tau in streets["table_taus"]:
        for run in runs:
            if run["model"] == model and run["n"] == n and tau in run["taus"]:
                saved = np.load(out / run["file"])
                j = run["taus"].index(tau)
                lab = saved["labels"][0, j]
                frac = float((lab == ABSTAIN).mean())
                panels.append((f"SEGCERTIFY σ={run['sigma']:g}, n={n}, τ={tau:g}\n"
                               f"R={saved['radius'][j]:.3f}, abstain {frac:.1%}", lab))
    return figures.segmentation_panel(data["images"][0], panels, data["palette"],
                                      class_names=names, out=path)


# ---------------------------------------------------------------------------
# the demo
# ---------------------------------------------------------------------------

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


def _check_config(cfg: DemoConfig) -> None:
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


def _resolve_config(quick: bool, config: DemoConfig | None,
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
    _check_config(cfg)
    return cfg


def run_demo(out_dir: str | os.PathLike[str], *, quick: bool = True, seed: int = 0,
             progress: bool = True, config: DemoConfig | None = None,
             **overrides: Any) -> dict[str, Path]:
    """Run the end-to-end demonstration on built-in data and write its results.

    Parameters
    ----------
    out_dir : path
        Output folder (created); see the module docstring for its layout. A
        folder of an earlier, interrupted or finished run is resumed: every
        result file already there and complete for the same settings is reused.
    quick : bool, default True
        :data:`QUICK` settings (about a minute on 2 CPU cores) rather than
        :data:`FULL` (about 20 minutes).
    seed : int, default 0
        Root seed of all Monte-Carlo noise and attacks; the same seed gives the
        same numbers (times aside).
    progress : bool, default True
        Show tqdm progress bars.
    config : DemoConfig, optional
        Settings to use instead of the preset chosen by ``quick``.
    **overrides
        Fields of :class:`DemoConfig` to replace, e.g. ``n_images=2``.

    Returns
    -------
    dict of str to pathlib.Path
        Every file written, by name (``'manifest'``, ``'streets_table'``,
        ``'streets_table_md'``, ``'rotation_table'``, ``'fig1'``, ...).

    Raises
    ------
    ValueError
        If ``seed`` is negative, a model name is unknown or of the wrong kind, a
        setting is out of range, or ``attack_run`` / ``table_taus`` are not among
        ``image_runs`` and ``taus``.
    TypeError
        If ``seed`` is not an integer, ``config`` is not a :class:`DemoConfig`, or
        ``overrides`` names no field of :class:`DemoConfig`.

    Notes
    -----
    The computation runs on the CPU with torch's current number of threads.
    Results are written as ``.npz`` first (atomically: a temporary file, then a
    rename); tables and figures are then built from those files by
    :func:`write_tables` and :func:`draw_figures`.

    **Resuming.** Every ``.npz`` stores the settings it was computed with. A
    re-run into the same folder reuses each file whose settings match and
    recomputes only the missing, damaged or differently-configured ones, so a
    killed demo loses at most the run it was in. ``manifest.json`` lists them
    under ``files_computed`` and ``files_reused``, and its ``history`` keeps the
    timings of every finished invocation. The reused files keep their original
    timings. To start afresh, use a new folder or delete the old one.

    Examples
    --------
    >>> from smoothing.runs.demo import run_demo
    >>> paths = run_demo("results", n_images=2)  # doctest: +SKIP
    >>> paths["streets_table_md"].read_text()  # doctest: +SKIP
    """
    seed = S.check_int(seed, "seed", low=0)
    cfg = _resolve_config(quick, config, overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = _Store(out)
    timings: dict[str, float] = {}
    manifest: dict[str, Any] = {
        "seed": seed, "preset": None if config or overrides else
        ("quick" if quick else "full"), "config": asdict(cfg),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    history = _previous_history(out)
    t_start = time.perf_counter()
    if cfg.power_args is not None:
        t0 = time.perf_counter()
        manifest["power_computed"] = _run_power(out / "power", cfg, seed, progress)
        timings["power"] = time.perf_counter() - t0
        manifest["power"] = "power/power_curves.csv"
    t0 = time.perf_counter()
    manifest["streets"] = _certify_streets(out, cfg, seed, progress, store)
    timings["streets"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    manifest["rotation"] = _certify_rotation(out, cfg, seed, progress, store)
    timings["rotation"] = time.perf_counter() - t0
    manifest["files_computed"], manifest["files_reused"] = store.computed, store.reused
    manifest["timings_s"] = timings
    _write_manifest(out, manifest)
    paths = {"manifest": out / "manifest.json"}
    if cfg.power_args is not None:
        paths["power_csv"] = out / "power" / "power_curves.csv"
    t0 = time.perf_counter()
    paths.update(write_tables(out))
    paths.update(draw_figures(out))
    timings["tables_and_figures"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    manifest["history"] = [*history, {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "timings_s": timings,
        "torch_threads": manifest["torch_threads"], "files_computed": len(store.computed),
        "files_reused": len(store.reused)}]
    _write_manifest(out, manifest)
    reused = f"; {len(store.reused)} result files reused" if store.reused else ""
    print(f"demo done in {timings['total']:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in timings.items() if k != 'total')}"
          f"{reused}); results in {out}")
    return paths


def _previous_history(out: Path) -> list[dict[str, Any]]:
    """The ``history`` of an earlier ``manifest.json`` in ``out`` (empty if none)."""
    try:
        history = json.loads((out / "manifest.json").read_text()).get("history", [])
    except (OSError, ValueError, AttributeError):
        return []
    return history if isinstance(history, list) else []


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1).encode(),
                 tag=f".{os.getpid()}")
