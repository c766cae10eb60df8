"""Figures of certified segmentation, drawn from saved results (matplotlib).

Every function takes arrays or saved files and returns a
:class:`matplotlib.figure.Figure` (and writes a PNG when given ``out``), so a
figure can be redrawn without re-running any certification. The figures are
built without pyplot: no backend is selected, no window opens and no global
state changes, so the functions are safe in scripts, tests and notebooks.
matplotlib is imported lazily, inside the drawing functions: ``import
smoothing.figures`` works without it, and so do the pure-numpy helpers
:func:`colorize` and :func:`certified_accuracy_at_radius`.

==========================================  ==============================================
function                                    draws
==========================================  ==============================================
:func:`segmentation_panel`                  images and label maps side by side
:func:`figure1_panel`                       Fig. 1 of the paper: input, ground truth,
                                            attacked prediction, certified segmentation
:func:`plot_certified_accuracy_vs_radius`   Figs. 3/4: certified accuracy vs radius,
                                            points labelled with ``tau``; heuristic
                                            (unproven) runs say so in the legend
==========================================  ==============================================

Abstentions (:data:`~smoothing.ABSTAIN`) are drawn in **white**, ignored ground
truth (255) in black.

One module (~770 lines, about half docstrings): every figure shares the colour,
layout and saving helpers at its top, and matplotlib is imported inside each function.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smoothing._labels import HEURISTIC, is_unsound, soundness_note
from smoothing._sampling import ABSTAIN

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

__all__ = [
    "ABSTAIN_COLOR",
    "IGNORE_COLOR",
    "certified_accuracy_at_radius",
    "colorize",
    "figure1_panel",
    "node_palette",
    "part_palette",
    "plot_certified_accuracy_vs_radius",
    "radius_map_figure",
    "read_rows",
    "segmentation_panel",
]

#: RGB colour of an abstained component (white, as in Fig. 1 of the paper).
ABSTAIN_COLOR: tuple[int, int, int] = (255, 255, 255)
#: RGB colour of an ignored ground-truth component (label 255).
IGNORE_COLOR: tuple[int, int, int] = (0, 0, 0)

PathLike = str | os.PathLike[str]


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib Figure outside pyplot (no global backend or state is touched).

    Figures are built with the object-oriented API, so drawing works the same in a
    script, a test or a notebook, never opens a window, and needs no
    ``plt.close``; ``fig.savefig`` renders PNGs with Agg.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "smoothing.figures needs matplotlib: pip install 'segcertify[plot]'."
        ) from err
    return Figure(figsize=figsize)


def _save(fig: Figure, out: PathLike | None, dpi: int) -> None:
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)


# ---------------------------------------------------------------------------
# colours
# ---------------------------------------------------------------------------


def part_palette(num_classes: int) -> np.ndarray:
    """A fixed palette of ``num_classes`` distinct, non-white colours (uint8 (C, 3)).

    Examples
    --------
    >>> p = part_palette(50)
    >>> p.shape, p.dtype, bool((p.sum(axis=1) < 3 * 255).all())
    ((50, 3), dtype('uint8'), True)
    """
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be >= 1; got {num_classes}.")
    hues = (np.arange(num_classes) * 0.618033988749895) % 1.0  # golden-ratio hues
    sat = np.where(np.arange(num_classes) % 2 == 0, 0.75, 0.55)
    val = np.where(np.arange(num_classes) % 3 == 0, 0.85, 0.7)
    i = np.floor(hues * 6).astype(int) % 6
    f = hues * 6 - np.floor(hues * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    table = np.stack([
        np.choose(i, [val, q, p, p, t, val]),
        np.choose(i, [t, val, val, q, p, p]),
        np.choose(i, [p, p, t, val, val, q]),
    ], axis=1)  # fmt: skip
    return np.round(table * 255).astype(np.uint8)


def node_palette(hierarchy: Any, palette: Any, *, lighten: float = 0.55) -> np.ndarray:
    """Colours of every node of a class hierarchy, lighter for coarser levels.

    A fine class keeps ``palette[c]``; a coarser node gets the mean colour of its
    fine classes blended towards white by ``lighten * level / (num_levels - 1)``,
    so the coarsest level is ``lighten`` of the way to white.

    Parameters
    ----------
    hierarchy : smoothing.hierarchy.Hierarchy
        The hierarchy (``num_nodes`` rows out).
    palette : array_like
        (C, 3) RGB colours of the fine classes, 0..255.
    lighten : float, default 0.55
        In [0, 1).

    Returns
    -------
    numpy.ndarray
        uint8 (num_nodes, 3): a palette for :func:`colorize` of certified nodes.

    Examples
    --------
    >>> from smoothing.hierarchy import Hierarchy
    >>> h = Hierarchy.from_tree({"flat": ["road", "sidewalk"]}, ["road", "sidewalk"])
    >>> node_palette(h, [[200, 0, 0], [0, 0, 200]]).tolist()
    [[200, 0, 0], [0, 0, 200], [185, 140, 185]]
    """
    pal = np.asarray(palette, dtype=np.float64).reshape(-1, 3)
    C = hierarchy.num_classes
    if len(pal) < C:
        raise ValueError(f"`palette` must have a colour for each of the {C} fine classes; "
                         f"got {len(pal)}.")
    if not 0.0 <= lighten < 1.0:
        raise ValueError(f"`lighten` must lie in [0, 1); got {lighten!r}.")
    member = np.zeros((C, hierarchy.num_nodes))
    member[np.arange(C)[:, None], hierarchy.paths] = 1.0
    mean = (member.T @ pal[:C]) / member.sum(axis=0)[:, None]
    top = max(1, hierarchy.num_levels - 1)
    t = (lighten * hierarchy.levels / top)[:, None]
    return np.round(mean * (1 - t) + 255.0 * t).astype(np.uint8)


def colorize(labels: Any, palette: Any, *, ignore_index: int | None = 255,
             abstain_color: Sequence[int] = ABSTAIN_COLOR,
             ignore_color: Sequence[int] = IGNORE_COLOR) -> np.ndarray:
    """Map a label map to RGB: class ``c`` -> ``palette[c]``, ABSTAIN -> white.

    Parameters
    ----------
    labels : array_like of int
        Labels in ``{ABSTAIN} U [0, len(palette))`` or ``ignore_index``, any shape
        (a torch tensor works too).
    palette : array_like
        (C, 3) RGB colours, 0..255.
    ignore_index : int or None, default 255
        Label drawn in ``ignore_color``.
    abstain_color, ignore_color : sequence of 3 ints
        RGB of abstentions (default white) and ignored components (default black).

    Returns
    -------
    numpy.ndarray
        uint8, shape ``labels.shape + (3,)``.

    Raises
    ------
    TypeError
        If ``labels`` are not integers.
    ValueError
        If a label is neither a class of the palette, ABSTAIN nor ``ignore_index``,
        or ``ignore_index`` is ABSTAIN.

    Examples
    --------
    >>> import numpy as np
    >>> colorize(np.array([[0, -1]]), np.array([[10, 20, 30]])).tolist()
    [[[10, 20, 30], [255, 255, 255]]]
    """
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        raise TypeError(f"`labels` must hold integer labels; got dtype {lab.dtype}.")
    lab = lab.astype(np.int64)
    if ignore_index is not None and ignore_index == ABSTAIN:
        raise ValueError(f"`ignore_index` must differ from ABSTAIN = {ABSTAIN}; got "
                         f"{ignore_index!r}.")
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    c = len(pal)
    # table rows: classes 0..C-1, then abstain (C), then ignore (C + 1)
    extra = np.asarray([abstain_color, ignore_color], dtype=np.uint8)
    table = np.vstack([pal, extra])
    idx = np.where(lab == ABSTAIN, c, lab)
    if ignore_index is not None:
        idx = np.where(lab == ignore_index, c + 1, idx)
    bad = (idx < 0) | (idx > c + 1) | ((idx >= c) & (lab != ABSTAIN) & (lab != ignore_index))
    if bad.any():
        raise ValueError(
            f"`labels` must lie in [0, {c}), be ABSTAIN = {ABSTAIN} or `ignore_index` = "
            f"{ignore_index!r}; got {int(lab[bad].flat[0])}."
        )
    return table[idx]


# ---------------------------------------------------------------------------
# Fig. 1: segmentation panels
# ---------------------------------------------------------------------------


def _as_rgb_image(image: Any) -> np.ndarray:
    """(3, H, W) or (H, W, 3) floats in [0, 1] (or uint8) -> (H, W, 3) for imshow."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
        img = np.moveaxis(img, 0, -1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"`image` must have shape (3, H, W) or (H, W, 3); got {img.shape}.")
    return img if img.dtype == np.uint8 else np.clip(img, 0.0, 1.0)


