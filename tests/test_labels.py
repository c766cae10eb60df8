"""Heuristic (unproven) certificates say so wherever they are shown; figure labelling.

Covers smoothing._labels, the soundness labels of Summary.to_markdown/to_csv, the
CLI's printout and warning, SegmentationCertificate.__repr__, Sampler.describe and
the legends of smoothing.figures; and the figure fixes of smoothing.power_figures
(no smoothing of coarse curves, the dashed exact line explained in every panel) and
of plot_certified_accuracy_vs_radius (tau labels, legend names, the envelope's end).
"""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from samplers import GaussianL2, Rotation3D, RotationZ
from smoothing import runs as runner
from smoothing._labels import HEADERS, HEURISTIC, is_unsound, soundness_note
from smoothing.cli import main
from smoothing.figures import certified_accuracy_at_radius, plot_certified_accuracy_vs_radius
from smoothing.segcertify import SegCertify

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"

# a tiny point-cloud run: 2 clouds of 64 points, n0 = 4, n = 16
PARTS = ["certify", "--dataset", "parts", "--num-points", "64", "--num-inputs", "2",
         "--n0", "4", "--n", "16", "--tau", "0.6", "--alpha", "0.05", "--sigma", "0.1",
         "--batch-size", "20", "--device", "cpu", "--no-progress"]  # fmt: skip


# ---------------------------------------------------------------------------
# the phrase
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "unsound"), [
    (True, False), (False, True), ("True", False), ("False", True), ("false", True),
    (None, False), ("", False), (np.bool_(False), True), (np.bool_(True), False)])
def test_is_unsound_reads_bools_and_csv_text(value, unsound):
    assert is_unsound(value) is unsound
    assert (HEURISTIC in soundness_note("x", value)) is unsound


# ---------------------------------------------------------------------------
# runner summary and the CLI
# ---------------------------------------------------------------------------


def _summary(sound: bool) -> runner.Summary:
    base = dict.fromkeys(runner.SUMMARY_COLUMNS)
    base.update(method="base", num_inputs=2, accuracy=0.9, miou=0.8, miou_dataset=0.8,
                abstain_pct=0.0, time_per_input_s=0.1)
    cert = {**base, "method": "certify", "sampler": "rotation-3d", "sigma": 0.1, "tau": 0.6,
            "n": 16, "n0": 4, "alpha": 0.05, "correction": "holm", "k": 1, "radius": 0.02,
            "abstain_pct": 5.0, "sound": sound}
    return runner.Summary((base, cert), "header")


def test_summary_markdown_marks_unsound_rows_only():
    md = _summary(False).to_markdown()
    rows = [line for line in md.splitlines() if line.startswith("| SegCertify")]
    assert len(rows) == 1 and f"SegCertify ({HEURISTIC})" in rows[0]
    assert "not certificates" in md.splitlines()[-1]  # the footnote
    sound = _summary(True).to_markdown()
    assert HEURISTIC not in sound and "not certificates" not in sound
    # the CSV carries the flag per row
    rows = list(csv.DictReader(io.StringIO(_summary(False).to_csv())))
    assert [r["sound"] for r in rows] == ["", "False"]


def test_summary_markdown_uses_the_shared_headers():
    header = _summary(True).to_markdown().splitlines()[2]
    cells = [c.strip() for c in header.strip("|").split("|")]
    for key in ("sigma", "tau", "n", "n0", "accuracy", "miou", "abstain", "time", "radius"):
        assert HEADERS[key] in cells, key


def test_cli_rotation_3d_warns_once_and_labels_every_row(tmp_path, capsys):
    out = tmp_path / "r3d"
    assert main([*PARTS, "--sampler", "rotation-3d", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and HEURISTIC in warnings[0] and "rotation-3d" in warnings[0]
    cert_rows = [line for line in captured.out.splitlines() if line.startswith("| SegCertify")]
    assert cert_rows and all(HEURISTIC in line for line in cert_rows)
    assert (out / "summary.md").read_text() == captured.out
    with open(out / "summary.csv", newline="") as fh:
        assert [r["sound"] for r in csv.DictReader(fh)] == ["", "False"]
    # summarize prints the same labels, without warning again
    assert main(["summarize", str(out)]) == 0
    again = capsys.readouterr()
    assert again.out == captured.out and "warning" not in again.err


def test_cli_sound_sampler_neither_warns_nor_labels(tmp_path, capsys):
    assert main([*PARTS, "--sampler", "rotation-z", "--out", str(tmp_path / "rz")]) == 0
    captured = capsys.readouterr()
    assert HEURISTIC not in captured.out + captured.err
    assert "warning" not in captured.err


# ---------------------------------------------------------------------------
# repr and describe
# ---------------------------------------------------------------------------


class _Constant(nn.Module):
    """(B, N, 3) -> (B, N, 2) logits, class 1 everywhere."""

    layout = "BNC"

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(*pts.shape[:-1], 2)
        out[..., 1] = 1.0
        return out


@pytest.mark.parametrize(("sampler", "heuristic"), [(Rotation3D(0.1), True),
                                                    (RotationZ(0.1), False),
                                                    (GaussianL2(0.1, point_cloud=True), False)])
def test_certificate_repr_and_describe_say_heuristic(sampler, heuristic):
    seg = SegCertify(_Constant(), sampler, num_classes=2, n0=4, n=16, tau=0.6, alpha=0.05,
                     batch_size=20)
    cert = seg.certify(torch.zeros(8, 3), generator=torch.Generator().manual_seed(0))
    assert (HEURISTIC in repr(cert)) is heuristic
    assert (f"sound=False ({HEURISTIC})" in repr(cert)) is heuristic
    assert (HEURISTIC in sampler.describe().lower()) is heuristic


# ---------------------------------------------------------------------------
# certified accuracy vs radius
# ---------------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _text_boxes(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in fig.axes[0].texts]


def test_tau_labels_do_not_collide_on_the_builtin_curves():
    pytest.importorskip("matplotlib")
    rows = _rows(RESULTS / "builtin_streets_curve.csv")
    boxes = _text_boxes(plot_certified_accuracy_vs_radius(rows))
    overlaps = [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
    assert not overlaps
    # every distinct (point, tau) keeps its label; a point that several runs share
    # (same sigma, tau and accuracy, e.g. 0 at a large tau) is numbered once
    distinct = {(r["radius"], r["accuracy"], r["tau"]) for r in rows}
    assert len(rows) == 35 and len(boxes) == len(distinct) > 20


def test_label_offsets_keep_boxes_apart():
    from smoothing.figures import _label_offsets

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 120, size=(12, 2))
    texts = [f"0.{i}" for i in range(12)]
    offsets = _label_offsets(xy, texts, fontsize=7)
    w, h = 0.62 * 7 * 3, 7.0
    boxes = [(x + dx, y + dy, x + dx + w, y + dy + h)
             for (x, y), (dx, dy) in zip(xy, offsets, strict=True)]
    clash = [(a, b) for a, b in itertools.combinations(boxes, 2)
             if min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])]
    assert not clash


