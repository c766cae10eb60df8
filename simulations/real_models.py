"""Certify real things: a pretrained network on a real photo, a model on real microscopy.

Two experiments on files fetched from the package registry (``python -m smoothing.real
fetch``; nothing is downloaded here):

``selfie``
    MediaPipe's selfie segmentation network (TFLite, run by LiteRT; a plain callable,
    not a torch module) certified by SEGCERTIFY on ``skimage.data.astronaut()``
    (resized to the network's 256 x 256). No ground truth exists: the reference is the
    network's own clean mask.
``nuclei``
    A small U-Net trained with Gaussian noise augmentation on the left half of the
    stardist 0.9.2 nuclei image (2018 Data Science Bowl) and certified on the held-out
    right half (512 x 256 pixels, nucleus vs background), next to the classical Otsu
    threshold -- clean, and smoothed by the same SEGCERTIFY run.

Outputs (in ``--out``, default ``results/real``): ``selfie_table.csv/.md``,
``nuclei_table.csv/.md`` (tidy, one row per run), ``selfie_labels.npz`` and
``nuclei_labels.npz`` (the label maps the panels are drawn from) and
``selfie_panel.png``/``nuclei_panel.png``::

    python -m smoothing.real fetch                    # once: the registry -> the cache
    python simulations/real_models.py                 # full, about 4 min on 1 CPU core
    python simulations/real_models.py --quick --out /tmp/real   # about 20 s
    python simulations/real_models.py --plot-only     # redraw the panels from the .npz

Settings (the paper's Table 1 for ``n0``, ``alpha`` and the correction): ``n0 = 10``,
``alpha = 0.001``, Holm; ``n`` in {100, 500}; ``tau`` in {0.75, 0.9}; selfie
``sigma`` in {0.05, 0.12, 0.25}, nuclei ``sigma`` in {0.12, 0.25} with the U-Net
trained at the ``sigma`` it is certified at. Seeds: every (experiment, sigma, n)
draws its noise from ``SeedSequence(seed, spawn_key=...)``. The ``tau`` values of one
(sigma, n) share ONE set of samples (:func:`certify_taus`: the counts are tested again
at every ``tau``, which is what ``SegCertify.certify`` returns for that ``tau`` with the
same seed), so they differ only in the test, and ``seconds`` (sampling + test) counts
that shared sampling in every row. The U-Net and Otsu see the same noise.
Exit status 2 when an asset or an optional dependency is missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
except ModuleNotFoundError:  # pragma: no cover - depends on the environment
    torch = None  # type: ignore[assignment]

SELFIE_COLUMNS = (
    "sigma", "tau", "n0", "n", "alpha", "correction", "radius", "threshold", "certified",
    "abstain",
    "agree_clean", "certified_wrong", "person_recall", "noise_keep", "seconds",
    "time_sampling", "time_testing", "seed",
)
NUCLEI_COLUMNS = (
    "method", "train_sigma", "sigma", "tau", "n0", "n", "alpha", "correction", "radius",
    "threshold", "accuracy", "iou", "cert_accuracy", "cert_iou", "abstain", "noise_keep", "seconds",
    "time_sampling", "time_testing", "seed",
)
# stable integer codes for the seed tree
_SELFIE, _NUCLEI, _TRAIN = 1, 2, 3
SELFIE_PALETTE = np.array([[70, 70, 70], [220, 60, 60]], dtype=np.uint8)
NUCLEI_PALETTE = np.array([[60, 60, 60], [90, 200, 90]], dtype=np.uint8)


@dataclass(frozen=True)
class Settings:
    """Everything that defines a run (the full study or ``--quick``)."""

    selfie_sigmas: tuple[float, ...] = (0.05, 0.12, 0.25)
    nuclei_sigmas: tuple[float, ...] = (0.12, 0.25)
    taus: tuple[float, ...] = (0.75, 0.9)
    ns: tuple[int, ...] = (100, 500)
    n0: int = 10
    alpha: float = 0.001
    correction: str = "holm"
    selfie_batch: int = 20
    nuclei_batch: int = 10
    train_steps: int = 600

    @classmethod
    def quick(cls) -> Settings:
        return cls(selfie_sigmas=(0.12,), nuclei_sigmas=(0.25,), taus=(0.75,), ns=(100,),
                   train_steps=60)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _seed(seed: int, *key: int) -> int:
    """A 63-bit seed for one task of the seed tree."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noise_keep(guesses: torch.Tensor, counts: torch.Tensor, n: int,
               reference: torch.Tensor) -> float:
    """Mean over pixels of the estimated P(noisy prediction = ``reference``), 2 classes.

    From the ``n``-phase counts: ``counts / n`` where the guess is the reference
    label, ``1 - counts / n`` where it is not (exact for binary segmentation).
    """
    freq = counts.double() / n
    keep = torch.where(guesses == reference, freq, 1.0 - freq)
    return float(keep.mean())


