"""Failures a user can cause or meet end with ONE line and exit status 2 (issue 19, items 5, 9).

* Ctrl-C at any moment (parsing, importing torch, preparing, running, summarising;
  ``certify``, ``radius-maps``, ``summarize``): one line, status 2, no traceback, and
  the same command resumes;
* OS errors: a read-only folder (new run, resume, summarize, radius-maps, demo), a
  full disk at every write of a run (the next run resumes to the same results), an
  ``--out`` inside a file or at a device, an empty ``--out``;
* every count, index and seed is bounded before anything is loaded or written, in
  :func:`smoothing.runs.config.check_config` (so the library refuses them too);
* an unreadable image stops ``radius-maps`` with the same line as ``certify``.

As root, ``chmod`` cannot make a folder read-only, and a full disk needs a small
file system: both are simulated in-process by :class:`DiskFaults`, which makes the
file-system calls under one folder fail with a chosen ``errno``.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import re
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
from smoothing.runs.config import RunConfig, check_config
from tests.test_cli import _assert_same_labels, _labels, _results

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parent.parent
TINY = ["certify", "--dataset", "streets", "--image-size", "16", "32", "--num-inputs", "2",
        "--n0", "8", "--n", "32", "--tau", "0.6", "--alpha", "0.01", "--batch-size", "40",
        "--device", "cpu", "--no-progress"]  # fmt: skip
RADIUS = ["radius-maps", *TINY[1:], "--no-figures"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _one_error_line(err: str) -> str:
    """The one error line of a failure: the last line of stderr, no traceback (lines
    before it may report what the command did)."""
    lines = err.splitlines()
    assert "Traceback" not in err and all(line.startswith("segcertify: ") for line in lines), err
    errors = [line for line in lines if line.startswith("segcertify: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


def _assert_consistent(out: Path) -> None:
    """No temporary file is left, and every record's label file is complete."""
    if not out.exists():
        return
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], list(out.rglob("*"))
    if not (out / "config.json").exists():  # stopped before the run was set up: no results
        assert not list(out.glob("results*.jsonl")), list(out.rglob("*"))
        return
    from smoothing.runs._checks import file_field

    for rec in runs.read_records(out):  # certify and radius-maps records name their file
        with np.load(out / rec[file_field(rec["kind"])]) as z:
            assert "labels" in z.files


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# ----------------------------------------------------------------------- fault injection
class DiskFaults:
    """Make the file-system writes under ``root`` fail with ``err`` from the
    ``after``-th one on (counting from 0); ``after=None`` only counts them.

    Intercepted: ``os.mkdir``, ``os.open`` and ``open``/``io.open`` for writing,
    ``os.write`` to a file opened here, ``os.replace`` into ``root``. That is every way
    the store, the locks and the summaries write.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path, err: int,
                 after: int | None = 0) -> None:
        self.root, self.err, self.after = str(root), err, after
        self.calls = 0
        self._fds: set[int] = set()
        real_open, real_os_open = builtins.open, os.open
        real_write, real_replace, real_mkdir = os.write, os.replace, os.mkdir

        def os_open(path, flags, *args, **kwargs):
            writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)
            if writing:
                self._hit(path)
            fd = real_os_open(path, flags, *args, **kwargs)
            if writing and self._mine(path):
                self._fds.add(fd)
            return fd

        def py_open(file, mode="r", *args, **kwargs):
            if isinstance(file, str | bytes | os.PathLike) and set(mode) & set("wax+"):
                self._hit(file)
            return real_open(file, mode, *args, **kwargs)

        def write(fd, data):
            if fd in self._fds:
                self._hit(f"<fd {fd}>", force=True)
            return real_write(fd, data)

        def replace(src, dst, *args, **kwargs):
            self._hit(dst)
            return real_replace(src, dst, *args, **kwargs)

        def mkdir(path, *args, **kwargs):
            self._hit(path)
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(builtins, "open", py_open)
        monkeypatch.setattr(io, "open", py_open)
        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "mkdir", mkdir)

    def _mine(self, path: object) -> bool:
        return os.path.abspath(os.fsdecode(path)).startswith(self.root)

    def _hit(self, path: object, force: bool = False) -> None:
        if not (force or self._mine(path)):
            return
        self.calls += 1
        if self.after is not None and self.calls > self.after:
            raise OSError(self.err, os.strerror(self.err), os.fsdecode(path))


# ----------------------------------------------------------------------- Ctrl-C
#: A driver that runs commands in one process, sending itself SIGINT at a given phase
#: of each, and reports what main() returned and printed (or what escaped it).
DRIVER = textwrap.dedent("""
    import contextlib, io, json, os, signal, sys, time

    def interrupt():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)  # the handler raises KeyboardInterrupt here

    def before(obj, name, when=lambda calls: True):
        real, calls = getattr(obj, name), []
        def hooked(*args, **kwargs):
            calls.append(1)
            if when(len(calls)):
                interrupt()
            return real(*args, **kwargs)
        setattr(obj, name, hooked)
        return lambda: setattr(obj, name, real)

    import smoothing.cli as cli
    reports = []
    for phase, argv in json.loads(sys.argv[1]):
        if phase == "parse":
            undo = before(cli, "build_parser")
        elif phase == "import":
            import builtins
            real_import = builtins.__import__
            def imp(name, *args, **kwargs):
                if name == "torch" and "torch" not in sys.modules:
                    interrupt()
                return real_import(name, *args, **kwargs)
            builtins.__import__ = imp
            undo = lambda: setattr(builtins, "__import__", real_import)
        elif phase == "prepare":
            from smoothing import segcertify
            undo = before(segcertify.SegCertify, "__init__")
        elif phase == "run":
            from smoothing import segcertify
            undo = before(segcertify.SegCertify, "certify", when=lambda calls: calls == 2)
        elif phase == "summary":
            from smoothing import runs
            undo = before(runs, "summarize")
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                rc = cli.main(argv)
        except BaseException as exc:
            rc = "escaped " + type(exc).__name__
        undo()
        reports.append({"rc": rc, "err": err.getvalue()})
    print(json.dumps(reports))
