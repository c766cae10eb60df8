"""Start-up and polish of the ``segcertify`` command line (issue 13.5 and 13.7).

``--help`` must not import torch, numpy, numba, scipy or the runner (checked in fresh
subprocesses with ``-X importtime``, which lists every imported module); ``--version``,
a bare ``segcertify``, the one-line hint when torch is missing, error messages that
name flags, and the plain progress lines without a terminal.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smoothing import cli
from smoothing.cli import _common

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "numpy", "numba", "scipy", "multitest", "samplers", "tqdm", "pandas",
         "smoothing.runs", "smoothing.segcertify")
#: argv after ``python``: the console script (as pip writes it), ``-m smoothing``.
SCRIPT = ["-c", "import sys; from smoothing.cli import main; sys.exit(main())"]
MODULE = ["-m", "smoothing"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", **extra}


def _python(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=_env(**env), cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def _imported(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


@pytest.mark.parametrize("entry", [SCRIPT, MODULE], ids=["segcertify", "python-m-smoothing"])
@pytest.mark.parametrize("argv", [["--help"], ["certify", "--help"], ["summarize", "--help"],
                                  ["--version"], []], ids=["help", "certify-help",
                                                          "summarize-help", "version", "bare"])
def test_help_imports_no_heavy_module(entry, argv):
    proc = _python(["-X", "importtime", *entry, *argv])
    assert proc.returncode == (2 if not argv else 0), proc.stderr[-2000:]
    imported = _imported(proc.stderr)
    assert "smoothing.cli" in imported  # the check sees the imports at all
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == []


def test_help_output_is_the_parser_built_in_process():
    """The subprocess prints what build_parser formats (same choices as the runner's)."""
    proc = _python([*MODULE, "certify", "--help"])
    assert proc.returncode == 0 and proc.stderr == ""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["certify"]
    os.environ["COLUMNS"], before = "100", os.environ.get("COLUMNS")
    try:
        expected = sub.format_help()
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before
    assert proc.stdout == expected
    for flag in ("--model", "--checkpoint", "--dataset", "--data-root", "--num-inputs",
                 "--sampler", "--axis", "--sigma", "--n0", "--tau", "--alpha",
                 "--correction", "--out", "--device", "--no-progress", "--shard"):
        assert flag in proc.stdout


def test_parser_choices_equal_the_runners():
    pytest.importorskip("torch")
    from samplers._rotation import _NAMED_AXES
    from smoothing import CERTIFYING_CORRECTIONS
    from smoothing import runs as runner

    assert _common.DATASET_NAMES == tuple(runner.DATASETS)
    assert _common.SAMPLER_NAMES == tuple(runner.SAMPLERS)
    assert _common.CORRECTION_NAMES == tuple(sorted(CERTIFYING_CORRECTIONS))
    assert set(_common.AXIS_NAMES) == set(_NAMED_AXES)


def test_version_and_bare_usage():
    proc = _python([*MODULE, "--version"])
    assert proc.returncode == 0
    assert proc.stdout.startswith("segcertify ") and len(proc.stdout.splitlines()) == 1
    bare = _python(MODULE)
    assert bare.returncode == 2 and bare.stdout == ""
    assert bare.stderr.startswith("usage: segcertify")
    assert "certify" in bare.stderr and "summarize" in bare.stderr


_BLOCK_TORCH = ("import sys; sys.modules['torch'] = None; "  # import torch -> ImportError
                "from smoothing.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.parametrize("argv", [["certify", "--out", "{tmp}/run"], ["models"],
                                  ["summarize", "{tmp}/run"], ["demo", "--out", "{tmp}/d"]])
def test_without_torch_one_line_names_the_extra(tmp_path, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = _python(["-c", _BLOCK_TORCH, *argv])
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("segcertify: error: ") and "Traceback" not in proc.stderr
    assert "pip install 'segcertify[torch]'" in lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "d").exists()


def test_errors_name_flags_not_parameters(tmp_path, capsys):
    pytest.importorskip("torch")
    assert cli.main(["certify", "--out", str(tmp_path / "r"), "--dataset", "cityscapes"]) == 2
    err = capsys.readouterr().err
    assert "`--data-root`" in err and "data_root" not in err
    assert cli.main(["certify", "--out", str(tmp_path / "r"), "--num-points", "0",
                     "--dataset", "parts"]) == 2
    err = capsys.readouterr().err
    assert "`--num-points`" in err and "num_points" not in err