def segmentation_panel(image: Any | None, panels: Sequence[tuple[str, Any]], palette: Any, *,
                       class_names: Sequence[str] | None = None, title: str | None = None,
                       ignore_index: int | None = 255, out: PathLike | None = None,
                       dpi: int = 110, panel_width: float = 3.2) -> Figure:
    """An input image and label maps side by side (one row), abstentions in white.

    Parameters
    ----------
    image : array_like or None
        (3, H, W) or (H, W, 3) image in [0, 1], drawn first under the title
        "input"; ``None``: no image panel.
    panels : sequence of (str, array_like)
        Title and (H, W) label map of every further panel, coloured by
        :func:`colorize`.
    palette : array_like
        (C, 3) RGB class colours.
    class_names : sequence of str, optional
        Names for a legend below the panels (plus "abstain" in white).
    title : str, optional
        Figure title.
    ignore_index : int or None, default 255
        Ground-truth label drawn black.
    out : path, optional
        Write the figure there as PNG.
    dpi : int, default 110
        Resolution of the PNG.
    panel_width : float, default 3.2
        Width of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; its axes are in ``fig.axes`` in panel order.
    """
    items: list[tuple[str, np.ndarray]] = []
    if image is not None:
        items.append(("input", _as_rgb_image(image)))
    for name, lab in panels:
        items.append((name, colorize(lab, palette, ignore_index=ignore_index)))
    if not items:
        raise ValueError("nothing to draw: pass an `image` or at least one panel.")
    h, w = items[0][1].shape[:2]
    legend_h = 0.45 if class_names else 0.0
    title_lines = max(name.count("\n") + 1 for name, _ in items)  # panel titles
    fig_h = (panel_width * h / w + 0.25 + 0.18 * title_lines + legend_h
             + (0.3 if title else 0.0))
    fig = _new_figure((panel_width * len(items), fig_h))
    axes = fig.subplots(1, len(items), squeeze=False)
    for ax, (name, rgb) in zip(axes[0], items, strict=True):
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if class_names:
        from matplotlib.patches import Patch

        pal = np.asarray(palette, dtype=float).reshape(-1, 3) / 255.0
        handles = [Patch(facecolor=pal[i], edgecolor="k", linewidth=0.3, label=n)
                   for i, n in enumerate(class_names)]
        handles.append(Patch(facecolor="white", edgecolor="k", linewidth=0.5, label="abstain"))
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 9),
                   fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, legend_h / fig_h, 1, 1))
    _save(fig, out, dpi)
    return fig


