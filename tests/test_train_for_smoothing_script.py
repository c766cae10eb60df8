"""simulations/train_for_smoothing.py: the doc tables come from the CSVs, the nuclei path runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulations import train_for_smoothing as sim

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "training.md"


@pytest.mark.parametrize("name", ["streets", "nuclei"])
def test_doc_table_is_the_csv(name):
    """docs/training.md shows exactly the table that the script draws from its CSV."""
    csv_path = ROOT / "docs" / "results" / f"training_{name}.csv"
    table = sim.markdown_table(sim.read_csv(csv_path))
    assert table in DOC.read_text(encoding="utf-8"), (
        f"the table of {csv_path.name} in docs/training.md is stale: paste\n{table}")
    assert (ROOT / "docs" / "figures" / f"training_{name}.png").stat().st_size > 0
    rows = sim.read_csv(csv_path)
    assert [r["method"] for r in rows] == list(sim.METHODS) * 2
    for sigma in ("0.25", "0.5"):  # the same budget for both fine-tunings
        tuned = [r for r in rows if r["sigma"] == sigma and r["method"] != "clean"]
        assert len({(r["train_steps"], r["train_forward_passes"], r["seed"])
                    for r in tuned}) == 1


def test_grid_tiles_cover_the_corners_and_only_the_given_pixels():
    image = np.arange(20 * 12, dtype=np.float32).reshape(20, 12)
    target = (image % 2).astype(np.int64)
    tiles = sim.grid_tiles(image, target, 8, (3, 2))
    assert len(tiles) == 6
    assert all(x.shape == (1, 8, 8) and y.shape == (8, 8) for x, y in tiles)
    assert float(tiles[0][0][0, 0, 0]) == image[0, 0]
    assert float(tiles[-1][0][0, -1, -1]) == image[-1, -1]
    seen = np.unique(np.concatenate([x.numpy().ravel() for x, _ in tiles]))
    assert set(seen) <= set(image.ravel()) and seen.size == image.size  # grid covers it
    with pytest.raises(ValueError, match="do not fit"):
        sim.grid_tiles(image, target, 13, (2, 2))


def test_nuclei_quick(tmp_path, capsys):
    """The nuclei part end to end with --quick (tiny budgets), one sigma."""
    from smoothing.real import FETCH_COMMAND, missing_assets

    pytest.importorskip("tifffile")
    if missing_assets(["nuclei_image", "nuclei_mask"]):
        pytest.skip(f"nuclei assets not cached: run `{FETCH_COMMAND}`")
    csv_path = tmp_path / "n.csv"
    args = ["--dataset", "nuclei", "--quick", "--sigmas", "0.25", "--csv", str(csv_path),
            "--png", str(tmp_path / "n.png"), "--work", str(tmp_path / "w"),
            "--no-progress", "--threads", "1"]
    assert sim.main(args) == 0
    rows = sim.read_csv(csv_path)
    assert [r["method"] for r in rows] == list(sim.METHODS)
    assert list(rows[0]) == list(sim.NUCLEI_COLUMNS)
    clean, noise, consistency = rows
    assert clean["train_steps"] == "10" and noise["train_steps"] == consistency["train_steps"]
    assert noise["train_forward_passes"] == consistency["train_forward_passes"]
    for r in rows:
        assert 0 <= float(r["certified_accuracy"]) + float(r["abstain"]) <= 1
        assert 0 <= float(r["certified_iou"]) <= 1
    md = (tmp_path / "n.md").read_text()
    assert md == sim.markdown_table(rows) and "certified nucleus IoU" in md
    assert (tmp_path / "n.png").stat().st_size > 0
    assert (tmp_path / "w" / "noise-sigma0.25" / "model.pt").is_file()
    capsys.readouterr()
    assert sim.main([*args, "--plot-only"]) == 0  # redraws from the CSV
    assert (tmp_path / "n.md").read_text() == md


def test_missing_inputs_exit_2(tmp_path, capsys):
    assert sim.main(["--dataset", "nuclei", "--cache", str(tmp_path / "empty"),
                     "--csv", str(tmp_path / "n.csv"), "--no-progress"]) == 2
    assert "python -m smoothing.real fetch" in capsys.readouterr().err
    assert sim.main(["--csv", str(tmp_path / "none.csv"), "--plot-only"]) == 2
    assert "run without --plot-only" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit) as info:
        sim.main(["--batch", "7"])
    assert info.value.code == 2


def test_streets_quick(tmp_path):
    """The built-in path after the refactoring: tiny budgets, one scene, one sigma."""
    csv_path = tmp_path / "s.csv"
    assert sim.main(["--quick", "--sigmas", "0.5", "--n-train", "8", "--num-images", "1",
                     "--csv", str(csv_path), "--png", str(tmp_path / "s.png"),
                     "--work", str(tmp_path / "w"), "--no-progress", "--threads", "1"]) == 0
    rows = sim.read_csv(csv_path)
    assert list(rows[0]) == list(sim.COLUMNS)
    assert [r["method"] for r in rows] == list(sim.METHODS)
    assert rows[0]["train_steps"] == "0"
    # 8 scenes: noise 2 epochs of 1 step of 8, consistency 1 epoch of 2 steps of 4 x 2
    assert rows[1]["train_steps"] == rows[2]["train_steps"] == "2"
    assert rows[1]["train_forward_passes"] == rows[2]["train_forward_passes"] == "16"
    assert (tmp_path / "s.md").read_text() == sim.markdown_table(rows)
