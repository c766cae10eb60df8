"""Fault injection for the run store (issue 19): kill, corrupt, tamper, delete, race,
read-only and full disks.

Each test damages a run folder the way a crash, an editor, another program or a
full disk would, then checks that every reader (resume, ``summarize``, the sharded
readers, ``radius-maps``) skips exactly the damaged part with a warning naming the
file and line, that a resume computes it again, and that nothing else changes.
The folders are tiny (16 x 16 scenes, 2 inputs, n0 = 4, n = 32).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from smoothing import runs
from smoothing.cli import main
from smoothing.runs import RunFolderWarning, completed_keys, merge_results, pending_indices

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parent.parent
OPTS = ["--dataset", "streets", "--image-size", "16", "16", "--num-inputs", "2", "--n0", "4",
        "--n", "32", "--alpha", "0.01", "--batch-size", "32", "--device", "cpu",
        "--no-progress"]  # fmt: skip
CERTIFY = ["certify", *OPTS, "--tau", "0.6", "0.7"]
MAPS = ["radius-maps", *OPTS]
GRID = ["base", "sigma0.25-tau0.6-n32", "sigma0.25-tau0.7-n32"]
KEYS = {(i, g) for i in range(2) for g in GRID}
#: fields that differ between equal results (timings, which process wrote them)
VOLATILE = {"time_sampling", "time_testing", "time_forward", "rank", "sampling_reused"}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A finished certify run (6 records), made once; tests work on copies."""
    out = tmp_path_factory.mktemp("clean") / "run"
    assert main([*CERTIFY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run(clean, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(clean, out)
    return out


def _lines(out: Path, name: str = "results.jsonl") -> list[bytes]:
    return (out / name).read_bytes().splitlines(keepends=True)


def _write_lines(out: Path, lines: list[bytes], name: str = "results.jsonl") -> None:
    (out / name).write_bytes(b"".join(lines))


def _record(line: bytes) -> dict:
    return json.loads(line)


def _line(record: dict) -> bytes:
    return (json.dumps(record) + "\n").encode()


def _table(out: Path) -> str:
    return runs.summarize(out).to_csv()


def _results(out: Path) -> dict:
    return {(r["input"], r["grid"]): {k: v for k, v in r.items() if k not in VOLATILE}
            for r in runs.read_records(out)}


def _labels(out: Path) -> dict[str, dict[str, np.ndarray]]:
    arrays = {}
    for path in sorted((out / "labels").glob("*.npz")):
        with np.load(path, allow_pickle=False) as z:
            arrays[path.name] = {k: z[k] for k in z.files}
    return arrays


def _same_labels(a: Path, b: Path) -> None:
    la, lb = _labels(a), _labels(b)
    assert la.keys() == lb.keys()
    for name in la:
        for k in la[name]:
            np.testing.assert_array_equal(la[name][k], lb[name][k], err_msg=f"{name}:{k}")


def _computed(err: str) -> int:
    """The number of pairs a certify run reports as computed now."""
    line = next(x for x in err.splitlines() if "pairs computed" in x)
    return int(line.split(": ")[-1].split(" (input")[0])


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("segcertify: error:"), err
    return err[0]


# --------------------------------------------------------------------- line level
def test_a_corrupt_middle_line_is_skipped_by_every_reader_with_one_warning(run, capsys):
    clean_table = _table(run)
    lines = _lines(run)
    _write_lines(run, [*lines[:2], b"{not json\n", *lines[2:]])
    where = r"results.jsonl': line 3 skipped: not valid JSON"
    with pytest.warns(RunFolderWarning, match=where):
        assert len(runs.read_records(run)) == 6
    with pytest.warns(RunFolderWarning, match=where):  # the sharded readers: no error
        assert completed_keys(run, key=("input", "grid")) == KEYS
    with pytest.warns(RunFolderWarning, match=where):
        assert pending_indices(range(2), run, 0, 1, key="input") == []
    with pytest.warns(RunFolderWarning, match=where):
        assert _table(run) == clean_table
    capsys.readouterr()
    assert main([*CERTIFY, "--out", str(run)]) == 0  # resumable; nothing to redo
    err = capsys.readouterr().err
    assert _computed(err) == 0
    assert err.count("line 3 skipped") == 1  # one warning, though resume and summary read it


def test_u2028_inside_a_string_is_no_line_break(run):
    lines = _lines(run)
    rec = _record(lines[0])
    rec["note"] = "a\u2028b\u2029c\x85d"  # Unicode line separators, written raw
    lines[0] = (json.dumps(rec, ensure_ascii=False) + "\n").encode()
    _write_lines(run, lines)
    assert completed_keys(run, key=("input", "grid")) == KEYS
    assert {r.get("note") for r in runs.read_records(run)} >= {rec["note"]}
    shutil.rmtree(run / "labels")  # a plain JSON-lines folder: the generic reader
    (run / "config.json").unlink()
    assert len(merge_results(run, key=("input", "grid"))) == 6


def test_a_line_that_is_not_utf8_is_named(run):
    lines = _lines(run)
    _write_lines(run, [lines[0], b'{"input": "\xff\xfe"}\n', *lines[1:]])
    with pytest.warns(RunFolderWarning, match=r"line 2 skipped: not UTF-8 \(byte 0xff"):
        assert completed_keys(run, key=("input", "grid")) == KEYS
    with pytest.warns(RunFolderWarning, match=r"line 2 skipped: not UTF-8"):
        assert len(runs.read_records(run)) == 6


def test_a_complete_bad_last_line_is_warned_a_torn_one_ignored_and_cut(run, recwarn):
    (run / "results.rank0.jsonl").write_bytes(b'{"index": 0}\n[1]\n')
    (run / "config.json").rename(run / "config.json.bak")  # the generic reader
    with pytest.warns(RunFolderWarning, match=r"results.rank0.jsonl': line 2 skipped"):
        assert 0 in completed_keys(run)
    (run / "results.rank0.jsonl").write_bytes(b'{"index": 0}\n{"index": 1, "lab')
    recwarn.clear()
    assert completed_keys(run) == {0}
    assert not [w for w in recwarn if issubclass(w.category, RunFolderWarning)]
    (run / "results.rank0.jsonl").unlink()
    (run / "config.json.bak").rename(run / "config.json")
    _write_lines(run, [*_lines(run), b'{"kind": "base", "inp'])  # a killed write
    assert len(runs.read_records(run)) == 6
    assert main([*CERTIFY, "--out", str(run)]) == 0
    assert (run / "results.jsonl").read_bytes().endswith(b"}\n")  # cut off on resume


# ----------------------------------------------------------------------- records
def _tamper(field, value):
    def change(rec):
        rec[field] = value
        return rec
    return change


TAMPERED = {
    "alpha": _tamper("alpha", 0.5),
    "input": _tamper("input", 999),
    "grid": _tamper("grid", "sigma0.25-tau0.9-n32"),
    "num_correct": lambda r: {**r, "num_correct": r["num_valid"] + 100},
    "num_valid_text": _tamper("num_valid", "lots"),
    "null_time": _tamper("time_sampling", None),
    "short_lists": lambda r: {**r, "intersection": r["intersection"][:-1]},
    "inter_above_union": lambda r: {**r, "intersection": [u + 1 for u in r["union"]]},
    "tau": _tamper("tau", 0.7),
    "kind": _tamper("kind", "attack"),
    "labels_file": _tamper("labels_file", "../../etc/passwd"),
    "noise_seed": _tamper("noise_seed", 1),
    "digest": _tamper("config_digest", "0" * 64),
    "radius_nan": _tamper("radius", float("nan")),
}


@pytest.mark.parametrize("how", list(TAMPERED))
def test_a_tampered_record_ahead_of_the_real_one_changes_nothing(run, how):
    clean_table = _table(run)
    lines = _lines(run)
    bad = TAMPERED[how](_record(lines[1]))  # the certify record of input 0 at tau 0.6
    _write_lines(run, [_line(bad), *lines])
    with pytest.warns(RunFolderWarning, match="results.jsonl': line 1 skipped: "):
        summary = runs.summarize(run)
    assert summary.to_csv() == clean_table and summary.skipped == 1
    assert all(r["num_inputs"] == 2 for r in summary.rows) and len(summary.rows) == 3


@pytest.mark.parametrize("how", ["alpha", "num_correct", "num_valid_text", "null_time",
                                 "short_lists", "noise_seed"])
def test_a_tampered_record_is_computed_again_on_resume(run, clean, how, capsys):
    lines = _lines(run)
    lines[1] = _line(TAMPERED[how](_record(lines[1])))
    _write_lines(run, lines)
    capsys.readouterr()
    assert main([*CERTIFY, "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert _computed(err) == 1 and "line 2 skipped" in err
    assert _results(run) == _results(clean)
    _same_labels(run, clean)


def test_summarize_warns_with_the_count_and_says_so_in_the_table(run, capsys):
    md = (run / "summary.md").read_text()
    lines = _lines(run)
    lines[1] = _line(TAMPERED["num_correct"](_record(lines[1])))
    _write_lines(run, lines)
    capsys.readouterr()
    assert main(["summarize", str(run)]) == 0
    err = capsys.readouterr().err
    assert "segcertify: warning:" in err and "leaves out 1 bad line" in err
    new = (run / "summary.md").read_text()
    assert new != md and "1 line of the results failed their checks" in new


# ------------------------------------------------------------------- config.json
@pytest.mark.parametrize("edit", [("config", "sampler", "laplace"), ("config", "alpha", 0.5),
                                  ("derived", "num_classes", 9)])
def test_an_edited_config_json_is_refused_in_one_line(run, capsys, edit):
    blob = json.loads((run / "config.json").read_text())
    blob[edit[0]][edit[1]] = edit[2]
    (run / "config.json").write_text(json.dumps(blob))
    for argv in (["summarize", str(run)], [*CERTIFY, "--out", str(run)]):
        capsys.readouterr()
        assert main(argv) == 2
        line = _one_error(capsys)
        assert "config.json" in line and ("digest" in line or "other options" in line)


def test_a_config_json_edited_with_its_digest_matches_no_record(run, capsys):
    from smoothing.runs._checks import digest

    blob = json.loads((run / "config.json").read_text())
    blob["config"]["sampler"] = "laplace"
    blob["digest"] = digest(blob)
    (run / "config.json").write_text(json.dumps(blob))
    with pytest.warns(RunFolderWarning, match="`config_digest` does not match"):
        with pytest.raises(ValueError, match=r"no finished results yet \(6 skipped"):
            runs.summarize(run)


@pytest.mark.parametrize("blob", [{"format": "segcertify.run", "format_version": 3},
                                  {"format": "segcertify.run", "format_version": 3,
                                   "config": [1], "derived": {}},
                                  "not an object", {"format": "segcertify.run",
                                                    "format_version": 99}])
def test_a_malformed_config_json_is_one_line(run, capsys, blob):
    (run / "config.json").write_text(json.dumps(blob))
    assert main(["summarize", str(run)]) == 2
    line = _one_error(capsys)
    assert "config.json" in line


# ------------------------------------------------------------------- label files
@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "wrong_shape",
                                    "no_counts"])
def test_a_lost_label_file_is_not_done(run, clean, capsys, damage):
    path = run / "labels" / "000001-sigma0.25-tau0.6-n32.npz"
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * path.stat().st_size)
    else:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        if damage == "wrong_shape":
            arrays = {k: v[:8] for k, v in arrays.items()}
        else:
            del arrays["counts"]
        np.savez_compressed(path, **arrays)
        # the record names the new size: only the arrays themselves can tell
        lines = [_record(x) for x in _lines(run)]
        for rec in lines:
            if rec["labels_file"].endswith(path.name):
                rec["labels_bytes"] = path.stat().st_size
        _write_lines(run, [_line(r) for r in lines])
    with pytest.warns(RunFolderWarning, match=r"line \d skipped: .*000001-sigma0.25-tau0.6"):
        summary = runs.summarize(run)
    assert [r["num_inputs"] for r in summary.rows] == [2, 1, 2] and summary.skipped == 1
    capsys.readouterr()
    assert main([*CERTIFY, "--out", str(run)]) == 0
    assert _computed(capsys.readouterr().err) == 1
    _same_labels(run, clean)
    assert _rows(run) == _rows(clean)


def _rows(out: Path) -> list[dict]:
    """The summary rows without the timings."""
    return [{k: v for k, v in r.items() if k != "time_per_input_s"}
            for r in runs.summarize(out).rows]


def test_label_files_are_never_unpickled(run):
    path = run / "labels" / "000000-base.npz"
    np.savez(path, labels=np.array([object()], dtype=object))
    with pytest.warns(RunFolderWarning, match="000000-base.npz"):
        assert (0, "base") not in runs.RunStore(run).done()


# ------------------------------------------------------------------ temp files
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_summarize_removes_dead_processes_temporary_files(run):
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [run / f".summary.md.{dead}.tmp", run / f".summary.csv.rank0.{dead}.tmp",
                 run / f".config.json.rank1.{dead}.tmp",
                 run / "labels" / f".000000-base.npz.rank3.{dead}.tmp"]
        kept = run / f".summary.md.{live.pid}.tmp"
        for p in [*stale, kept]:
            p.write_bytes(b"half")
        assert main(["summarize", str(run)]) == 0
        assert not any(p.exists() for p in stale) and kept.exists()
    finally:
        live.kill()
        live.wait()


# ------------------------------------------------------------------- concurrency
def _holder(out: Path, *names: str) -> subprocess.Popen:
    """Another process that holds the lock files ``names`` of ``out`` until killed."""
    code = textwrap.dedent(f"""
        import time
        from smoothing._io import FolderLock
        for name in {list(names)!r}:
            FolderLock({str(out)!r}, name).acquire()
        print("locked", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"locked"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_merge_results_is_refused_beside_a_live_run(run):
    before = (run / "results.jsonl").read_bytes()
    proc = _holder(run, ".lock", ".lock.rank0")
    try:
        with pytest.raises(ValueError, match="in use by another run"):
            merge_results(run, key=("input", "grid"))
    finally:
        _stop(proc)
    assert (run / "results.jsonl").read_bytes() == before
    assert len(merge_results(run, key=("input", "grid"))) == 6  # free again
    assert not list(run.glob(".lock*"))


def test_a_torchrun_rank_is_refused_beside_a_live_single_run(run, tmp_path):
    proc = _holder(run, ".lock", ".lock.rank0")
    prepared = runs.prepare(runs.RunConfig(**_config(run)), device="cpu")
    try:
        with pytest.raises(ValueError, match="in use by another run"):
            prepared.execute(run, rank=1, world_size=2, progress=False)
    finally:
        _stop(proc)
    assert not (run / "results.rank1.jsonl").exists() and not (run / ".lock.rank1").exists()
    # alone, the ranks of a job share the folder and leave no lock behind
    fresh = tmp_path / "job"
    for rank in (1, 0):
        prepared.execute(fresh, rank=rank, world_size=2, progress=False)
    assert not list(fresh.glob(".lock*"))
    assert {(r["input"], r["grid"]) for r in runs.read_records(fresh)} == KEYS


def _config(out: Path) -> dict:
    return json.loads((out / "config.json").read_text())["config"]


def test_a_run_is_refused_beside_a_live_torchrun_rank(tmp_path):
    out = tmp_path / "job"
    slow = [*CERTIFY, "--n", "200000", "--out", str(out)]  # minutes per input
    rank = textwrap.dedent(f"""
        from smoothing.cli import build_parser
        from smoothing.cli._common import config_from_args
        from smoothing import runs
        args = build_parser().parse_args({slow!r})
        runs.prepare(config_from_args(args), device="cpu").execute(
            args.out, rank=1, world_size=2, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", rank], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / "results.rank1.jsonl").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the rank did not start"
            time.sleep(0.05)
        single = subprocess.run([sys.executable, "-m", "smoothing", *slow], env=_env(),
                                capture_output=True, timeout=90)
        with pytest.raises(ValueError, match="in use by another run"):
            merge_results(out, key=("input", "grid"))
        assert proc.poll() is None
    finally:
        _stop(proc)
    assert single.returncode == 2, single.stderr.decode()
    lines = single.stderr.decode().strip().splitlines()
    assert "in use by another run" in lines[-1] and not (out / "results.jsonl").exists()


def test_summarize_beside_a_live_run_prints_but_does_not_write(run, capsys):
    (run / "summary.md").unlink()
    proc = _holder(run, ".lock", ".lock.rank0")
    try:
        assert main(["summarize", str(run)]) == 0
    finally:
        _stop(proc)
    captured = capsys.readouterr()
    assert "SegCertify" in captured.out and "in use by a run" in captured.err
    assert not (run / "summary.md").exists()


# -------------------------------------------------------------------- disk faults
def _failing(real, *, after: int, error: OSError, partial: bool = False):
    """``os.write`` that fails from the ``after``-th record line on: raises ``error``,
    or writes half of the line and says so (a short write, as on a full disk)."""
    calls = []

    def call(fd, data, *args):
        if not bytes(data).startswith(b'{"kind"'):
            return real(fd, data, *args)
        calls.append(1)
        if len(calls) < after:
            return real(fd, data, *args)
        if partial:
            return real(fd, data[: len(data) // 2])
        raise error
    return call


@pytest.mark.parametrize("partial", [False, True])
def test_a_full_disk_leaves_a_consistent_folder_that_resumes(tmp_path, clean, monkeypatch,
                                                             capsys, partial):
    from smoothing.runs import _journal

    out = tmp_path / "run"
    full = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(_journal.os, "write",
                        _failing(os.write, after=3, error=full, partial=partial))
    assert main([*CERTIFY, "--out", str(out)]) == 2
    line = _one_error(capsys)
    assert "No space left" in line or "disk full" in line
    monkeypatch.undo()
    assert len(runs.read_records(out)) == 2  # the two whole lines
    assert not list(out.rglob("*.tmp")) and not list(out.glob(".lock*"))
    assert main([*CERTIFY, "--out", str(out)]) == 0
    assert _computed(capsys.readouterr().err) == 4
    assert _results(out) == _results(clean)
    _same_labels(out, clean)


def test_a_failed_label_write_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    from smoothing import _io

    out = tmp_path / "run"
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(".npz") and "000001" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(_io.os, "replace", replace)
    assert main([*CERTIFY, "--out", str(out)]) == 2
    assert "No space left" in _one_error(capsys)
    monkeypatch.undo()
    assert {(r["input"], r["grid"]) for r in runs.read_records(out)} == {
        (0, g) for g in GRID}
    assert not list(out.rglob("*.tmp"))


def _read_only(monkeypatch, root: Path) -> None:
    """Writes below ``root`` fail as on a read-only file system (EROFS)."""
    import builtins

    def inside(path) -> bool:
        try:
            return Path(os.fsdecode(path)).resolve().is_relative_to(root.resolve())
        except (TypeError, ValueError):
            return False

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))

    real_open, real_os_open = builtins.open, os.open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def os_open(path, flags, *args, **kwargs):
        if flags & write_flags and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and isinstance(file, str | os.PathLike) \
                and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    for name in ("replace", "unlink", "mkdir", "rename"):
        real = getattr(os, name)

        def guarded(path, *args, _real=real, **kwargs):
            if inside(path):
                refuse(path)
            return _real(path, *args, **kwargs)
        monkeypatch.setattr(os, name, guarded)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)


def test_a_read_only_folder_is_one_line_and_stays_as_it_was(run, monkeypatch, capsys):
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _read_only(monkeypatch, run)
    for argv in ([*CERTIFY, "--out", str(run)], ["summarize", str(run)]):
        capsys.readouterr()
        assert main(argv) == 2
        assert "Read-only file system" in capsys.readouterr().err.strip().splitlines()[-1]
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


# ----------------------------------------------------------------------------- kill
def test_sigkill_mid_run_and_resume_equals_an_uninterrupted_run(tmp_path, clean):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "smoothing", *CERTIFY, "--out", str(out)],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "results.jsonl").exists() or not _lines(out):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main([*CERTIFY, "--out", str(out)]) == 0
    assert _results(out) == _results(clean)
    _same_labels(out, clean)


# ------------------------------------------------------------------ format 2 folders
def _as_format_2(out: Path) -> None:
    """Rewrite a run folder as the previous version wrote it (format 2)."""
    blob = json.loads((out / "config.json").read_text())
    for key in ("digest", "kind"):
        blob.pop(key)
    blob["format_version"] = 2
    (out / "config.json").write_text(json.dumps(blob, indent=2) + "\n")
    old = [{k: v for k, v in _record(x).items() if k not in ("config_digest", "labels_bytes")}
           for x in _lines(out)]
    _write_lines(out, [_line(r) for r in old])


def test_a_format_2_folder_resumes_and_is_migrated(run, clean, capsys):
    _as_format_2(run)
    table = _table(run)
    assert len(runs.read_records(run)) == 6  # read as it is
    bad = TAMPERED["alpha"](_record(_lines(run)[1]))  # still checked field by field
    _write_lines(run, [_line(bad), *_lines(run)])
    capsys.readouterr()
    assert main([*CERTIFY, "--out", str(run)]) == 0
    assert _computed(capsys.readouterr().err) == 0
    blob = json.loads((run / "config.json").read_text())
    assert blob["format_version"] == 3 and blob["digest"] == json.loads(
        (clean / "config.json").read_text())["digest"]
    recs = [_record(x) for x in _lines(run)]
    assert [("config_digest" in r) for r in recs] == [False] + [True] * 6  # bad one as it was
    assert _table(run) == table


def test_torchrun_ranks_resume_a_format_2_folder_without_migrating(run):
    _as_format_2(run)
    prepared = runs.prepare(runs.RunConfig(**{**_config(run), "num_inputs": 3}), device="cpu")
    report = prepared.execute(run, rank=0, world_size=2, progress=False)
    assert report.resumed and report.computed == 3  # inputs 0 and 2: 2 is new
    assert json.loads((run / "config.json").read_text())["format_version"] == 2
    report = prepared.execute(run, rank=1, world_size=2, progress=False)
    assert report.computed == 0
    assert len(runs.read_records(run)) == 9


# ---------------------------------------------------------------------- radius-maps
def test_radius_maps_share_certify_noise_and_ignore_tau(tmp_path, clean):
    out = tmp_path / "maps"
    assert main([*MAPS, "--tau", "0.9", "--out", str(out)]) == 0
    for index in range(2):
        with np.load(out / "radius_maps" / f"{index:06d}-sigma0.25-n32.npz") as m, \
                np.load(clean / "labels" / f"{index:06d}-sigma0.25-tau0.6-n32.npz") as c:
            np.testing.assert_array_equal(m["counts"], c["counts"])
            np.testing.assert_array_equal(m["guesses"], c["guesses"])
    assert main([*MAPS, "--tau", "0.6", "--out", str(out)]) == 0  # tau changes nothing


def test_radius_maps_record_their_options_and_refuse_others(tmp_path, capsys):
    out = tmp_path / "maps"
    assert main([*MAPS, "--out", str(out)]) == 0
    blob = json.loads((out / "config.json").read_text())
    assert blob["kind"] == "radius_maps" and blob["radius_maps"]["method"] == "bonferroni"
    for change in (["--alpha", "0.05"], ["--method", "ladder"]):
        capsys.readouterr()
        assert main([*MAPS, *change, "--out", str(out)]) == 2
        assert "other options" in _one_error(capsys)
    assert main([*CERTIFY, "--out", str(out)]) == 2  # nor a certify run in its folder
    assert "radius-maps run" in _one_error(capsys)
    rows = (out / "radius_maps.csv").read_text().splitlines()
    assert len(rows) == 3 and all(",bonferroni," in r for r in rows[1:])


def test_radius_maps_take_the_lock(tmp_path, capsys):
    out = tmp_path / "maps"
    proc = _holder(out, ".lock.rank0")
    try:
        assert main([*MAPS, "--out", str(out)]) == 2
    finally:
        _stop(proc)
    assert "in use by another run" in _one_error(capsys)
    assert not (out / "radius_maps.csv").exists()


def test_radius_maps_killed_between_layer_and_record_lose_no_row(tmp_path, monkeypatch):
    out = tmp_path / "maps"
    real = os.replace

    def replace_then_die(src, dst):
        real(src, dst)
        if str(dst).endswith("000000-sigma0.25-n32.npz"):
            raise KeyboardInterrupt  # killed right after the layer is in place
    monkeypatch.setattr(os, "replace", replace_then_die)
    assert main([*MAPS, "--out", str(out)]) == 2  # Ctrl-C: one line, exit status 2
    monkeypatch.undo()
    assert main([*MAPS, "--out", str(out)]) == 0
    rows = (out / "radius_maps.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    assert len(runs.RunStore(out).records()) == 2
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "000000-sigma0.25-n32.png", "000001-sigma0.25-n32.png"]


def test_radius_maps_from_a_certify_run_do_not_sample(tmp_path, clean, monkeypatch, capsys):
    from smoothing import SegCertify

    sampled = tmp_path / "sampled"
    assert main([*MAPS, "--out", str(sampled), "--no-figures"]) == 0

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled although the run has the counts")
    monkeypatch.setattr(SegCertify, "certify", no_sampling)
    out = tmp_path / "from"
    capsys.readouterr()
    assert main(["radius-maps", "--from-run", str(clean), "--out", str(out), "--device", "cpu",
                 "--no-progress", "--no-figures"]) == 0
    assert "2 from the counts of" in capsys.readouterr().err
    for name in ("000000-sigma0.25-n32.npz", "000001-sigma0.25-n32.npz"):
        with np.load(out / "radius_maps" / name) as a, np.load(sampled / "radius_maps" / name) as b:
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    monkeypatch.undo()
    # an option that differs from the run's is refused; a moved data root is not an option
    assert main(["radius-maps", "--from-run", str(clean), "--out", str(tmp_path / "x"),
                 "--n", "64", "--device", "cpu"]) == 2
    assert "`--n` [64] differs" in _one_error(capsys)


def test_radius_maps_from_a_run_with_a_lost_label_file_sample_that_one(tmp_path, run, capsys):
    (run / "labels" / "000001-sigma0.25-tau0.6-n32.npz").unlink()
    (run / "labels" / "000001-sigma0.25-tau0.7-n32.npz").unlink()
    out = tmp_path / "from"
    assert main(["radius-maps", "--from-run", str(run), "--out", str(out), "--device", "cpu",
                 "--no-progress", "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert "1 from the counts of" in err and "segcertify: warning:" in err
    assert len(runs.RunStore(out).records()) == 2