def figure1_panel(image: Any, label: Any, attacked_pred: Any, certified: Any, palette: Any, *,
                  eps: float | None = None, radius: float | None = None,
                  extra: Sequence[tuple[str, Any]] = (),
                  class_names: Sequence[str] | None = None, title: str | None = None,
                  out: PathLike | None = None, dpi: int = 110) -> Figure:
    """Fig. 1 of the paper: input, ground truth, attacked prediction, certified labels.

    Parameters
    ----------
    image : array_like
        The (clean) input, (3, H, W) or (H, W, 3) in [0, 1].
    label : array_like
        (H, W) ground truth.
    attacked_pred : array_like
        (H, W) prediction of the non-robust base model on the PGD-attacked input.
    certified : array_like
        (H, W) SEGCERTIFY labels of the clean input, ABSTAIN drawn white.
    palette : array_like
        (C, 3) RGB class colours.
    eps, radius : float, optional
        The attack's l2 budget and the certified radius, shown in the titles.
    extra : sequence of (str, array_like)
        Further label maps appended on the right.
    class_names : sequence of str, optional
        Legend entries.
    title : str, optional
        Figure title.
    out : path, optional
        Write the figure there as PNG.
    dpi : int, default 110
        Resolution of the PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
    attacked = "(c) non-robust model, PGD input"
    if eps is not None:
        attacked += f"\n$\\|\\delta\\|_2 \\leq {eps:.3g}$"
    cert = "(d) SEGCERTIFY, clean input"
    if radius is not None:
        cert += f"\ncertified for $\\|\\delta\\|_2 \\leq {radius:.3g}$"
    panels = [("(b) ground truth", label), (attacked, attacked_pred), (cert, certified),
              *extra]
    fig = segmentation_panel(image, panels, palette, class_names=class_names, title=title,
                             out=None)
    fig.axes[0].set_title("(a) input", fontsize=9)
    _save(fig, out, dpi)
    return fig


# ---------------------------------------------------------------------------
# Figs. 3/4: certified accuracy vs radius
# ---------------------------------------------------------------------------


def certified_accuracy_at_radius(radii: Any, accuracies: Any, r: Any) -> np.ndarray:
    r"""Certified accuracy at radius ``r`` over runs of different ``sigma``/``tau``.

    A SEGCERTIFY run certifies all its non-abstained components at the same radius
    ``R = sampler.radius(tau)``, so its certified accuracy at radius ``r`` is its
    accuracy (the fraction of components certified **and** correct) if
    ``R >= r``, and 0 otherwise. Over several runs, the best available:

    .. math:: \mathrm{acc}(r) = \max\{\mathrm{acc}_k : R_k \geq r\} \quad (0 \text{ if none}).

    Parameters
    ----------
    radii : array_like
        (K,) certified radius of every run.
    accuracies : array_like
        (K,) certified accuracy of every run, in [0, 1].
    r : float or array_like
        Radii at which to evaluate.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``r``.

    Examples
    --------
    >>> certified_accuracy_at_radius([0.17, 0.41], [0.9, 0.8], [0.0, 0.17, 0.2, 0.5])
    array([0.9, 0.9, 0.8, 0. ])
    """
    rad = np.asarray(radii, dtype=np.float64).reshape(-1)
    acc = np.asarray(accuracies, dtype=np.float64).reshape(-1)
    if rad.shape != acc.shape:
        raise ValueError(f"`radii` and `accuracies` must have the same length; got "
                         f"{rad.size} and {acc.size}.")
    rr = np.asarray(r, dtype=np.float64)
    if rad.size == 0:
        return np.zeros(rr.shape)
    order = np.argsort(rad)
    rad, acc = rad[order], acc[order]
    best_from = np.maximum.accumulate(acc[::-1])[::-1]  # max over runs k' >= k
    first = np.searchsorted(rad, rr, side="left")  # first run with R >= r
    padded = np.append(best_from, 0.0)
    return padded[first]


def read_rows(path: PathLike) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts of strings."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(v: Any) -> float:
    return float(v) if v not in ("", None) else float("nan")


#: How a legend shows a grouping column: ``{}`` is the value (the model is shown bare).
LEGEND_NAMES: dict[str, str] = {
    "model": "{}", "sigma": "σ={}", "sigma_deg": "σ={}°", "sigma_rad": "σ={} rad",
    "n": "n={}", "n0": "n0={}", "tau": "τ={}", "alpha": "α={}",
}  # fmt: skip


def _legend_value(v: Any) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.3g}"


def _group_label(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The legend entry of a group: e.g. ``'m, σ=0.25, n=100'``, ``'σ=7.16°, n=500'``.

    Examples
    --------
    >>> _group_label({"sigma_deg": "7.16197", "n": "500"}, ("sigma_deg", "n"))
    'σ=7.16°, n=500'
    """
    return ", ".join(LEGEND_NAMES.get(k, k + "={}").format(_legend_value(row[k]))
                     for k in keys)


