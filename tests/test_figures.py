"""smoothing.figures: colours, the certified-accuracy envelope and the drawing functions."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smoothing import ABSTAIN
from smoothing.figures import (
    ABSTAIN_COLOR,
    IGNORE_COLOR,
    certified_accuracy_at_radius,
    colorize,
    figure1_panel,
    part_palette,
    plot_certified_accuracy_vs_radius,
    segmentation_panel,
)

PALETTE = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], dtype=np.uint8)


def _png_ok(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------
# colorize / part_palette
# ---------------------------------------------------------------------------


def test_colorize_maps_classes_abstain_white_and_ignore_black():
    lab = np.array([[0, 1, 2], [ABSTAIN, 255, 1]])
    rgb = colorize(lab, PALETTE)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0].tolist() == PALETTE.tolist()
    assert tuple(rgb[1, 0]) == ABSTAIN_COLOR == (255, 255, 255)
    assert tuple(rgb[1, 1]) == IGNORE_COLOR == (0, 0, 0)
    assert rgb[1, 2].tolist() == PALETTE[1].tolist()


def test_colorize_accepts_int8_and_torch_labels():
    lab = np.array([ABSTAIN, 2, 0], dtype=np.int8)  # the demo's saved dtype
    expected = [list(ABSTAIN_COLOR), PALETTE[2].tolist(), PALETTE[0].tolist()]
    assert colorize(lab, PALETTE).tolist() == expected
    assert colorize(torch.from_numpy(lab).long(), PALETTE).tolist() == expected


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.int64, hnp.array_shapes(max_dims=2, max_side=6),
                  elements=st.sampled_from([ABSTAIN, 0, 1, 2, 255])))
def test_colorize_agrees_with_a_lookup_per_pixel(lab):
    ref = {ABSTAIN: ABSTAIN_COLOR, 255: IGNORE_COLOR, **{c: tuple(PALETTE[c]) for c in range(3)}}
    rgb = colorize(lab, PALETTE)
    assert rgb.shape == lab.shape + (3,)
    for idx in np.ndindex(lab.shape):
        assert tuple(rgb[idx]) == ref[int(lab[idx])]


def test_colorize_ignore_index_none_and_custom():
    with pytest.raises(ValueError, match="`labels` must lie in"):
        colorize(np.array([255]), PALETTE, ignore_index=None)
    assert colorize(np.array([7]), PALETTE, ignore_index=7).tolist() == [list(IGNORE_COLOR)]
    grey = colorize(np.array([ABSTAIN]), PALETTE, abstain_color=(9, 9, 9))
    assert grey.tolist() == [[9, 9, 9]]


@pytest.mark.parametrize("bad", [3, -2, 254])
def test_colorize_rejects_labels_outside_the_palette(bad):
    with pytest.raises(ValueError, match=f"got {bad}"):
        colorize(np.array([0, bad]), PALETTE)


def test_colorize_rejects_float_labels_and_abstain_as_ignore_index():
    with pytest.raises(TypeError, match="`labels` must hold integer"):
        colorize(np.array([0.5, 1.0]), PALETTE)
    with pytest.raises(ValueError, match="`ignore_index` must differ from ABSTAIN"):
        colorize(np.array([0]), PALETTE, ignore_index=ABSTAIN)


def test_part_palette_is_distinct_and_never_white():
    pal = part_palette(50)
    assert pal.shape == (50, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal}) == 50
    assert not any(tuple(c) in (ABSTAIN_COLOR, IGNORE_COLOR) for c in pal)
    with pytest.raises(ValueError, match="`num_classes` must be >= 1"):
        part_palette(0)


# ---------------------------------------------------------------------------
# certified accuracy at radius
# ---------------------------------------------------------------------------


def _brute_force(radii, accs, r):
    return max((a for rad, a in zip(radii, accs, strict=True) if rad >= r), default=0.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2), st.floats(0, 1)), max_size=8),
       st.lists(st.floats(-0.5, 2.5), min_size=1, max_size=6))
def test_certified_accuracy_at_radius_matches_brute_force(runs, r):
    radii = [a for a, _ in runs]
    accs = [b for _, b in runs]
    got = certified_accuracy_at_radius(radii, accs, r)
    assert got.shape == (len(r),)
    np.testing.assert_array_equal(got, [_brute_force(radii, accs, x) for x in r])


@pytest.mark.parametrize(("r", "expected"), [(0.0, 0.9), (0.17, 0.9), (0.1700001, 0.8),
                                             (0.41, 0.8), (0.5, 0.0)])
def test_certified_accuracy_at_radius_boundaries(r, expected):
    # a run certifies radius exactly R (>=), and nothing beyond the largest R
    got = certified_accuracy_at_radius([0.41, 0.17], [0.8, 0.9], r)
    assert got.shape == () and float(got) == expected


def test_certified_accuracy_at_radius_empty_and_mismatch():
    assert certified_accuracy_at_radius([], [], [0.0, 1.0]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="same length"):
        certified_accuracy_at_radius([0.1, 0.2], [0.5], 0.0)


# ---------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------


@pytest.fixture
def scene(rng):
    image = rng.random((3, 6, 10)).astype(np.float32)
    label = rng.integers(0, 3, size=(6, 10))
    label[0, 0] = 255
    cert = label.copy()
    cert[cert == 255] = 0
    cert[2:4, :] = ABSTAIN
    return image, label, cert


def test_segmentation_panel_draws_colorized_maps(tmp_path, scene):
    pytest.importorskip("matplotlib")
    image, label, cert = scene
    out = tmp_path / "sub" / "panel.png"
    fig = segmentation_panel(image, [("truth", label), ("cert", cert)], PALETTE,
                             class_names=["a", "b", "c"], title="t", out=out)
    assert _png_ok(out)
    assert [ax.get_title() for ax in fig.axes] == ["input", "truth", "cert"]
    shown = np.asarray(fig.axes[2].images[0].get_array())
    np.testing.assert_array_equal(shown, colorize(cert, PALETTE))
    assert (shown[2:4] == 255).all()  # abstentions are white
    assert fig.axes[1].images[0].get_array()[0, 0].tolist() == list(IGNORE_COLOR)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["a", "b", "c", "abstain"]
    # (H, W, 3) images work too, and no image at all
    fig = segmentation_panel(np.moveaxis(image, 0, -1), [], PALETTE)
    assert len(fig.axes) == 1
    assert len(segmentation_panel(None, [("x", label)], PALETTE).axes) == 1


def test_segmentation_panel_errors(scene):
    pytest.importorskip("matplotlib")
    image, label, _ = scene
    with pytest.raises(ValueError, match="nothing to draw"):
        segmentation_panel(None, [], PALETTE)
    with pytest.raises(ValueError, match="`image` must have shape"):
        segmentation_panel(image[:2], [], PALETTE)
    with pytest.raises(ValueError, match="`labels` must lie in"):
        segmentation_panel(image, [("x", label + 5)], PALETTE)


def test_figure1_panel_titles_and_panels(tmp_path, scene):
    pytest.importorskip("matplotlib")
    image, label, cert = scene
    out = tmp_path / "fig1.png"
    fig = figure1_panel(image, label, label, cert, PALETTE, eps=0.16, radius=0.1686,
                        extra=[("(e) other", cert)], out=out)
    assert _png_ok(out)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "(a) input" and titles[1] == "(b) ground truth"
    assert titles[2].startswith("(c) non-robust model, PGD input") and "0.16" in titles[2]
    assert titles[3].startswith("(d) SEGCERTIFY, clean input") and "0.169" in titles[3]
    assert titles[4] == "(e) other"
    assert (np.asarray(fig.axes[3].images[0].get_array())[2:4] == 255).all()


def _curve_rows():
    rows = []
    for sigma, accs in ((0.25, (0.9, 0.7)), (0.5, (0.8, 0.4))):
        for tau, acc in zip((0.75, 0.9), accs, strict=True):
            rows.append({"model": "m", "sigma": sigma, "n": 100, "tau": tau, "accuracy": acc,
                         "radius": sigma * {0.75: 0.6745, 0.9: 1.2816}[tau]})
    return rows


def test_plot_certified_accuracy_vs_radius_from_rows_and_csv(tmp_path):
    pytest.importorskip("matplotlib")
    rows = _curve_rows()
    fig = plot_certified_accuracy_vs_radius(rows, title="t")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["m, σ=0.25, n=100", "m, σ=0.5, n=100", "best over runs"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.75", "0.75", "0.9", "0.9"]
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(x, [0.25 * 0.6745, 0.25 * 1.2816])
    np.testing.assert_allclose(y, [0.9, 0.7])
    # the envelope is certified_accuracy_at_radius over all runs
    gx, gy = ax.lines[-1].get_data()
    np.testing.assert_array_equal(
        gy, certified_accuracy_at_radius([r["radius"] for r in rows],
                                         [r["accuracy"] for r in rows], gx))
    path = tmp_path / "curve.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "curve.png"
    fig = plot_certified_accuracy_vs_radius(path, envelope=False, out=out)
    assert _png_ok(out) and len(fig.axes[0].lines) == 2


def test_plot_certified_accuracy_vs_radius_missing_column():
    pytest.importorskip("matplotlib")
    rows = [{k: v for k, v in r.items() if k != "tau"} for r in _curve_rows()]
    with pytest.raises(ValueError, match=r"lacks \['tau'\]"):
        plot_certified_accuracy_vs_radius(rows)
