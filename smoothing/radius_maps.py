"""``segcertify radius-maps``: per-component certified radius maps of a data set.

For every selected input and every (sigma, n) of the grid, ONE run of SEGCERTIFY's
sampling gives the counts, and :meth:`smoothing.SegCertify.radius_map` turns them
into every component's own certified radius (simultaneously valid at ``--alpha``).
Written to ``OUT``:

``radius_maps/{index:06d}-sigma{s}-n{n}.npz``
    ``radius`` (float32, component shape; 0 where abstaining), ``labels`` (the
    certified class, -1 where abstaining), ``p_lower``, ``guesses``, ``counts``,
    ``target`` (ground truth) and, for images, ``image``.
``figures/{index:06d}-sigma{s}-n{n}.png``
    The input beside its radius map (radius as colour, abstentions white).
``radius_maps.csv``
    One row per (input, sigma, n): certified fraction, certified accuracy, mean
    certified radius, timings.

An existing ``.npz`` is skipped, so rerunning the command resumes it. Torch is
imported only when the command runs (the parser stays light).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # not typing's: the parser of `segcertify --help` stays light
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = ["add_parser", "radius_map_figure"]

COLUMNS = ("input", "sigma", "n", "n0", "alpha", "method", "levels", "certified",
           "certified_accuracy", "mean_radius", "mean_certified_radius", "max_radius",
           "time_sampling", "time_testing", "noise_seed", "file")


def radius_map_figure(image: Any | None, radius: Any, *, title: str | None = None,
                      threat_model: str | None = None, vmax: float | None = None,
                      out: str | os.PathLike[str] | None = None, dpi: int = 110,
                      panel_width: float = 3.2):
    """The input image beside its certified radius map (abstentions in white).

    Parameters
    ----------
    image : array_like or None
        (3, H, W) or (H, W, 3) image in [0, 1]; ``None``: the map alone.
    radius : array_like
        (H, W) radii, 0 where abstaining (drawn white).
    title : str, optional
        Figure title.
    threat_model : str, optional
        A second title line (e.g. the sampler's threat model).
    vmax : float, optional
        Top of the colour scale; default: the largest radius.
    out : path, optional
        Write the figure there as PNG.
    dpi : int, default 110
        Resolution of the PNG.
    panel_width : float, default 3.2
        Width of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If `radius` is not 2-D or holds negative or NaN values.

    Examples
    --------
    >>> import numpy as np
    >>> fig = radius_map_figure(np.zeros((3, 8, 16)), np.linspace(0, 1, 128).reshape(8, 16))
    >>> len(fig.axes)  # image, map, colour bar
    3
    """
    import numpy as np

    from smoothing.figures import _as_rgb_image, _new_figure, _save

    r = np.asarray(radius.detach().cpu().numpy() if hasattr(radius, "detach") else radius,
                   dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"`radius` must be a 2-D map (H, W); got shape {r.shape}.")
    if np.isnan(r).any() or (r < 0).any():
        raise ValueError("`radius` must be >= 0 everywhere (no NaN).")
    panels = ([("input", _as_rgb_image(image))] if image is not None else [])
    h, w = r.shape
    fig = _new_figure((panel_width * (len(panels) + 1) + 0.8,
                       panel_width * h / w + 1.1 + (0.3 if title else 0.0)))
    axes = fig.subplots(1, len(panels) + 1, squeeze=False)[0]
    for ax, (name, rgb) in zip(axes, panels, strict=False):
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(name, fontsize=9)
    finite = r[np.isfinite(r)]
    top = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    masked = np.ma.masked_where(r <= 0, r)
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="white")
    im = axes[-1].imshow(masked, cmap=cmap, vmin=0.0, vmax=max(top, 1e-12),
                         interpolation="nearest")
    cert = float((r > 0).mean()) if r.size else 0.0
    axes[-1].set_title(f"certified radius\n{100 * cert:.0f}% certified, white: abstain",
                       fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(im, ax=axes[-1], fraction=0.046, pad=0.04)
    bar.set_label("radius", fontsize=8)
    lines = [t for t in (title, threat_model) if t]
    if lines:
        fig.suptitle("\n".join(lines), fontsize=9)
    fig.tight_layout()
    _save(fig, out, dpi)
    return fig


def add_parser(sub: Any, *, option_groups: Sequence[Callable[[argparse.ArgumentParser], None]]
               ) -> argparse.ArgumentParser:
    """Add the ``radius-maps`` subcommand to ``sub`` (``option_groups`` add the shared
    model / data / certification options of ``segcertify certify``)."""
    p = sub.add_parser(
        "radius-maps", help="per-component certified radius maps (.npz + figure per input)",
        description="Certify every input once and write each component's own certified "
                    "radius, valid simultaneously at --alpha (see docs/certificates.md).")
    for add in option_groups:
        add(p)
    g = p.add_argument_group("radius maps")
    g.add_argument("--method", default="bonferroni", choices=("bonferroni", "ladder"),
                   help="simultaneous lower bounds: Clopper-Pearson at alpha/N, or Holm "
                        "over a ladder of levels (default: %(default)s)")
    g.add_argument("--levels", nargs="+", type=float, metavar="T",
                   help="the ladder (--method ladder); default: multitest.ladder_levels")
    g.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA if available), cpu, cuda, cuda:N (default: %(default)s)")
    g.add_argument("--no-figures", action="store_true", help="write the .npz layers only")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_command)
    return p


def _fmt(v: float) -> str:
    return f"{v:g}"


def run_command(args: argparse.Namespace) -> int:
    """The handler of ``segcertify radius-maps`` (exit status)."""
    import csv

    import numpy as np

    from smoothing import cli

    if args.levels is not None and args.method != "ladder":
        return cli._fail("--levels needs --method ladder.")
    try:
        import torch

        from smoothing import runner

        run = runner.prepare(cli._config_from_args(args), device=args.device)
        if run.layout not in ("BCHW", "BHWC") and not args.no_figures:
            args.no_figures = True  # point clouds: the .npz layers only
        import multitest

        multitest.simultaneous_lower_bounds([0], 1, run.config.alpha, method=args.method,
                                            levels=args.levels)  # validate early
    except (ValueError, TypeError, OSError) as err:
        return cli._fail(err)
    out: Path = args.out
    (out / "radius_maps").mkdir(parents=True, exist_ok=True)
    if not args.no_figures:
        (out / "figures").mkdir(parents=True, exist_ok=True)
    cfg = run.config
    tau = cfg.tau[0]
    points = [g for g in run.grid if g.tau == tau]
    csv_path = out / "radius_maps.csv"
    new_csv = not csv_path.exists()
    from tqdm import tqdm

    done = 0
    with open(csv_path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        if new_csv:
            writer.writeheader()
        for index in tqdm(run.indices, desc="radius-maps", unit="input", file=sys.stderr,
                          disable=args.no_progress):
            item = run.dataset[index]
            x, target = item[0], item[1].numpy()
            for g in points:
                name = f"{index:06d}-sigma{_fmt(g.sigma)}-n{g.n}"
                npz = out / "radius_maps" / f"{name}.npz"
                if npz.exists():
                    continue
                certifier = run.certifiers[g.key]
                seed = runner.noise_seed(cfg.seed, index, g.key)
                cert = certifier.certify(x, generator=torch.Generator().manual_seed(seed))
                rmap = certifier.radius_map(cert, method=args.method, levels=args.levels)
                radius = rmap.radius.numpy()
                labels = rmap.labels.numpy()
                arrays = {"radius": radius.astype(np.float32), "labels": labels,
                          "p_lower": rmap.p_lower.numpy(), "guesses": cert.guesses.numpy(),
                          "counts": cert.counts.numpy().astype(np.int32), "target": target}
                if x.ndim == 3:
                    arrays["image"] = x.numpy()
                tmp = npz.with_suffix(".tmp.npz")
                np.savez_compressed(tmp, **arrays)
                os.replace(tmp, npz)
                valid = target != 255
                correct = (labels == target) & valid
                writer.writerow({
                    "input": index, "sigma": g.sigma, "n": g.n, "n0": cfg.n0,
                    "alpha": rmap.alpha, "method": rmap.method,
                    "levels": "" if rmap.levels is None else " ".join(
                        f"{v:.6g}" for v in rmap.levels),
                    "certified": float((labels != -1).mean()),
                    "certified_accuracy": float(correct.sum() / max(1, valid.sum())),
                    "mean_radius": float(radius.mean()),
                    "mean_certified_radius": float(np.where(correct, radius, 0).sum()
                                                   / max(1, valid.sum())),
                    "max_radius": float(radius.max()) if radius.size else 0.0,
                    "time_sampling": cert.time_sampling, "time_testing": cert.time_testing,
                    "noise_seed": seed, "file": str(npz.relative_to(out)),
                })
                fh.flush()
                if not args.no_figures:
                    radius_map_figure(
                        x, radius, out=out / "figures" / f"{name}.png",
                        threat_model=certifier.sampler.threat_model,
                        title=f"input {index}: sigma = {g.sigma:g}, n = {g.n}, "
                              f"{rmap.method}, alpha = {rmap.alpha:g}"
                              + ("" if rmap.sound else " [HEURISTIC]"))
                done += 1
    print(f"segcertify: {out}: {done} radius maps written ({csv_path})", file=sys.stderr)
    return 0