def _label_offsets(xy: Any, texts: Sequence[str], *, fontsize: float,
                   bounds: tuple[float, float, float, float] | None = None,
                   marker: float = 3.0) -> list[tuple[float, float] | None]:
    """Offsets (in points) that keep text labels of plotted points from colliding.

    Greedy, in the given order: every label takes the first of a few positions
    around its point (right above, right below, left above, left below, further
    up, further down) whose box overlaps no earlier label, no marker and stays
    inside ``bounds``; if none is free, the one with the least overlap. A label
    whose text and point repeat an earlier one is not drawn again (``None``).

    Parameters
    ----------
    xy : array_like
        (K, 2) positions of the points, in points (1/72 inch) on the figure.
    texts : sequence of str
        The K labels.
    fontsize : float
        Font size of the labels, in points (a character is taken 0.62 of it wide).
    bounds : (x0, y0, x1, y1), optional
        The box the labels should stay in (the axes), in points.
    marker : float, default 3.0
        Half-size of a point's marker, in points.

    Returns
    -------
    list of (float, float) or None
        The offset of the lower-left corner of every label from its point.

    Examples
    --------
    >>> _label_offsets([[0, 0], [0, 30], [0, 0]], ["0.6", "0.75", "0.6"], fontsize=7)
    [(3.0, 3.0), (3.0, 3.0), None]
    >>> _label_offsets([[0, 0], [1, 1]], ["0.6", "0.75"], fontsize=7)  # close: one moves
    [(3.0, -10.0), (3.0, 3.0)]
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    boxes = [(x - marker, y - marker, x + marker, y + marker) for x, y in pts]
    seen: set[tuple[float, float, str]] = set()
    out: list[tuple[float, float] | None] = []

    def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return w * h if w > 0 and h > 0 else 0.0

    for (x, y), text in zip(pts, texts, strict=True):
        key = (round(x, 1), round(y, 1), text)
        if key in seen:
            out.append(None)
            continue
        seen.add(key)
        w, h, gap = 0.62 * fontsize * len(text), float(fontsize), marker
        candidates = [(gap, gap), (gap, -gap - h), (-gap - w, gap), (-gap - w, -gap - h),
                      (gap, gap + h), (gap, -gap - 2 * h)]
        best, best_cost = candidates[0], math.inf
        for dx, dy in candidates:
            box = (x + dx, y + dy, x + dx + w, y + dy + h)
            cost = sum(overlap(box, b) for b in boxes)
            if bounds is not None:
                cost += w * h - overlap(box, bounds)
            if cost < best_cost:
                best, best_cost = (dx, dy), cost
            if cost == 0:
                break
        dx, dy = best
        boxes.append((x + dx, y + dy, x + dx + w, y + dy + h))
        out.append((float(dx), float(dy)))
    return out


def plot_certified_accuracy_vs_radius(
    rows: Iterable[Mapping[str, Any]] | PathLike, *,
    group_keys: Sequence[str] = ("model", "sigma", "n"), radius_key: str = "radius",
    accuracy_key: str = "accuracy", tau_key: str = "tau", sound_key: str = "sound",
    xlabel: str = "radius R",
    title: str | None = None, envelope: bool = True, out: PathLike | None = None,
    dpi: int = 110,
) -> Figure:
    """Certified accuracy vs certified radius, every point labelled with its ``tau``.

    The paper's Figs. 3 and 4: one line per group of runs (by default per model,
    ``sigma`` and ``n``) through the points ``(R(tau), acc(tau))``, the ``tau``
    written next to every point (placed so that the numbers do not collide; a
    point that repeats another one's position and ``tau`` is numbered once); with
    ``envelope``, the best certified accuracy at each radius over all runs
    (:func:`certified_accuracy_at_radius`) as a grey dashed step up to the
    largest certified radius. Groups whose rows have a false ``sound_key``
    column (heuristic certificates) are dotted and say "heuristic, not proven"
    in the legend and the title.

    Parameters
    ----------
    rows : iterable of mappings or path
        One row per run and ``tau`` (e.g. the demo's ``*_curve.csv``), with the
        columns ``group_keys``, ``radius_key``, ``accuracy_key`` and ``tau_key``;
        or the path of such a CSV.
    group_keys : sequence of str, default ('model', 'sigma', 'n')
        Columns that define one line (and its legend entry).
    radius_key, accuracy_key, tau_key : str
        Column names.
    sound_key : str, default 'sound'
        Optional column: ``False`` (or ``"False"``) marks a heuristic certificate.
    xlabel : str, default 'radius R'
        Label of the x axis (say the unit).
    title : str, optional
        Axes title.
    envelope : bool, default True
        Draw the best-over-runs step curve.
    out : path, optional
        Write the figure there as PNG.
    dpi : int, default 110
        Resolution of the PNG.

    Returns
    -------
    matplotlib.figure.Figure
        One line (``ax.lines``) per group, plus the envelope; one annotation
        (``ax.texts``) per distinct (point, ``tau``).

    Raises
    ------
    ValueError
        If a row lacks one of the columns named by the keys.
    """
    if isinstance(rows, (str, os.PathLike)):
        rows = read_rows(rows)
    rows = list(rows)
    needed = [*group_keys, radius_key, accuracy_key, tau_key]
    for row in rows:
        missing = [k for k in needed if k not in row]
        if missing:
            raise ValueError(f"every row of `rows` needs the columns {needed}; a row lacks "
                             f"{missing}.")
    groups: dict[str, list[tuple[float, float, float]]] = {}
    unsound: set[str] = set()
    for row in rows:
        key = _group_label(row, group_keys)
        groups.setdefault(key, []).append(
            (_num(row[radius_key]), _num(row[accuracy_key]), _num(row[tau_key])))
        if is_unsound(row.get(sound_key)):
            unsound.add(key)
    fig = _new_figure((8.4, 4.2))
    ax = fig.subplots()
    all_r, all_a, labels = [], [], []
    for i, (name, pts) in enumerate(groups.items()):
        pts.sort()
        r, a, t = (np.array(v) for v in zip(*pts, strict=True))
        all_r.extend(r)
        all_a.extend(a)
        heuristic = name in unsound
        (line,) = ax.plot(r, a, marker="o", ms=4, lw=1.3, ls=":" if heuristic else "-",
                          label=soundness_note(name, not heuristic), color=f"C{i}")
        labels.extend((x, y, f"{tau:g}", line.get_color()) for x, y, tau in zip(r, a, t,
                                                                                strict=True))
    if envelope and all_r:
        # up to the largest certified radius: beyond it no run certifies anything
        grid = np.linspace(0.0, max(all_r), 400)
        ax.step(grid, certified_accuracy_at_radius(all_r, all_a, grid), where="post",
                color="0.5", ls="--", lw=1, label=soundness_note("best over runs", not unsound))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    title = title or "certified accuracy vs radius (numbers: tau)"
    if unsound:
        title += f"\ndotted: {HEURISTIC} (the radius is not a certificate)"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _annotate_taus(fig, ax, labels)
    _save(fig, out, dpi)
    return fig


def _annotate_taus(fig: Figure, ax: Any, labels: list[tuple[float, float, str, Any]]) -> None:
    """Write every point's ``tau`` next to it, placed by :func:`_label_offsets`."""
    if not labels:
        return
    to_pt = 72.0 / fig.dpi
    xy = ax.transData.transform([(x, y) for x, y, _, _ in labels]) * to_pt
    box = ax.get_window_extent()
    bounds = (box.x0 * to_pt, box.y0 * to_pt, box.x1 * to_pt, box.y1 * to_pt)
    offsets = _label_offsets(xy, [t for _, _, t, _ in labels], fontsize=7, bounds=bounds)
    for (x, y, text, color), off in zip(labels, offsets, strict=True):
        if off is not None:
            ax.annotate(text, (x, y), textcoords="offset points", xytext=off, fontsize=7,
                        color=color, ha="left", va="bottom")


#: Colours of the ground-truth panel of :func:`radius_map_figure` (RGB in [0, 1]).
TRUTH_COLOURS = {"correct": (0.20, 0.63, 0.17), "wrong": (0.89, 0.10, 0.11),
                 "abstain": (1.0, 1.0, 1.0), "ignored": (0.75, 0.75, 0.75)}


def radius_map_figure(image: Any | None, radius: Any, *, title: str | None = None,
                      threat_model: str | None = None, vmax: float | None = None,
                      target: Any | None = None, labels: Any | None = None,
                      ignore_index: int = 255,
                      out: str | os.PathLike[str] | None = None, dpi: int = 110,
                      panel_width: float = 3.2):
    """The input image beside its certified radius map (abstentions in white), and
    optionally the certified labels against the ground truth.

    Parameters
    ----------
    image : array_like or None
        (3, H, W) or (H, W, 3) image in [0, 1]; ``None``: the map alone.
    radius : array_like
        (H, W) radii, 0 where abstaining (drawn white).
    target, labels : array_like, optional
        (H, W) ground truth and certified labels (-1 = abstain), given together:
        a third panel shows where a certified label is correct (green) and where it
        is **certified but wrong** (red); abstentions white, ignored pixels grey.
    ignore_index : int, default 255
        The ignored value of ``target``.
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
        If `radius` is not 2-D or holds negative or NaN values, or `target` and
        `labels` are not given together with its shape.

    Examples
    --------
    >>> import numpy as np
    >>> fig = radius_map_figure(np.zeros((3, 8, 16)), np.linspace(0, 1, 128).reshape(8, 16))
    >>> len(fig.axes)  # image, map, colour bar
    3
    >>> labels = np.where(np.arange(128).reshape(8, 16) % 3 == 0, -1, 1)
    >>> fig = radius_map_figure(None, (labels >= 0) * 0.5, target=np.ones((8, 16), int),
    ...                         labels=labels)
    >>> [ax.get_title().split(chr(10))[0] for ax in fig.axes[:2]]
    ['certified radius', 'vs ground truth']
    """
    import numpy as np

    r = np.asarray(radius.detach().cpu().numpy() if hasattr(radius, "detach") else radius,
                   dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"`radius` must be a 2-D map (H, W); got shape {r.shape}.")
    if np.isnan(r).any() or (r < 0).any():
        raise ValueError("`radius` must be >= 0 everywhere (no NaN).")
    truth = _truth_panel(target, labels, r.shape, ignore_index)
    panels = ([("input", _as_rgb_image(image))] if image is not None else [])
    h, w = r.shape
    count = len(panels) + 1 + (truth is not None)
    fig = _new_figure((panel_width * count + 0.8,
                       panel_width * h / w + 1.1 + (0.3 if title else 0.0)))
    axes = fig.subplots(1, count, squeeze=False)[0]
    for ax, (name, rgb) in zip(axes, panels, strict=False):
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(name, fontsize=9)
    finite = r[np.isfinite(r)]
    top = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    masked = np.ma.masked_where(r <= 0, r)
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="white")
    map_ax = axes[len(panels)]
    im = map_ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=max(top, 1e-12),
                       interpolation="nearest")
    cert = float((r > 0).mean()) if r.size else 0.0
    map_ax.set_title(f"certified radius\n{100 * cert:.0f}% certified, white: abstain",
                     fontsize=9)
    if truth is not None:
        rgb, wrong = truth
        axes[-1].imshow(rgb, interpolation="nearest")
        axes[-1].set_title(f"vs ground truth\ngreen: correct, red: certified but wrong "
                           f"({100 * wrong:.1f}%)", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(im, ax=map_ax, fraction=0.046, pad=0.04)
    bar.set_label("radius", fontsize=8)
    lines = [t for t in (title, threat_model) if t]
    if lines:
        fig.suptitle("\n".join(lines), fontsize=9)
    fig.tight_layout()
    _save(fig, out, dpi)
    return fig


def _truth_panel(target: Any | None, labels: Any | None, shape: tuple[int, ...],
                 ignore_index: int) -> tuple[np.ndarray, float] | None:
    """(H, W, 3) colours of certified-correct / certified-wrong / abstain / ignored, and
    the fraction of valid pixels certified but wrong; ``None`` without a target."""
    if target is None and labels is None:
        return None
    if target is None or labels is None:
        raise ValueError("`target` and `labels` must be given together.")
    t = np.asarray(target.detach().cpu().numpy() if hasattr(target, "detach") else target)
    lab = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if t.shape != shape or lab.shape != shape:
        raise ValueError(f"`target` and `labels` must have the radius map's shape {shape}; "
                         f"got {t.shape} and {lab.shape}.")
    valid = t != ignore_index
    certified = lab != ABSTAIN
    rgb = np.empty((*shape, 3))
    rgb[...] = TRUTH_COLOURS["abstain"]
    rgb[~valid] = TRUTH_COLOURS["ignored"]
    rgb[valid & certified & (lab == t)] = TRUTH_COLOURS["correct"]
    wrong = valid & certified & (lab != t)
    rgb[wrong] = TRUTH_COLOURS["wrong"]
    return rgb, float(wrong.sum() / max(1, valid.sum()))