@dataclass(frozen=True)
class TauResult:
    """The certificate of one ``tau`` (see :func:`certify_taus`)."""

    tau: float
    labels: torch.Tensor  # (H, W) int64, ABSTAIN = -1
    radius: float
    time_sampling: float  # of the shared samples
    time_testing: float  # of this tau's test
    threshold: int  # certified where counts >= threshold (n + 1: none can be)
    guesses: torch.Tensor
    counts: torch.Tensor


def certify_taus(model: Any, sigma: float, x: torch.Tensor, taus: Sequence[float], *,
                 n0: int, n: int, alpha: float, correction: str, batch_size: int,
                 seed: int) -> list[TauResult]:
    """SEGCERTIFY at every ``tau`` from ONE set of ``n0 + n`` samples.

    The first ``tau`` runs :meth:`smoothing.SegCertify.certify`; the others test the
    same counts again with :meth:`smoothing.SegCertify.retest` -- exactly what
    ``certify`` returns for that ``tau`` with the same seed (common random numbers),
    without drawing the samples again. Each ``tau``'s certificate holds with
    probability ``1 - alpha`` on its own (not simultaneously over the ``tau`` values).
    """
    from samplers import GaussianL2
    from smoothing import SegCertify

    certifier = SegCertify(model, GaussianL2(sigma), num_classes=2, n0=n0, n=n, tau=taus[0],
                           alpha=alpha, correction=correction, batch_size=batch_size)
    cert = certifier.certify(x, generator=_generator(seed))
    out = []
    for tau in taus:
        c = cert if tau == taus[0] else certifier.retest(cert, tau)
        out.append(TauResult(tau, c.labels, c.radius, c.time_sampling, c.time_testing,
                             c.threshold, c.guesses, c.counts))
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 100 else f"{value:.4f}"
    return str(value)


def write_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], stem: Path, *,
                markdown_columns: Sequence[str] | None = None, title: str = "") -> None:
    """Write ``rows`` to ``stem.csv`` (all ``columns``) and ``stem.md`` (a pipe table)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _fmt(row.get(c, "")) for c in columns})
    cols = list(markdown_columns or columns)
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---:" for _ in cols) + "|")
    lines.extend("| " + " | ".join(_fmt(row.get(c, "")) for c in cols) + " |" for row in rows)
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# 1. MediaPipe selfie segmentation on the astronaut
# ---------------------------------------------------------------------------
def run_selfie(settings: Settings, *, seed: int, cache: str | None, threads: int,
               out: Path, progress: bool = True) -> list[dict[str, Any]]:
    """Certify the selfie network on the astronaut photo; write the table and labels."""
    from smoothing import ABSTAIN
    from smoothing.real import SelfieSegmenter, asset_path, load_astronaut

    model = SelfieSegmenter(asset_path("selfie_segmentation", cache=cache),
                            num_threads=threads, max_batch=settings.selfie_batch)
    x = load_astronaut(256)
    with torch.inference_mode():
        clean = model(x[None]).argmax(1)[0]
    person = clean == 1
    runs = [(i, s, n) for i, s in enumerate(settings.selfie_sigmas) for n in settings.ns]
    rows, maps = [], {"image": x.numpy(), "clean": clean.numpy()}
    bar = _tqdm(runs, "selfie", progress)
    for i, sigma, n in bar:
        bar.set_postfix(sigma=sigma, n=n)
        run_seed = _seed(seed, _SELFIE, i, n)
        for res in certify_taus(model, sigma, x, settings.taus, n0=settings.n0, n=n,
                                alpha=settings.alpha, correction=settings.correction,
                                batch_size=settings.selfie_batch, seed=run_seed):
            lab, certified = res.labels, res.labels != ABSTAIN
            rows.append({
                "sigma": sigma, "tau": res.tau, "n0": settings.n0, "n": n,
                "alpha": settings.alpha, "correction": settings.correction,
                "radius": res.radius, "threshold": res.threshold,
                "certified": float(certified.double().mean()),
                "abstain": float((~certified).double().mean()),
                "agree_clean": float((lab == clean).double().mean()),
                "certified_wrong": float((certified & (lab != clean)).double().mean()),
                "person_recall": float((lab[person] == 1).double().mean()),
                "noise_keep": noise_keep(res.guesses, res.counts, n, clean),
                "seconds": res.time_sampling + res.time_testing,
                "time_sampling": res.time_sampling, "time_testing": res.time_testing,
                "seed": run_seed,
            })
            maps[f"cert_sigma{sigma:g}_tau{res.tau:g}_n{n}"] = lab.numpy()
    write_table(rows, SELFIE_COLUMNS, out / "selfie_table",
                markdown_columns=("sigma", "tau", "n", "radius", "threshold", "certified",
                                  "agree_clean",
                                  "certified_wrong", "person_recall", "noise_keep",
                                  "seconds"),
                title="MediaPipe selfie segmentation, skimage astronaut (256 x 256), "
                      f"n0 = {settings.n0}, alpha = {settings.alpha:g}, "
                      f"{settings.correction}")
    np.savez_compressed(out / "selfie_labels.npz", **maps)
    return rows


def draw_selfie_panel(npz: Path, out: Path) -> None:
    """Fig. 1-style panel: image, clean mask, certified masks (abstain white)."""
    from smoothing.figures import segmentation_panel

    data = np.load(npz)
    certs = _pick_certificates([k for k in data.files if k.startswith("cert_")])
    panels = [("network's clean mask", data["clean"])]
    panels += [(_panel_title(k), data[k]) for k in certs]
    fig = segmentation_panel(data["image"], panels, SELFIE_PALETTE,
                             class_names=("background", "person"),
                             title="MediaPipe selfie segmentation certified by SEGCERTIFY "
                                   "(Gaussian noise, l2 radius R)",
                             out=out, panel_width=2.6)
    _close(fig)


# ---------------------------------------------------------------------------
# 2. nuclei microscopy
# ---------------------------------------------------------------------------
def nuclei_halves(cache: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train image, train labels, test image, test labels) of the nuclei image.

    The spatial split of every nuclei experiment: the left half (512 x 256) for
    training, the right half held out; the intensities are normalised by the
    percentiles of the left half only, the labels are nucleus (1) vs background (0).
    """
    from smoothing.real import load_nuclei, normalize_percentile, split_columns

    data = load_nuclei(cache=cache)
    raw_train, _ = split_columns(data.image)
    image = normalize_percentile(data.image, reference=raw_train)  # percentiles: train part
    train_x, test_x = split_columns(image)
    train_y, test_y = split_columns(data.foreground)
    return train_x, train_y, test_x, test_y


