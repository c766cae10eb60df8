"""smoothing.runs.demo: files, table consistency, per-tau re-test, seeds, resuming, errors, CLI.

Everything runs on a tiny configuration (2 scenes of 16 x 32, 2 clouds of 64 points,
n = 50) so that the module takes a few seconds on 2 CPU cores.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
import torch

from samplers import GaussianL2, RotationZ
from smoothing import ABSTAIN, SegCertify
from smoothing.runs.demo import CLEAN_MODEL, DemoConfig, draw_figures, run_demo, write_tables
from smoothing.runs.demo import config as demo_config
from smoothing.runs.demo import steps as demo_steps

pytest.importorskip("matplotlib")

SEED = 3
ROBUST = "streets-unet-sigma0.25"
TINY = dict(
    n_images=2, height=16, width=32,
    image_runs=((ROBUST, 0.25, 50), (CLEAN_MODEL, 0.25, 50)),
    taus=(0.6, 0.75, 0.9), table_taus=((50, 0.75),), n0=5, alpha=0.01, batch_size=55,
    attack_run=(ROBUST, 0.25, 50, 0.75), attack_eps=(0.5,), attack_steps=2,
    n_clouds=2, num_points=64, rotation_sigmas=(0.25,), rotation_taus=(0.6, 0.75),
    rotation_n0=5, rotation_n=40, rotation_alpha=0.01, rotation_batch_size=45,
    power_args=None,
)  # fmt: skip
CERT_ROBUST = f"streets/cert_{ROBUST}_sigma0.25_n50.npz"
CERT_ROTATION = "rotation/cert_sigma0.25.npz"
ALL_NPZ = sorted([
    "streets/data.npz", f"streets/base_{CLEAN_MODEL}.npz", f"streets/base_{ROBUST}.npz",
    CERT_ROBUST, f"streets/cert_{CLEAN_MODEL}_sigma0.25_n50.npz", "streets/attack.npz",
    "rotation/data.npz", "rotation/base.npz", CERT_ROTATION,
])  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: tiny inputs gain nothing from two, and a busy machine loses a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("demo") / "run"
    paths = run_demo(out, seed=SEED, progress=False, **TINY)
    return out, paths


# ---------------------------------------------------------------------------
# files and tables
# ---------------------------------------------------------------------------


def test_files_written(demo_run):
    out, paths = demo_run
    expected = {"manifest", "streets_table", "streets_table_md", "streets_per_image",
                "streets_curve", "streets_attack", "streets_attack_md", "rotation_table",
                "rotation_table_md", "rotation_per_cloud", "rotation_curve", "fig1",
                "tau_panel", "cert_acc_streets", "cert_acc_rotation"}
    assert set(paths) == expected
    for key, path in paths.items():
        assert path.is_file() and path.stat().st_size > 0, key
        if path.suffix == ".png":
            assert path.read_bytes()[:4] == b"\x89PNG" and path.parent == out / "figures"
    m = _manifest(out)
    assert m["seed"] == SEED and m["preset"] is None and m["config"]["n_images"] == 2
    assert sorted(m["files_computed"]) == ALL_NPZ and m["files_reused"] == []
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporary files
    assert (out / "streets_table.md").read_text().startswith("**Table 1 analogue")
    assert (out / "rotation_table.md").read_text().startswith("**Table 7 analogue")


def test_table_columns_and_rows(demo_run):
    out, _ = demo_run
    streets = _rows(out / "streets_table.csv")
    assert list(streets[0]) == ["model", "method", "sigma", "radius", "n0", "n", "tau",
                                "accuracy", "miou", "miou_dataset", "abstain_rate",
                                "seconds_per_input"]
    assert [r["method"] for r in streets] == ["non-robust model, no smoothing",
                                              "base model, no smoothing", "SegCertify",
                                              "SegCertify"]
    assert {(r["model"], r["n"], r["tau"]) for r in streets[2:]} == {
        (ROBUST, "50", "0.75"), (CLEAN_MODEL, "50", "0.75")}
    assert len(_rows(out / "streets_curve.csv")) == 2 * 3
    assert len(_rows(out / "streets_per_image.csv")) == 2 * 3 * 2
    rotation = _rows(out / "rotation_table.csv")
    assert {"sigma", "sigma_deg", "radius", "radius_deg", "tau", "n", "accuracy",
            "abstain_rate", "axis"} <= set(rotation[0])
    assert [r["tau"] for r in rotation] == ["", "0.6", "0.75"]
    attack = _rows(out / "streets_attack.csv")
    assert [(r["model"], float(r["eps"])) for r in attack] == [
        (CLEAN_MODEL, pytest.approx(0.95 * 0.25 * NormalDist().inv_cdf(0.75), rel=1e-5)),
        (CLEAN_MODEL, 0.5),
        (ROBUST, pytest.approx(0.95 * 0.25 * NormalDist().inv_cdf(0.75), rel=1e-5)),
        (ROBUST, 0.5)]


def _md_header(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("|"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_table_headers_agree_with_the_cli_summary(demo_run):
    from smoothing.runs import Summary

    out, _ = demo_run
    cli = set(_md_header(Summary((), "header").to_markdown()))
    streets = set(_md_header((out / "streets_table.md").read_text()))
    rotation = _md_header((out / "rotation_table.md").read_text())
    # the quantities both show, under one name
    shared = {"σ", "τ", "n", "R", "acc.", "mIoU", "% abstain", "t / input (s)"}
    assert shared <= cli and shared <= streets
    assert {"n0", "n", "τ", "acc.", "% abstain", "t / input (s)", "R (rad)",
            "σ (rad)"} <= set(rotation)


def _check_rows_against_labels(rows, runs, targets, out, key):
    """Every per-input row agrees with the saved labels (ABSTAIN is never a class)."""
    by_file = {}
    for row in rows:
        run = next(r for r in runs if float(row["sigma"]) == r["sigma"]
                   and r.get("model", row["model"]) == row["model"])
        saved = by_file.setdefault(run["file"], _npz(out / run["file"]))
        i, j = int(row[key]), run["taus"].index(float(row["tau"]))
        lab, tgt = saved["labels"][i, j].astype(np.int64), targets[i]
        valid = tgt != 255
        assert float(row["abstain_rate"]) == pytest.approx((lab[valid] == ABSTAIN).mean(),
                                                           rel=1e-5, abs=1e-12)
        correct = int(((lab == tgt) & valid).sum())
        assert int(row["num_correct"]) == correct
        assert float(row["accuracy"]) == pytest.approx(correct / valid.sum(), rel=1e-5)
        tau, sigma = float(row["tau"]), float(row["sigma"])
        assert float(row["radius"]) == pytest.approx(sigma * NormalDist().inv_cdf(tau),
                                                     rel=1e-5)
        secs = saved["time_sampling"][i] + saved["time_testing"][i, j]
        assert float(row["seconds_per_input"]) == pytest.approx(secs, rel=1e-5)
        # labels are ABSTAIN or the guess, and the guesses are classes
        assert ((lab == ABSTAIN) | (lab == saved["guesses"][i])).all()
        assert saved["guesses"][i].min() >= 0
    return by_file


def test_streets_numbers_agree_with_saved_npz(demo_run):
    out, _ = demo_run
    m = _manifest(out)["streets"]
    targets = _npz(out / "streets/data.npz")["labels"]
    files = _check_rows_against_labels(_rows(out / "streets_per_image.csv"), m["runs"],
                                       targets, out, "image")
    assert len(files) == 2
    for row in _rows(out / "streets_curve.csv"):  # pooled over the scenes
        run = next(r for r in m["runs"] if r["model"] == row["model"])
        lab = files[run["file"]]["labels"][:, run["taus"].index(float(row["tau"]))]
        assert float(row["accuracy"]) == pytest.approx((lab == targets).mean(), rel=1e-5)
        assert float(row["abstain_rate"]) == pytest.approx((lab == ABSTAIN).mean(),
                                                           rel=1e-5, abs=1e-12)
    # the base rows: accuracy of the saved clean predictions, nothing abstained
    for row in _rows(out / "streets_table.csv")[:2]:
        preds = _npz(out / m["base"][row["model"]])["preds"]
        assert float(row["accuracy"]) == pytest.approx((preds == targets).mean(), rel=1e-5)
        assert float(row["abstain_rate"]) == 0.0


def test_rotation_numbers_agree_with_saved_npz(demo_run):
    out, _ = demo_run
    m = _manifest(out)["rotation"]
    data = _npz(out / "rotation/data.npz")
    assert data["points"].shape == (2, 64, 6)  # the model reads normals
    _check_rows_against_labels(_rows(out / "rotation_per_cloud.csv"), m["runs"],
                               data["labels"], out, "cloud")
    radius_deg = [float(r["radius_deg"]) for r in _rows(out / "rotation_curve.csv")]
    assert radius_deg == pytest.approx(
        [np.degrees(0.25 * NormalDist().inv_cdf(t)) for t in (0.6, 0.75)], rel=1e-5)


def test_results_are_not_trivial(demo_run):
    """The tiny configuration certifies some components and abstains on others."""
    out, _ = demo_run
    labels = _npz(out / CERT_ROBUST)["labels"]  # (image, tau, H, W)
    frac = (labels != ABSTAIN).mean(axis=(0, 2, 3))
    assert frac[0] > frac[1] > 0 and frac[2] == 0  # tau 0.9 needs n > 50
    assert 0 < (_npz(out / CERT_ROTATION)["labels"] != ABSTAIN).mean() < 1


# ---------------------------------------------------------------------------
# the per-tau re-test, the attack
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", [ROBUST, CLEAN_MODEL])
def test_retest_per_tau_equals_direct_segcertify(demo_run, model_name):
    from smoothing.models import load_model

    out, _ = demo_run
    saved = _npz(out / f"streets/cert_{model_name}_sigma0.25_n50.npz")
    images = torch.from_numpy(_npz(out / "streets/data.npz")["images"])
    model = load_model(model_name)
    keys = demo_steps._run_keys(1, model_name, 0.25, 50)
    for j, tau in enumerate(TINY["taus"]):
        certifier = SegCertify(model, GaussianL2(0.25), num_classes=8, n0=5, n=50, tau=tau,
                               alpha=0.01, correction="holm", batch_size=55)
        for i, x in enumerate(images):
            cert = certifier.certify(x, generator=demo_steps._generator(SEED, *keys, i))
            np.testing.assert_array_equal(cert.labels.numpy(), saved["labels"][i, j])
            np.testing.assert_array_equal(cert.counts.numpy(), saved["counts"][i])
            assert cert.radius == pytest.approx(saved["radius"][j])


def test_rotation_retest_equals_direct_segcertify(demo_run):
    from smoothing.datasets import category_parts
    from smoothing.models import CategoryMasked, load_model

    out, _ = demo_run
    saved = _npz(out / CERT_ROTATION)
    data = _npz(out / "rotation/data.npz")
    base = load_model(DemoConfig.rotation_model)
    keys = demo_steps._run_keys(3, DemoConfig.rotation_model, 0.25, 40)
    i = 1
    model = CategoryMasked(base, category_parts(int(data["categories"][i]))).eval()
    for j, tau in enumerate(TINY["rotation_taus"]):
        cert = SegCertify(model, RotationZ(0.25, axis="y"), num_classes=50, n0=5, n=40,
                          tau=tau, alpha=0.01, batch_size=45).certify(
            torch.from_numpy(data["points"][i]),
            generator=demo_steps._generator(SEED, *keys, i))
        np.testing.assert_array_equal(cert.labels.numpy(), saved["labels"][i, j])


def test_attack_budget_is_just_inside_the_certified_radius(demo_run):
    from smoothing.models import load_model

    out, _ = demo_run
    a = _npz(out / "streets/attack.npz")
    radius = 0.25 * NormalDist().inv_cdf(0.75)
    assert float(a["radius"]) == pytest.approx(radius)
    assert float(a["eps"]) == pytest.approx(0.95 * radius)
    assert a["table_eps"].tolist() == pytest.approx([0.95 * radius, 0.5])
    assert 0 < float(a["delta_norm"]) <= float(a["eps"])
    assert 0 < float(a["delta_norm_robust"]) <= float(a["eps"])
    d = torch.from_numpy(a["adv"]).double() - torch.from_numpy(a["image"]).double()
    assert float(d.norm()) <= float(a["eps"])
    with torch.inference_mode():
        pred = load_model(CLEAN_MODEL)(torch.from_numpy(a["adv"])[None]).argmax(1)[0]
    np.testing.assert_array_equal(pred.numpy(), a["pred_adv"])
    cert = _npz(out / CERT_ROBUST)["labels"][0, TINY["taus"].index(0.75)]
    np.testing.assert_array_equal(a["certified"], cert)
    text = (out / "streets_attack.md").read_text()
    assert "0.95 x the certified radius" in text


# ---------------------------------------------------------------------------
# seeds and resuming
# ---------------------------------------------------------------------------


def _without_times(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in arrays.items() if not k.startswith("time") and k != "seconds"}


def _table_without_times(path: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "seconds_per_input"} for r in _rows(path)]


def test_resume_recomputes_only_missing_or_damaged_files(demo_run, tmp_path):
    out, _ = demo_run
    again = tmp_path / "again"
    shutil.copytree(out, again)  # keeps the modification times
    (again / CERT_ROBUST).unlink()  # killed before this run finished
    damaged = again / CERT_ROTATION
    damaged.write_bytes(damaged.read_bytes()[:100])  # a truncated file (not ours: atomic)
    for name in ("manifest.json", "streets_table.csv", "rotation_table.csv"):
        (again / name).unlink()
    mtimes = {p: (again / p).stat().st_mtime_ns for p in ALL_NPZ
              if p not in (CERT_ROBUST, CERT_ROTATION)}
    dead = _dead_pid()  # temporary files of a killed demo are removed
    stale = [again / f".manifest.json.{dead}.tmp", again / "streets" / f".x.npz.{dead}.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    run_demo(again, seed=SEED, progress=False, **TINY)
    assert not any(path.exists() for path in stale)
    m = _manifest(again)
    assert m["files_computed"] == [CERT_ROBUST, CERT_ROTATION]
    assert sorted(m["files_reused"]) == sorted(mtimes)
    assert {p: (again / p).stat().st_mtime_ns for p in mtimes} == mtimes
    # same seed -> identical arrays (timings aside) and identical tables
    for rel in (CERT_ROBUST, CERT_ROTATION):
        old, new = _without_times(_npz(out / rel)), _without_times(_npz(again / rel))
        assert old.keys() == new.keys()
        for k in old:
            np.testing.assert_array_equal(old[k], new[k], err_msg=k)
    for name in ("streets_table.csv", "streets_per_image.csv", "streets_curve.csv",
                 "rotation_table.csv", "rotation_per_cloud.csv", "rotation_curve.csv"):
        assert _table_without_times(again / name) == _table_without_times(out / name), name
    assert (again / "streets_attack.csv").read_text() == (out / "streets_attack.csv").read_text()


def test_other_seed_recomputes_the_random_files_only(demo_run, tmp_path):
    out, _ = demo_run
    other = tmp_path / "other"
    shutil.copytree(out, other)
    run_demo(other, seed=SEED + 1, progress=False, **TINY)
    m = _manifest(other)
    random = [CERT_ROBUST, f"streets/cert_{CLEAN_MODEL}_sigma0.25_n50.npz",
              "streets/attack.npz", CERT_ROTATION]
    assert sorted(m["files_computed"]) == sorted(random)
    assert sorted(m["files_reused"]) == sorted(set(ALL_NPZ) - set(random))
    assert not np.array_equal(_npz(out / CERT_ROBUST)["counts"],
                              _npz(other / CERT_ROBUST)["counts"])


def test_tables_and_figures_are_rebuilt_from_saved_files(demo_run, tmp_path):
    out, _ = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "figures")
    (copy / "streets_curve.csv").unlink()
    paths = draw_figures(copy)  # re-creates the curve tables it needs
    assert set(paths) == {"fig1", "tau_panel", "cert_acc_streets", "cert_acc_rotation"}
    assert all(p.is_file() for p in paths.values())
    assert (copy / "streets_curve.csv").read_text() == (out / "streets_curve.csv").read_text()
    assert write_tables(copy, echo=False)["streets_table"] == copy / "streets_table.csv"
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        write_tables(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        draw_figures(tmp_path / "nothing")


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"seed": -1}, ValueError, r"`seed` must be an integer in \[0, 2\*\*64 - 1\]; got -1"),
    ({"seed": 1.5}, TypeError, "`seed` must be an integer"),
    ({"seed": True}, TypeError, "`seed` must be an integer"),
    ({"image_runs": (("no-such-model", 0.25, 50),)}, ValueError,
     "`image_runs` must name a built-in model"),
    ({"rotation_model": ROBUST}, ValueError, "`rotation_model` must be a model with input"),
    ({"image_runs": (("parts-pointnet-sigma0.25", 0.25, 50),)}, ValueError,
     "`image_runs` must be a model with input layout image"),
    ({"n_images": 0}, ValueError, "`n_images` must be an integer >= 1"),
    ({"num_points": 2.5}, TypeError, "`num_points` must be an integer"),
    ({"taus": (0.75, 1.0)}, ValueError, r"`tau` must lie in \[1/2, 1\)"),
    ({"alpha": 0.0}, ValueError, r"`alpha` must lie in \(0, 1\)"),
    ({"image_runs": ((ROBUST, -0.25, 50),)}, ValueError, "sigma"),
    ({"attack_run": (ROBUST, 0.25, 999, 0.75)}, ValueError, "`attack_run` must be"),
    ({"attack_run": (CLEAN_MODEL, 0.25, 50, 0.75)}, ValueError, "noise-trained model"),
    ({"attack_margin": 0.0}, ValueError, "`attack_margin` must lie in"),
    ({"table_taus": ((999, 0.75),)}, ValueError, "`table_taus` must hold"),
    ({"rotation_sigmas": ()}, ValueError, "must not be empty"),
    ({"power_args": ("--quick", 1)}, TypeError, "`power_args`"),
    ({"no_such_setting": 1}, TypeError, r"unknown setting\(s\) \['no_such_setting'\]"),
    ({"config": "quick"}, TypeError, "`config` must be a DemoConfig"),
])  # fmt: skip
def test_bad_settings_raise_before_anything_is_written(tmp_path, kwargs, error, match):
    out = tmp_path / "never"
    with pytest.raises(error, match=match):
        run_demo(out, progress=False, **{**TINY, **kwargs})
    assert not out.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_demo_into_the_same_folder_is_refused(tmp_path, capsys):
    from smoothing._io import FolderLock, FolderLockedError
    from smoothing.cli import main

    out = tmp_path / "busy"
    with FolderLock(out, ".lock"):  # a demo running into `out` (a lock is per open file)
        with pytest.raises(FolderLockedError, match="in use by another run"):
            run_demo(out, progress=False, **TINY)
        assert main(["demo", "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "in use by another run" in err[0], err
        assert [p.name for p in out.iterdir()] == [".lock"]  # nothing else written
    assert not out.joinpath(".lock").exists()


def test_seed_and_out_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 2\*\*64 - 1\]"):
        run_demo(tmp_path / "never", seed=2**64, progress=False, **TINY)
    with pytest.raises(ValueError, match="`out_dir` must name a folder"):
        run_demo("", progress=False, **TINY)
    assert not (tmp_path / "never").exists()


def test_presets_are_valid_and_quick_is_smaller():
    demo_config.check_config(demo_config.QUICK)
    demo_config.check_config(demo_config.FULL)
    assert demo_config.QUICK.n_images < demo_config.FULL.n_images
    assert demo_config.QUICK.attack_margin == demo_config.FULL.attack_margin == 0.95


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------


def test_cli_demo_quick_runs_and_resumes(tmp_path, monkeypatch, capsys):
    from smoothing.cli import main

    tiny_quick = DemoConfig(**{**TINY, "power_args": ("--reps", "1", "--figures", "2a",
                                                      "--quick")})
    monkeypatch.setattr(demo_config, "QUICK", tiny_quick)  # what `--quick` runs
    out = tmp_path / "cli"
    argv = ["demo", "--out", str(out), "--quick", "--seed", "2", "--no-progress"]
    assert main(argv) == 0
    m = _manifest(out)
    assert m["preset"] == "quick" and m["seed"] == 2 and m["power_computed"] is True
    assert m["config"]["n_images"] == 2
    for rel in ("power/power_curves.csv", "power/power_fig2a.png", "streets_table.md",
                "rotation_table.md", "figures/fig1_streets.png"):
        assert (out / rel).is_file(), rel
    assert "Table 1 analogue" in capsys.readouterr().out
    assert main(argv) == 0  # resumed: nothing is computed again
    m = _manifest(out)
    assert m["power_computed"] is False and m["files_computed"] == []
    assert sorted(m["files_reused"]) == ALL_NPZ
    assert [(h["files_computed"], h["files_reused"]) for h in m["history"]] == [(9, 0), (0, 9)]
    assert m["history"][0]["timings_s"]["total"] > m["history"][1]["timings_s"]["streets"]
