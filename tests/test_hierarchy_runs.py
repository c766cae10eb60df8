"""Hierarchical certification runs: ``segcertify certify --hierarchy`` and the run store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from smoothing.cli import main
from smoothing.cli._common import HIERARCHY_NAMES, HIERARCHY_RULE_NAMES
from smoothing.hierarchical import RULES
from smoothing.hierarchy import BUILTIN_DIR, BUILTIN_HIERARCHIES, Hierarchy, builtin_hierarchy
from smoothing.runs import RunFolderWarning, summarize
from smoothing.runs.config import RunConfig, check_config
from smoothing.runs.summary import HIERARCHY_COLUMNS, SUMMARY_COLUMNS

#: A tiny run: two 16x16 street scenes, one sampling shared by two tau.
STREETS = ["certify", "--dataset", "streets", "--image-size", "16", "16", "--num-inputs", "2",
           "--n0", "4", "--n", "64", "--tau", "0.6", "0.75", "--alpha", "0.01",
           "--no-progress", "--device", "cpu"]


def _certify(out: Path, *extra: str) -> int:
    return main([*STREETS, *extra, "--out", str(out)])


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _csv(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def hier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hier") / "run"
    assert _certify(out, "--hierarchy", "streets") == 0
    return out


def test_names_are_the_built_in_hierarchies() -> None:
    assert HIERARCHY_NAMES == BUILTIN_HIERARCHIES
    assert HIERARCHY_RULE_NAMES == RULES
    files = {p.stem for p in BUILTIN_DIR.glob("*.json")}
    assert files <= set(HIERARCHY_NAMES)
    for name in HIERARCHY_NAMES:
        assert builtin_hierarchy(name).num_levels >= 2


def test_run_records_hier_state_and_arrays(hier_run: Path) -> None:
    h = builtin_hierarchy("streets")
    config = json.loads((hier_run / "config.json").read_text())
    assert config["config"]["hierarchy"] == "streets"
    assert config["config"]["hierarchy_rule"] == "nested"
    assert config["derived"]["hierarchy_sha256"] == h.fingerprint
    certs = [r for r in _records(hier_run) if r["kind"] == "certify"]
    assert len(certs) == 4  # 2 inputs x 2 tau
    for r in certs:
        assert r["hierarchy"] == "streets" and r["hierarchy_sha256"] == h.fingerprint
        assert r["hier"]["num_inputs"] == 1 and r["hier"]["num_components"] == r["num_valid"]
        with np.load(hier_run / r["labels_file"]) as z:
            nodes, levels, labels = z["nodes"], z["levels"], z["labels"]
        # the flat labels are the fine nodes; levels are the nodes' levels
        np.testing.assert_array_equal(labels, np.where(nodes < h.num_classes, nodes, -1))
        np.testing.assert_array_equal(levels, np.where(nodes >= 0, h.levels[nodes], -1))
        # the hier state adds up; its fine level is the flat certificate (nested rule)
        hier = r["hier"]
        assert sum(hier["certified"]) + hier["abstained"] == r["num_valid"]
        assert hier["certified"][0] == r["num_valid"] - r["num_abstain"]
        if r["num_valid"] == r["num_components"]:
            assert sum(hier["certified"]) == int((nodes >= 0).sum())
    # the shared sampling: the second tau re-tests the first's counts
    assert sum(r["sampling_reused"] for r in certs) == 2


def test_summary_columns_and_flat_consistency(hier_run: Path) -> None:
    rows = _csv(hier_run)
    assert tuple(rows[0]) == SUMMARY_COLUMNS + HIERARCHY_COLUMNS
    base, *certs = rows
    assert base["method"] == "base" and base["cig"] == "" and base["hierarchy"] == ""
    for row in certs:
        assert row["hierarchy"] == "streets" and row["hierarchy_rule"] == "nested"
        fine, coarse = float(row["certified_fine_pct"]), float(row["certified_coarse_pct"])
        abstain = float(row["hier_abstain_pct"])
        assert fine + coarse + abstain == pytest.approx(100.0)
        # nested: the fine level is the flat certificate, coarser nodes only add
        assert 100.0 - fine == pytest.approx(float(row["abstain_pct"]))
        assert float(row["accuracy_fine_pct"]) == pytest.approx(100 * float(row["accuracy"]))
        assert 0.0 <= float(row["cig"]) <= 1.0
    md = (hier_run / "summary.md").read_text()
    assert "CIG" in md and "% coarse cert." in md and "hierarchy `streets` (nested)" in md


def test_resume_skips_done_work(hier_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _certify(hier_run, "--hierarchy", "streets") == 0
    assert "0 (input, grid point) pairs computed, 6 were already done" in capsys.readouterr().err


def test_resume_with_another_rule_is_refused(hier_run: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _certify(hier_run, "--hierarchy", "streets", "--hierarchy-rule", "adaptive") == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("segcertify: error:") and "`--hierarchy-rule`" in last


def test_one_level_hierarchy_gives_the_flat_labels(tmp_path: Path) -> None:
    flat_file = tmp_path / "flat.json"
    flat_file.write_text(json.dumps(Hierarchy.flat(8).to_dict()))
    assert _certify(tmp_path / "flat") == 0
    assert _certify(tmp_path / "one", "--hierarchy", str(flat_file)) == 0
    flat, one = _records(tmp_path / "flat"), _records(tmp_path / "one")
    assert [r["grid"] for r in flat] == [r["grid"] for r in one]
    for a, b in zip(flat, one, strict=True):
        with np.load(tmp_path / "flat" / a["labels_file"]) as za, \
                np.load(tmp_path / "one" / b["labels_file"]) as zb:
            np.testing.assert_array_equal(za["labels"], zb["labels"])
            if a["kind"] == "certify":
                np.testing.assert_array_equal(za["counts"], zb["counts"])
                np.testing.assert_array_equal(zb["nodes"], zb["labels"])
        assert a["num_abstain"] == b["num_abstain"]
    cfg = json.loads((tmp_path / "one" / "config.json").read_text())["config"]
    assert cfg["hierarchy"] == str(flat_file.resolve())
    # a flat run's config.json and summary.csv keep the flat layout
    flat_cfg = json.loads((tmp_path / "flat" / "config.json").read_text())["config"]
    assert "hierarchy" not in flat_cfg and "hierarchy_rule" not in flat_cfg
    assert tuple(_csv(tmp_path / "flat")[0]) == SUMMARY_COLUMNS
    row = _csv(tmp_path / "one")[1]
    assert row["miou_coarse"] == "nan" and float(row["certified_coarse_pct"]) == 0.0


def test_tampered_hier_state_is_skipped(hier_run: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(hier_run, out)
    lines = (out / "results.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    assert rec["kind"] == "certify"
    rec["hier"]["certified"] = [-1, 0]
    lines[1] = json.dumps(rec)
    other = json.loads(lines[2])
    other["hier"]["hierarchy_sha256"] = "0" * 64
    lines[2] = json.dumps(other)
    (out / "results.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(RunFolderWarning, match="`hier`") as caught:
        summary = summarize(out)
    assert summary.skipped == 2 and len(caught) == 2
    assert sum(r["num_inputs"] for r in summary.rows if r["method"] != "base") == 2


@pytest.mark.parametrize("content", ["{not json", '{"tree": ["a", "b"]}',
                                     '{"classes": ["a", "b"], "tree": ["a", "b"]}'])
def test_bad_hierarchy_file_is_one_line(tmp_path: Path, content: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "run"
    assert _certify(out, "--hierarchy", str(bad)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segcertify: ") and "\n" not in err
    assert not out.exists()


def test_unknown_hierarchy_name_lists_the_built_ins(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert _certify(tmp_path / "run", "--hierarchy", "nope") == 2
    err = capsys.readouterr().err
    assert "'parts'" in err and "nope" in err


def test_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    import multitest

    with pytest.raises(ValueError, match="`hierarchy_rule`"):
        check_config(RunConfig(hierarchy_rule="adaptive"))
    with pytest.raises(ValueError, match="`hierarchy_rule`"):
        check_config(RunConfig(hierarchy="streets", hierarchy_rule="top"))
    with pytest.raises(TypeError, match="`hierarchy`"):
        check_config(RunConfig(hierarchy=3))  # type: ignore[arg-type]
    # every certifying correction is nested today; one that is not is refused
    monkeypatch.setattr(multitest, "NESTED_METHODS", ("holm",))
    with pytest.raises(ValueError, match="`correction`.*'bonferroni'"):
        check_config(RunConfig(hierarchy="streets", correction="bonferroni"))
    check_config(RunConfig(hierarchy="streets", correction="holm"))


def test_the_docs_command_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import re
    import shlex

    doc = (Path(__file__).resolve().parents[1] / "docs" / "hierarchical.md").read_text()
    section = doc.split("## From the command line", 1)[1]
    (block,) = re.findall(r"```bash\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[0] == "segcertify"
    out = argv.index("--out")
    argv[out + 1] = str(tmp_path / "run")
    assert main([*argv[1:], "--device", "cpu", "--no-progress"]) == 0
    assert "CIG" in capsys.readouterr().out
    assert tuple(_csv(tmp_path / "run")[0]) == SUMMARY_COLUMNS + HIERARCHY_COLUMNS