def run_nuclei(settings: Settings, *, seed: int, cache: str | None, out: Path,
               progress: bool = True) -> list[dict[str, Any]]:
    """Train on the left half, certify U-Net and Otsu on the right half; write outputs."""
    from smoothing.real import (
        OtsuSegmenter,
        TrainConfig,
        otsu_segmentation,
        predict_clean,
        segmentation_scores,
        train_nuclei_model,
    )

    train_x, train_y, test_x, test_y = nuclei_halves(cache)
    x = torch.from_numpy(np.ascontiguousarray(test_x))[None]  # (1, H, W)
    otsu_clean = otsu_segmentation(test_x)
    otsu_base = segmentation_scores(otsu_clean, test_y)
    maps: dict[str, np.ndarray] = {"image": test_x, "truth": test_y, "otsu": otsu_clean}
    rows: list[dict[str, Any]] = [{
        "method": "otsu", "train_sigma": float("nan"), "sigma": 0.0, "tau": float("nan"),
        "accuracy": otsu_base["accuracy"], "iou": otsu_base["iou"],
    }]
    for i, sigma in enumerate(settings.nuclei_sigmas):
        cfg = TrainConfig(sigma=sigma, steps=settings.train_steps,
                          seed=_seed(seed, _TRAIN, i) % 2**31)
        model = train_nuclei_model(train_x, train_y, cfg, progress=progress)
        clean = predict_clean(model, test_x)
        base = segmentation_scores(clean, test_y)
        maps[f"unet_sigma{sigma:g}"] = clean
        rows.append({"method": "unet", "train_sigma": sigma, "sigma": 0.0,
                     "tau": float("nan"), "accuracy": base["accuracy"], "iou": base["iou"],
                     "seconds": model.metadata["train_seconds"], "seed": cfg.seed})
        runs = [(name, m, b, n)
                for name, m, b in (("unet", model, base), ("otsu", OtsuSegmenter(), otsu_base))
                for n in settings.ns]
        bar = _tqdm(runs, f"nuclei sigma={sigma:g}", progress)
        for name, m, b, n in bar:
            bar.set_postfix(method=name, n=n)
            run_seed = _seed(seed, _NUCLEI, i, n)  # U-Net and Otsu see the same noise
            ref = torch.from_numpy(clean if name == "unet" else otsu_clean)
            for res in certify_taus(m, sigma, x, settings.taus, n0=settings.n0, n=n,
                                    alpha=settings.alpha, correction=settings.correction,
                                    batch_size=settings.nuclei_batch, seed=run_seed):
                scores = segmentation_scores(res.labels, test_y)
                rows.append({
                    "method": name, "train_sigma": sigma if name == "unet" else float("nan"),
                    "sigma": sigma, "tau": res.tau, "n0": settings.n0, "n": n,
                    "alpha": settings.alpha, "correction": settings.correction,
                    "radius": res.radius, "threshold": res.threshold,
                    "accuracy": b["accuracy"], "iou": b["iou"],
                    "cert_accuracy": scores["accuracy"], "cert_iou": scores["iou"],
                    "abstain": scores["abstain"],
                    "noise_keep": noise_keep(res.guesses, res.counts, n, ref),
                    "seconds": res.time_sampling + res.time_testing,
                    "time_sampling": res.time_sampling, "time_testing": res.time_testing,
                    "seed": run_seed,
                })
                maps[f"cert_{name}_sigma{sigma:g}_tau{res.tau:g}_n{n}"] = res.labels.numpy()
    write_table(rows, NUCLEI_COLUMNS, out / "nuclei_table",
                markdown_columns=("method", "train_sigma", "sigma", "tau", "n", "radius",
                                  "threshold", "accuracy", "iou", "cert_accuracy",
                                  "cert_iou", "abstain", "seconds"),
                title="Nuclei (stardist img2d, held-out right half 512 x 256), "
                      f"n0 = {settings.n0}, alpha = {settings.alpha:g}, "
                      f"{settings.correction}; accuracy/iou: clean base model")
    np.savez_compressed(out / "nuclei_labels.npz", **maps)
    return rows