def test_rotation_legend_names_the_quantity_not_the_column():
    pytest.importorskip("matplotlib")
    fig = plot_certified_accuracy_vs_radius(RESULTS / "builtin_rotation_curve.csv",
                                            group_keys=("sigma_deg", "n"),
                                            radius_key="radius_deg")
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["σ=7.16°, n=500", "σ=14.3°, n=500", "best over runs"]


def test_envelope_ends_at_the_largest_radius():
    pytest.importorskip("matplotlib")
    rows = _rows(RESULTS / "builtin_rotation_curve.csv")
    fig = plot_certified_accuracy_vs_radius(rows, group_keys=("sigma_deg", "n"),
                                            radius_key="radius_deg")
    gx, gy = fig.axes[0].lines[-1].get_data()
    radii = [float(r["radius_deg"]) for r in rows]
    accs = [float(r["accuracy"]) for r in rows]
    last = int(np.argmax(radii))
    assert gx.max() == pytest.approx(max(radii))
    assert gy[-1] == pytest.approx(accs[last]) and gy.min() > 0.7  # no drop to 0
    np.testing.assert_array_equal(gy, certified_accuracy_at_radius(radii, accs, gx))


def test_unsound_groups_say_so_in_legend_and_title():
    pytest.importorskip("matplotlib")
    rows = [{"model": "m", "sigma": s, "n": 100, "tau": t, "radius": s * t, "accuracy": 0.8,
             "sound": str(s != 0.5)} for s in (0.25, 0.5) for t in (0.75, 0.9)]
    ax = plot_certified_accuracy_vs_radius(rows).axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels[0] == "m, σ=0.25, n=100"
    assert labels[1] == f"m, σ=0.5, n=100 ({HEURISTIC})"
    assert HEURISTIC in labels[2] and HEURISTIC in ax.get_title()
    assert ax.lines[1].get_linestyle() == ":"


# ---------------------------------------------------------------------------
# power curves (Figs. 2a/2b)
# ---------------------------------------------------------------------------


def _gamma_rows(gammas) -> list[dict[str, str]]:
    """Quick-mode-like rows: JointClass 1.0 at gamma = 0, 0 after; an exact IndivClass."""
    rows = []
    for g in gammas:
        for method, rate in (("jointclass", 1.0 if g == 0 else 0.0),
                             ("indivclass", max(0.0, 1 - 10 * g))):
            rows.append({"figure": "2a", "method": method, "N": "100", "k": "1",
                         "gamma": f"{g:g}", "n0": "100", "n": "100", "alpha": "0.001",
                         "tau": "", "budget": "", "reps": "60", "certified_rate": f"{rate:g}",
                         "stderr": "0.01",
                         "analytic_rate": f"{rate:g}" if method == "indivclass" else ""})
    return rows


@pytest.mark.parametrize(("num", "smoothed"), [(11, False), (29, False), (30, True),
                                               (101, True)])
def test_gamma_panel_smooths_only_fine_grids(num, smoothed):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from smoothing import power_figures as pc

    gammas = np.linspace(0, 0.1, num)
    assert pc.smooths(num) is smoothed
    ax = Figure().subplots()
    assert pc._gamma_panel(ax, _gamma_rows(gammas), "2a", smoothed=True) is smoothed
    joint = next(line for line in ax.lines if line.get_label() == "JointClass")
    if not smoothed:  # the raw values: 1.0 at gamma = 0, not a straight-line fit
        np.testing.assert_array_equal(joint.get_ydata(), [1.0] + [0.0] * (num - 1))
    assert pc.EXACT_LABEL in [line.get_label() for line in ax.lines]
    title = pc._left_title(smoothed, _gamma_rows(gammas), "2a")
    assert ("not smoothed" in title) is not smoothed


def test_every_gamma_panel_explains_the_dashed_line(tmp_path):
    pytest.importorskip("matplotlib")
    from smoothing import power_figures as pc

    rows = _gamma_rows(np.linspace(0, 0.1, 11))
    seen = []
    import matplotlib.figure

    orig = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        seen.extend([t.get_text() for t in ax.get_legend().get_texts()]
                    for ax in fig.axes)
        return orig(fig, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matplotlib.figure.Figure, "savefig", spy)
        assert pc.plot(rows, tmp_path, ["2a"]) == [tmp_path / "power_fig2a.png"]
    assert len(seen) == 2 and all(pc.EXACT_LABEL in texts for texts in seen)