""")
#: (phase, command): Ctrl-C while parsing, importing torch, preparing (model and data
#: loaded), running (in the second input), writing the summary.
PHASES = [("parse", "certify"), ("prepare", "certify"), ("run", "certify"),
          ("summary", "certify"), ("run", "radius-maps"), ("summary", "summarize")]


def _interrupt_at(jobs: list[tuple[str, list[str]]]) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(jobs)], env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_ctrl_c_at_any_phase_is_one_line_and_status_2(tmp_path):
    done = tmp_path / "done"
    assert main([*TINY, "--out", str(done)]) == 0
    jobs = []
    for i, (phase, command) in enumerate(PHASES):
        out = tmp_path / f"{i}-{phase}-{command}"
        argv = {"certify": [*TINY, "--out", str(out)],
                "radius-maps": [*RADIUS, "--out", str(out)],
                "summarize": ["summarize", str(done)]}[command]
        jobs.append((phase, argv))
    # importing torch first: a process of its own (the import is left broken)
    reports = _interrupt_at([("import", jobs[0][1])]) + _interrupt_at(jobs)
    for (phase, argv), report in zip([("import", jobs[0][1]), *jobs], reports, strict=True):
        assert report["rc"] == 2, (phase, argv, report)
        line = _one_error_line(report["err"])
        assert "interrupted (Ctrl-C)" in line and "run the same command again" in line
        out = Path(argv[-1])
        _assert_consistent(out)
        if (phase, argv[0]) == ("run", "certify"):  # stopped in input 1; input 0 is kept
            grid = "sigma0.25-tau0.6-n32"
            assert set(_results(out)) == {(0, "base"), (0, grid), (1, "base")}
        assert main(argv) == 0, (phase, argv)  # the same command resumes and finishes


def test_ctrl_c_from_outside_during_a_run_is_one_line_and_status_2(tmp_path):
    out = tmp_path / "run"
    argv = [*TINY, "--num-inputs", "100", "--n", "1000", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "smoothing", *argv], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "results.jsonl").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    _one_error_line(err)
    _assert_consistent(out)


# ----------------------------------------------------------------------- OS errors
def test_full_disk_at_every_write_is_one_line_and_the_next_run_resumes(tmp_path,
                                                                       monkeypatch, capsys):
    argv = [*TINY, "--num-inputs", "1"]
    ref = tmp_path / "ref"
    with pytest.MonkeyPatch.context() as mp:
        counter = DiskFaults(mp, ref, errno.ENOSPC, after=None)
        assert main([*argv, "--out", str(ref)]) == 0
    writes = counter.calls
    assert writes >= 10  # folder, lock, config.json, 2 label files and records, summary
    capsys.readouterr()
    for k in range(writes):
        out = tmp_path / f"full{k}"
        with pytest.MonkeyPatch.context() as mp:
            DiskFaults(mp, out, errno.ENOSPC, after=k)
            assert main([*argv, "--out", str(out)]) == 2, k
        line = _one_error_line(capsys.readouterr().err)
        assert "No space left on device" in line and "run the same command again" in line
        _assert_consistent(out)
        assert main([*argv, "--out", str(out)]) == 0, k  # resumes, or starts afresh
        capsys.readouterr()
        assert _results(out) == _results(ref), k
        assert (out / "summary.csv").is_file(), k
        _assert_same_labels(_labels(out), _labels(ref))


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES])
def test_read_only_folder_is_one_line_and_changes_nothing(tmp_path, monkeypatch, capsys,
                                                          err):
    new = tmp_path / "new"
    with monkeypatch.context() as mp:
        DiskFaults(mp, tmp_path, err)
        assert main([*TINY, "--out", str(new)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert os.strerror(err) in line and str(new) in line
    assert not new.exists()  # a new run creates nothing it cannot finish

    done = tmp_path / "done"
    assert main([*TINY, "--out", str(done)]) == 0
    before = _snapshot(done)
    capsys.readouterr()
    for argv in ([*TINY, "--out", str(done)], ["summarize", str(done)],
                 [*RADIUS, "--out", str(done / "maps")],
                 ["demo", "--out", str(done / "demo"), "--no-progress"]):
        with monkeypatch.context() as mp:
            DiskFaults(mp, tmp_path, err)
            assert main(argv) == 2, argv
        line = _one_error_line(capsys.readouterr().err)
        assert os.strerror(err) in line, argv
        assert _snapshot(done) == before, argv


@pytest.mark.parametrize("command", ["certify", "radius-maps", "demo", "summarize"])
def test_out_inside_a_file_or_at_a_device_is_one_line(tmp_path, capsys, command):
    file = tmp_path / "file"
    file.write_text("x")
    for out, why in ((file / "sub", "lies inside"), (file, "is not a folder"),
                     (Path("/dev/null"), "is not a folder"),
                     (Path("/dev/null/x"), "lies inside '/dev/null'")):
        argv = {"certify": [*TINY, "--out", str(out)], "radius-maps": [*RADIUS, "--out", str(out)],
                "demo": ["demo", "--out", str(out), "--no-progress"],
                "summarize": ["summarize", str(out)]}[command]
        assert main(argv) == 2
        assert why in _one_error_line(capsys.readouterr().err)
    assert file.read_text() == "x"


@pytest.mark.parametrize("argv", [
    [*TINY, "--out", ""], [*RADIUS, "--out", " "], ["demo", "--out", ""], ["summarize", ""],
])  # fmt: skip
def test_an_empty_out_is_refused(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "must not be empty" in _one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_an_out_of_memory_error_is_one_line(tmp_path, monkeypatch, capsys):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(runs, "prepare", no_memory)
    assert main([*TINY, "--out", str(tmp_path / "run")]) == 2
    assert "`--batch-size`" in _one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------- bounds
BOUNDS = {
    "--start": ("1000000000000000000000", "[0, 2**40 - 1]"),
    "--num-inputs": ("100000000000000000000", "[1, 2**40]"),
    "--stride": (str(2**63 - 1), "[1, 2**40 - 1]"),
    "--n": (str(2**63), "[1, 2**31 - 1]"),
    "--n0": (str(2**63), "[1, 2**31 - 1]"),
    "--batch-size": (str(10**23), "[1, 2**20]"),
    "--k": (str(2**63), "[1, 2**63 - 1]"),
    "--seed": (str(2**64), "[0, 2**64 - 1]"),
    "--data-seed": ("-1", "[0, 2**64 - 1]"),
    "--num-points": ("100000000", "[1, 2**22]"),
}


@pytest.mark.parametrize("flag", list(BOUNDS))
def test_counts_indices_and_seeds_are_bounded_before_anything_is_loaded(tmp_path, capsys,
                                                                        monkeypatch, flag):
    value, accepted = BOUNDS[flag]
    loaded = []
    monkeypatch.setattr("smoothing.runs.engine.load_any_model",
                        lambda *a, **k: loaded.append(1))
    out = tmp_path / "out"
    for argv in ([*TINY, flag, value, "--out", str(out)],
                 [*RADIUS, flag, value, "--out", str(out)]):
        assert main(argv) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"`{flag}` must be an integer in {accepted}" in line and value in line
    assert not loaded and not out.exists()


@pytest.mark.parametrize(("changes", "message"), [
    ({"n": (2**31,)}, "`n` must be an integer in [1, 2**31 - 1]"),
    ({"num_inputs": 3, "start": 2**40 - 2}, "last input index"),
    ({"num_inputs": 2**21, "stride": 2**20}, "last input index"),
    ({"seed": 2**64}, "`seed` must be an integer in [0, 2**64 - 1]"),
    ({"num_points": 1.5}, "`num_points` must be an integer"),
])  # fmt: skip
def test_the_library_checks_the_same_bounds(changes, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        check_config(RunConfig(**changes))
    check_config(RunConfig(n=(2**31 - 1,), start=2**40 - 1, num_inputs=1, seed=2**64 - 1))


@pytest.mark.parametrize("device", ["meta", "tpu:7", "cuda:x"])
def test_a_device_without_data_or_unknown_is_refused(tmp_path, capsys, device):
    assert main([*TINY, "--device", device, "--out", str(tmp_path / "out")]) == 2
    assert "`--device` must be 'auto', 'cpu'" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_a_number_argparse_cannot_read_is_one_line(tmp_path, capsys):
    assert main([*TINY, "--start", "1e21", "--out", str(tmp_path / "out")]) == 2
    assert "invalid int value: '1e21'" in _one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------- bad images
def test_a_bad_image_stops_radius_maps_with_the_line_of_certify(tmp_path, capsys,
                                                                cityscapes_layout):
    root, ckpt = cityscapes_layout  # the second image (bremen) cannot be decoded
    (root / "leftImg8bit/val/bremen/bremen_000000_000019_leftImg8bit.png").write_bytes(b"junk")
    common = ["--dataset", "cityscapes", "--data-root", str(root), "--checkpoint", str(ckpt),
              "--sigma", "0.25", "--n0", "8", "--n", "32", "--tau", "0.6", "--alpha", "0.01",
              "--device", "cpu", "--no-progress"]  # fmt: skip
    lines = []
    for command in ("certify", "radius-maps"):
        assert main([command, *common, "--out", str(tmp_path / command)]) == 2
        lines.append(_one_error_line(capsys.readouterr().err))
    assert lines[0] == lines[1]
    assert "bremen_000000_000019_leftImg8bit.png' cannot be read" in lines[0]
