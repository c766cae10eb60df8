"""Runs that must not corrupt each other or crash on odd files (issue 14, items 1, 2, 4, 7).

* two runs into one output folder: the second is refused (exit status 2, one line)
  while the first holds the folder's lock; a lock left by a dead process is taken
  over; temporary files are per process and only dead processes' ones are removed;
* a ``results.jsonl`` line that is valid JSON but no record is skipped like any
  corrupt line, with a warning naming the file and line, by resume, ``summarize``
  and the distributed reader alike;
* bad sizes, checkpoints and inputs give one clear error naming the argument;
* k-FWER with ``k`` above the number of components is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from smoothing import runs as runner
from smoothing._io import FolderLock, FolderLockedError, remove_stale_temps, temp_tag
from smoothing.cli import main
from smoothing.runs import merge_results

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parent.parent
TINY = ["certify", "--dataset", "streets", "--image-size", "16", "32", "--num-inputs", "2",
        "--n0", "8", "--n", "32", "--tau", "0.6", "--alpha", "0.01", "--batch-size", "40",
        "--device", "cpu", "--no-progress"]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the lock of ``tmp_path/out`` (rank 0) until killed."""
    out = tmp_path / "out"
    code = textwrap.dedent(f"""
        import sys, time
        from smoothing._io import FolderLock
        lock = FolderLock({str(out)!r}, ".lock.rank0")
        lock.acquire()
        print("locked", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"locked"
        yield out, proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


# ----------------------------------------------------------------------- item 1: lock
def test_a_second_run_into_a_locked_folder_is_refused_with_status_2(holder, capsys):
    out, proc = holder
    (out / "labels").mkdir(parents=True)
    theirs = out / "labels" / f".000000-base.npz.rank0.{proc.pid}.tmp"
    theirs.write_bytes(b"in progress")  # the other run's half-written file
    assert main([*TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("segcertify: error:")
    assert "in use by another run" in err[0] and f"process {proc.pid}" in err[0]
    # nothing of the other run touched, nothing written
    assert theirs.read_bytes() == b"in progress"
    assert not (out / "results.jsonl").exists() and not (out / "config.json").exists()


def test_a_second_cli_process_is_refused_while_a_run_holds_the_lock(tmp_path):
    """Two real processes: the one started second exits with status 2."""
    out = tmp_path / "out"
    slow = [*TINY, "--num-inputs", "500", "--n", "4000", "--out", str(out)]  # minutes
    first = subprocess.Popen([sys.executable, "-m", "smoothing", *slow], env=_env(),
                             cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / "results.jsonl").exists():  # the first run is writing
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "smoothing", *slow], env=_env(),
                                cwd=tmp_path, capture_output=True, timeout=120)
        assert first.poll() is None, "the first run ended before the check"
    finally:
        first.kill()
        first.wait()
        first.stderr.close()
    assert second.returncode == 2
    lines = second.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "in use by another run" in lines[0], lines


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    dead = _dead_pid()
    (out / "labels").mkdir(parents=True)
    (out / ".lock.rank0").write_text(f"{dead}\n")
    stale = out / "labels" / f".000000-base.npz.rank0.{dead}.tmp"
    legacy = out / "labels" / ".000000-base.npz.rank0.tmp"
    stale.write_bytes(b"x")
    legacy.write_bytes(b"x")
    assert main([*TINY, "--out", str(out)]) == 0
    assert not stale.exists() and not legacy.exists()
    assert len(runner.read_records(out)) == 4
    assert not (out / ".lock.rank0").exists()  # released and removed at the end


def test_lock_is_exclusive_reentrant_free_and_released(tmp_path):
    first = FolderLock(tmp_path / "a")
    first.acquire()
    with pytest.raises(FolderLockedError, match=rf"process {os.getpid()}"):
        FolderLock(tmp_path / "a").acquire()
    assert isinstance(FolderLockedError("x"), ValueError)
    first.release()
    first.release()  # a no-op
    with FolderLock(tmp_path / "a"):  # free again
        pass
    # stale file with a dead pid, no OS lock held: taken over
    (tmp_path / "a" / ".lock").write_text(f"{_dead_pid()}\n")
    with FolderLock(tmp_path / "a") as lock:
        assert lock.path.read_text().strip() == str(os.getpid())


def test_temporary_names_are_per_process_and_only_dead_or_own_ones_are_removed(tmp_path):
    assert temp_tag(".rank0") == f".rank0.{os.getpid()}"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "own": f".a.npz.rank0.{os.getpid()}.tmp",
            "dead": f".b.npz.rank0.{_dead_pid()}.tmp",
            "legacy": ".c.npz.rank0.tmp",
            "live": f".d.npz.rank0.{live.pid}.tmp",
            "other_rank": f".e.npz.rank1.{_dead_pid()}.tmp",
            "other_rank10": f".f.npz.rank10.{_dead_pid()}.tmp",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"")
        assert remove_stale_temps(tmp_path, ".rank0") == 3
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {names["live"], names["other_rank"], names["other_rank10"]}
    finally:
        live.kill()
        live.wait()


# ------------------------------------------------------- item 2: non-record JSON lines
@pytest.mark.parametrize("junk", ['{"foo": 1}', "[1, 2]", "3", '"text"', "null",
                                  '{"input": "x", "grid": "base", "kind": "base"}'])
def test_valid_json_that_is_no_record_is_skipped_by_resume_and_summarize(tmp_path, junk,
                                                                          capsys):
    out = tmp_path / "out"
    assert main([*TINY, "--out", str(out)]) == 0
    path = out / "results.jsonl"
    lines = path.read_text().splitlines()
    before = runner.summarize(out).to_csv()
    path.write_text("\n".join([lines[0], junk, *lines[1:]]) + "\n")
    capsys.readouterr()
    with pytest.warns(runner.RunFolderWarning, match=r"results.jsonl': line 2 skipped: "):
        assert len(runner.read_records(out)) == len(lines)
    with pytest.warns(runner.RunFolderWarning):
        assert runner.summarize(out).to_csv() == before
    assert main(["summarize", str(out)]) == 0
    err = capsys.readouterr().err
    assert "segcertify: warning: " in err and "line 2 skipped" in err
    assert main([*TINY, "--out", str(out)]) == 0  # resume: nothing to redo
    assert len(path.read_text().splitlines()) == len(lines) + 1


def test_distributed_reader_skips_a_non_object_line_with_a_warning(tmp_path):
    (tmp_path / "results.rank0.jsonl").write_text('{"index": 0}\n[1, 2]\n{"index": 2}\n')
    with pytest.warns(runner.RunFolderWarning, match="line 2 skipped: not a JSON object"):
        assert [r["index"] for r in merge_results(tmp_path)] == [0, 2]
    # a complete last line is no torn write: warned about too
    (tmp_path / "results.rank0.jsonl").write_text('{"index": 0}\n{"index": 2}\n3\n')
    with pytest.warns(runner.RunFolderWarning, match="line 3 skipped"):
        assert [r["index"] for r in merge_results(tmp_path)] == [0, 2]
    assert json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1]) == {"index": 2}


# --------------------------------------------------------- item 4: clear input errors
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("segcertify: error:"), err
    return err[0]


@pytest.mark.parametrize("size", [["100000", "100000"], ["5000", "5000"]])
def test_a_huge_image_size_is_refused_before_allocating(tmp_path, capsys, size):
    args = [a for a in TINY]
    args[args.index("--image-size") + 1: args.index("--image-size") + 3] = size
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert "`--image-size`" in line and str(runner.MAX_IMAGE_PIXELS) in line
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="image_size"):
        runner.prepare(runner.RunConfig(image_size=(100000, 100000)), device="cpu")


@pytest.mark.parametrize("blob", [{"state_dict": 5}, {"state_dict": {}},
                                  {"state_dict": {"down.0.0.weight": "x"}}, {"model": [1, 2]}])
def test_a_checkpoint_without_a_state_dict_is_named(tmp_path, capsys, blob):
    path = tmp_path / "bad.pt"
    torch.save(blob, path)
    assert main([*TINY, "--checkpoint", str(path), "--arch", "unet",
                 "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert "bad.pt" in line and "state_dict" in line
    assert "subscriptable" not in line


def _segcertify(model, sampler, num_classes, **kw):
    from smoothing import SegCertify

    args = dict(num_classes=num_classes, n0=2, n=4, tau=0.6, alpha=0.1, batch_size=4)
    return SegCertify(model, sampler, **{**args, **kw})


def test_an_image_without_channel_dimension_is_explained():
    from samplers import GaussianL2
    from smoothing.models import build_model

    unet = build_model("unet", num_classes=3, in_channels=3)
    with pytest.raises(ValueError, match=r"`x` of shape \(8, 8\), read as a point cloud.*"
                                         r"image without a channel dimension"):
        _segcertify(unet, GaussianL2(0.25), 3).certify(torch.zeros(8, 8))


def test_a_point_cloud_with_a_batch_dimension_is_explained():
    from samplers import GaussianL2
    from smoothing.models import build_model

    net = build_model("pointnet", num_classes=4, in_channels=3)
    cert = _segcertify(net, GaussianL2(0.25, point_cloud=True), 4)
    with pytest.raises(ValueError, match=r"`x` of shape \(1, 32, 3\).*point cloud with a "
                                         r"batch dimension, pass x\[0\]"):
        cert.certify(torch.zeros(1, 32, 3))
    assert cert.certify(torch.zeros(32, 3)).labels.shape == (32,)


@pytest.mark.parametrize("shape", [(3, 0, 0), (3, 4, 0), (0, 3), (0,)])
def test_an_empty_input_is_refused(shape):
    from samplers import GaussianL2

    conv = torch.nn.Conv2d(3, 2, kernel_size=1)
    with pytest.raises(ValueError, match=r"`x` is empty"):
        _segcertify(conv, GaussianL2(0.25), 2).certify(torch.zeros(shape))


# ------------------------------------------------------------------ item 7: k > N
def test_segcertify_refuses_k_above_the_number_of_components():
    from samplers import GaussianL2

    conv = torch.nn.Conv2d(3, 2, kernel_size=1)
    x = torch.zeros(3, 4, 4)  # N = 16
    g = torch.Generator().manual_seed(0)
    for corr in ("lehmann_romano", "generalized_bonferroni"):
        seg = _segcertify(conv, GaussianL2(0.25), 2, correction=corr, k=17)
        with pytest.raises(ValueError, match=r"`k` is 17 but the input has only 16 comp"):
            seg.certify(x, generator=g)
        ok = _segcertify(conv, GaussianL2(0.25), 2, correction=corr, k=16).certify(x, generator=g)
        assert ok.params["k"] == 16
        with pytest.raises(ValueError, match="`k` is 17"):  # retest checks too
            seg.retest(replace_k(ok, 17), 0.75)


def replace_k(cert, k):
    import dataclasses

    return dataclasses.replace(cert, params={**cert.params, "k": k})


def test_cli_refuses_k_above_the_number_of_pixels(tmp_path, capsys):
    out = tmp_path / "o"
    args = [*TINY, "--correction", "lehmann_romano", "--out", str(out)]
    assert main([*args, "--k", "1000000"]) == 2
    line = _one_error_line(capsys)
    assert "`--k` is 1000000" in line and "512 components" in line  # 16 x 32 pixels
    assert not out.exists()
    assert main([*args, "--k", "512"]) == 0