def draw_nuclei_panel(npz: Path, out: Path) -> None:
    """Image, ground truth, Otsu, the U-Net, certified U-Net and Otsu (abstain white)."""
    from smoothing.figures import segmentation_panel

    data = np.load(npz)
    unets = sorted(k for k in data.files if k.startswith("unet_sigma"))
    certs = _pick_certificates([k for k in data.files if k.startswith("cert_unet")])
    otsu_certs = [k.replace("cert_unet", "cert_otsu") for k in certs[-1:]]
    otsu_certs = [k for k in otsu_certs if k in data.files]
    panels = [("ground truth", data["truth"]),
              ("Otsu threshold\n(clean)", data["otsu"])]
    panels += [(f"U-Net trained at\n$\\sigma$={k[len('unet_sigma'):]} (clean)", data[k])
               for k in unets[-1:]]
    panels += [(_panel_title(k, "U-Net"), data[k]) for k in certs]
    panels += [(_panel_title(k, "Otsu"), data[k]) for k in otsu_certs]
    image = np.repeat(np.sqrt(np.asarray(data["image"]))[None], 3, axis=0)  # brighter
    fig = segmentation_panel(image, panels, NUCLEI_PALETTE,
                             class_names=("background", "nucleus"),
                             title="Nuclei, held-out right half: clean and SEGCERTIFY "
                                   "certified segmentations (abstain white)",
                             out=None, panel_width=2.1)
    fig.axes[0].set_title("input (held out)\n(square-root display)", fontsize=9)
    fig.savefig(out, dpi=110)
    _close(fig)


# ---------------------------------------------------------------------------
# plumbing
# ---------------------------------------------------------------------------
def _pick_certificates(keys: Sequence[str]) -> list[str]:
    """The largest-``n`` certificate of every sigma at the smallest ``tau``."""
    parsed = {k: _parse_key(k) for k in keys}
    if not parsed:
        return []
    n_max = max(v[2] for v in parsed.values())
    tau_min = min(v[1] for v in parsed.values())
    chosen = [k for k, v in parsed.items() if v[2] == n_max and v[1] == tau_min]
    return sorted(chosen, key=lambda k: parsed[k][0])


def _parse_key(key: str) -> tuple[float, float, int]:
    """``'cert_..._sigma0.12_tau0.75_n500'`` -> (0.12, 0.75, 500)."""
    parts = key.split("_")
    sigma = float(next(p for p in parts if p.startswith("sigma"))[5:])
    tau = float(next(p for p in parts if p.startswith("tau"))[3:])
    n = int(next(p for p in parts if p.startswith("n") and p[1:].isdigit())[1:])
    return sigma, tau, n


