"""simulations/train_base_models.py: a tiny seeded run, and resuming without retraining."""

from __future__ import annotations

import csv

import pytest

from simulations import train_base_models as tb


@pytest.fixture
def tiny_recipe(monkeypatch):
    recipe = {**tb.RECIPES["points"], "n_test": 6, "num_points": 64, "batch_size": 4}
    monkeypatch.setitem(tb.RECIPES, "points", recipe)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_resume_skips_finished_models_and_fresh_retrains(tmp_path, tiny_recipe, capsys):
    args = ["--out", str(tmp_path / "ck"), "--csv", str(tmp_path / "a.csv"), "--models",
            "parts-pointnet-sigma0.25", "--epochs", "1", "--n-train", "8", "--threads", "1"]
    tb.main(args)
    ckpt = tmp_path / "ck" / "parts-pointnet-sigma0.25.pt"
    first = _rows(tmp_path / "a.csv")
    assert len(first) == len(tb.EVAL_SIGMAS) and ckpt.exists()
    mtime = ckpt.stat().st_mtime_ns
    capsys.readouterr()

    tb.main([*args[:3], str(tmp_path / "b.csv"), *args[4:]])
    assert "not retrained" in capsys.readouterr().out
    assert ckpt.stat().st_mtime_ns == mtime
    again = _rows(tmp_path / "b.csv")
    assert [r["eval_sigma"] for r in again] == [r["eval_sigma"] for r in first]
    for a, b in zip(first, again, strict=True):  # stored rounded to 4 digits
        assert float(a["accuracy"]) == pytest.approx(float(b["accuracy"]), abs=5e-5)

    tb.main([*args, "--epochs", "2"])  # other settings: trained again
    assert "training parts-pointnet-sigma0.25" in capsys.readouterr().out
    tb.main([*args, "--fresh"])
    assert "training parts-pointnet-sigma0.25" in capsys.readouterr().out
    assert not list((tmp_path / "ck").glob(".*.tmp"))  # atomic writes leave no temp file