@pytest.mark.parametrize(("message", "expected"), [
    ("needs `data_root` (its folder).", "needs `--data-root` (its folder)."),
    ("`batch_size` must be >= 1 and `n` too", "`--batch-size` must be >= 1 and `--n` too"),
    ("`world_size` unknown; plain data_root", "`world_size` unknown; plain data_root"),
    ("`out` '/x' is a file", "`--out` '/x' is a file"),
])
def test_name_flags(message, expected):
    assert cli._name_flags(message, cli.build_parser()) == expected


def test_axis_option_parses_and_defaults_to_none():
    parser = cli.build_parser()
    args = parser.parse_args(["certify", "--out", "o", "--sampler", "rotation-z",
                              "--axis", "x"])
    assert args.axis == "x"
    assert parser.parse_args(["certify", "--out", "o"]).axis is None
    with pytest.raises(_common.UsageError, match="invalid choice"):
        parser.parse_args(["certify", "--out", "o", "--axis", "w"])


def test_terminal_columns_follow_the_environment(monkeypatch):
    monkeypatch.setenv("COLUMNS", "57")
    assert _common._terminal_columns() == 57
    monkeypatch.setenv("COLUMNS", "junk")
    assert _common._terminal_columns() > 0


def test_plain_progress_has_no_escape_codes():
    from smoothing._progress import PlainProgress, progress_bar

    out = io.StringIO()
    bar = progress_bar(total=3, initial=1, desc="certify", unit="input", file=out)
    assert isinstance(bar, PlainProgress)
    bar.set_postfix_str("input 1, base")
    bar.update(1)
    bar.update(1)
    bar.close()
    bar.close()  # once only
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert text.splitlines() == ["certify: reused 1/3 inputs", "certify: 3/3 inputs (1 reused)"]
    quiet = io.StringIO()
    bar = progress_bar(total=3, desc="certify", enabled=False, file=quiet)
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ""


def test_plain_progress_prints_every_interval():
    from smoothing._progress import PlainProgress

    out = io.StringIO()
    bar = PlainProgress(total=3, desc="x", unit="step", file=out, interval=0.0)
    for _ in range(3):
        bar.update()
    bar.close()
    assert out.getvalue().splitlines() == ["x: 1/3 steps", "x: 2/3 steps", "x: 3/3 steps"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_bar_says_reused():
    pytest.importorskip("tqdm")
    from smoothing._progress import progress_bar

    out = _Tty()
    bar = progress_bar(total=20, initial=20, desc="certify", unit="input", file=out)
    bar.close()
    assert "reused 20/20" in out.getvalue()


def test_main_restores_argparse_gettext(capsys):
    import argparse
    import gettext

    assert cli.main(["--help"]) == 0
    assert cli.main(["certify", "--n", "ten", "--out", "o"]) == 2
    capsys.readouterr()
    assert argparse._ is gettext.gettext  # type: ignore[attr-defined]


def test_lazy_package_names_resolve_on_first_use():
    proc = _python(["-c", "import sys, smoothing; print('torch' in sys.modules); "
                          "print(smoothing.SegCertify.__name__, smoothing.ABSTAIN); "
                          "print(sorted(smoothing.__all__) == sorted(smoothing._LAZY)); "
                          "print(set(smoothing.__all__) <= set(dir(smoothing)))"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "SegCertify", "-1", "True", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import smoothing

        smoothing.nope  # noqa: B018


_FLAGS = cli._flag_names(cli.build_parser())


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="`"), max_size=40),
       st.sampled_from(sorted(_FLAGS)))
def test_name_flags_rewrites_only_backticked_parameters(text, dest):
    parser = cli.build_parser()
    assert cli._name_flags(text, parser) == text  # nothing in backticks: unchanged
    assert cli._name_flags(f"{text}`{dest}`{text}", parser) == f"{text}`{_FLAGS[dest]}`{text}"
    assert _FLAGS[dest].startswith("-")
