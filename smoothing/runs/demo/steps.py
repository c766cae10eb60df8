"""The computing steps of the demo: the power study, the street scenes (certification and
attack) and the part objects under rotation. Each saves its arrays as ``.npz`` files
(:class:`ResultFiles`: written atomically with :func:`smoothing._io.write_atomic`,
reused when complete and computed with the same settings); tables and figures are
built from those files afterwards (:mod:`.tables`, :mod:`.figures`).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samplers import GaussianL2, RotationZ
from smoothing._io import temp_tag, write_atomic
from smoothing._sampling import ABSTAIN
from smoothing.runs.demo.config import CLEAN_MODEL, DemoConfig
from smoothing.runs.demo.tables import metrics
from smoothing.segcertify import SegCertify

__all__ = ["FORMAT_VERSION", "ResultFiles", "certify_rotation", "certify_streets", "run_power"]


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
    write_atomic(path, buf.getvalue(), tag=temp_tag())


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


class ResultFiles:
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


def run_power(out: Path, cfg: DemoConfig, seed: int, progress: bool) -> bool:
    """Run ``simulations/power_curves.py`` into ``out`` unless it finished there before.

    A marker ``demo_power.json`` (written atomically after the script returns)
    records the arguments; with the same arguments and ``power_curves.csv``
    present the study is not redone. Returns whether it ran.
    """
    from smoothing.runs.power import main as power_study

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
    power_study(argv)
    write_atomic(marker, json.dumps(done).encode(), tag=temp_tag())
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


def certify_streets(out: Path, cfg: DemoConfig, seed: int, progress: bool,
                     store: ResultFiles) -> dict[str, Any]:
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
                    models: dict[str, Any], entry: dict[str, Any], store: ResultFiles,
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
            accuracy[a, b] = metrics(list(pred), list(data["labels"]), 8).accuracy
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


def certify_rotation(out: Path, cfg: DemoConfig, seed: int, progress: bool,
                      store: ResultFiles) -> dict[str, Any]:
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