def _panel_title(key: str, prefix: str = "SEGCERTIFY") -> str:
    from scipy.stats import norm

    sigma, tau, n = _parse_key(key)
    radius = sigma * norm.ppf(tau)
    return (f"{prefix}, certified\n$\\sigma$={sigma:g}, $\\tau$={tau:g}, n={n}\n"
            f"radius R = {radius:.3f}")


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _tqdm(items: Sequence[Any], desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not enabled)


def _missing(experiments: Sequence[str], cache: str | None) -> str | None:
    """A message naming what is missing and how to get it, or ``None``."""
    deps = {"selfie": ("ai_edge_litert", "skimage"), "nuclei": ("tifffile", "skimage")}
    import importlib.util

    absent = sorted({m for e in experiments for m in deps[e]
                     if importlib.util.find_spec(m) is None})
    if torch is None:
        absent.insert(0, "torch")
    if absent:
        return (f"missing Python packages: {', '.join(absent)}; install them with "
                "`pip install 'segcertify[real,plot]'`.")
    from smoothing.real import FETCH_COMMAND, missing_assets

    names = {"selfie": ["selfie_segmentation"], "nuclei": ["nuclei_image", "nuclei_mask"]}
    missing = missing_assets([a for e in experiments for a in names[e]], cache=cache)
    if missing:
        cmd = FETCH_COMMAND + ("" if cache is None else f" --cache {cache}")
        return (f"missing assets: {', '.join(missing)}. Fetch them once from the package "
                f"registry (pip download, about 40 MB of wheels) with:\n    {cmd}")
    return None


def _stamp(settings: Settings, seed: int) -> dict[str, Any]:
    return {"settings": json.loads(json.dumps(asdict(settings))), "seed": seed}


def _finished(out: Path, experiment: str, stamp: dict[str, Any]) -> bool:
    """Whether ``experiment`` already finished in ``out`` with these settings and seed."""
    marker = out / f"{experiment}_done.json"
    files = [out / f"{experiment}_labels.npz", out / f"{experiment}_table.csv",
             out / f"{experiment}_table.md"]
    try:
        return json.loads(marker.read_text()) == stamp and all(f.is_file() for f in files)
    except (OSError, ValueError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2: an asset or a dependency is missing)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", default="results/real", help="output directory")
    parser.add_argument("--quick", action="store_true",
                        help="one small setting per experiment (< 1 min)")
    parser.add_argument("--only", choices=("selfie", "nuclei"), nargs="+",
                        default=["selfie", "nuclei"], help="experiments to run")
    parser.add_argument("--seed", type=int, default=0, help="root of the seed tree")
    parser.add_argument("--cache", default=None,
                        help="asset cache (default: $SEGCERTIFY_CACHE/real or "
                             "~/.cache/segcertify/real)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch and LiteRT (default 1: on a shared "
                             "machine more threads spin and slow everything down)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the panels from the .npz files in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--fresh", action="store_true",
                        help="rerun experiments that already finished in --out")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}.")
    out = Path(args.out)
    experiments = list(dict.fromkeys(args.only))
    drawers = {"selfie": draw_selfie_panel, "nuclei": draw_nuclei_panel}
    if args.plot_only:
        for e in experiments:
            npz = out / f"{e}_labels.npz"
            if not npz.is_file():
                print(f"error: {npz} does not exist; run without --plot-only first.",
                      file=sys.stderr)
                return 2
            drawers[e](npz, out / f"{e}_panel.png")
            print(f"wrote {out / f'{e}_panel.png'}")
        return 0
    problem = _missing(experiments, args.cache)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    settings = Settings.quick() if args.quick else Settings()
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    t0 = time.perf_counter()
    stamp = _stamp(settings, args.seed)
    runners = {
        "selfie": lambda: run_selfie(settings, seed=args.seed, cache=args.cache,
                                     threads=args.threads, out=out, progress=progress),
        "nuclei": lambda: run_nuclei(settings, seed=args.seed, cache=args.cache, out=out,
                                     progress=progress),
    }
    for e in experiments:  # finished experiments are kept: a killed run resumes
        if not args.fresh and _finished(out, e, stamp):
            print(f"{e}: finished in {out} with these settings, reused (--fresh reruns it)")
            continue
        (out / f"{e}_done.json").unlink(missing_ok=True)
        runners[e]()
        (out / f"{e}_done.json").write_text(json.dumps(stamp))
    for e in experiments:
        drawers[e](out / f"{e}_labels.npz", out / f"{e}_panel.png")
        print((out / f"{e}_table.md").read_text())
    print(f"wrote {', '.join(f'{e}_table.csv/.md, {e}_panel.png' for e in experiments)} "
          f"to {out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script: python simulations/real_models.py
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
