"""The ``segcertify`` command line (also ``python -m smoothing``).

Subcommands:

``certify``
    Certify a data set with SEGCERTIFY over a grid of (sigma, tau, n); resumable
    (:mod:`smoothing.runs` does the work).
``summarize OUT``
    Rebuild the summary table of a run folder from its saved results.
``models``
    List the built-in models.
``demo``
    The quick end-to-end demonstration (:func:`smoothing.runs.demo.run_demo`).
``radius-maps``
    Per-component certified radius maps, an ``.npz`` layer and a figure per input
    (:mod:`smoothing.runs.radius_maps`).
``train``
    Train or fine-tune a model under the smoothing noise, with certify's model and
    data options; resumable (:mod:`smoothing.runs.training`).

Bad options, missing files, a model that does not fit the data set and a resume
with other options all end with ONE line ``segcertify: error: ...`` on stderr and
exit status 2, before anything is written; messages name the flag (``--data-root``).
OS errors (a read-only or full disk, an ``--out`` inside a file) and Ctrl-C at any
moment end the same way: one line, exit status 2, no traceback, and the same
command resumes what was finished. See ``docs/cli.md``.

Start-up: this module builds the parser from the standard library only; torch,
numpy and :mod:`smoothing.runs` are imported by the command handlers, so that
``segcertify --help`` costs about as much as ``import argparse``
(``benchmarks/bench_startup_cli.py``). Without torch installed, a command that
needs it ends with one line naming the ``torch`` extra.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from smoothing.cli import certify, misc, radius_maps, train
from smoothing.cli._common import PROG, Parser, UsageError, VersionAction, missing_extra

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``segcertify`` (errors raise instead of exiting).

    Examples
    --------
    >>> args = build_parser().parse_args(["certify", "--out", "run", "--tau", "0.75", "0.9"])
    >>> args.command, args.dataset, args.tau, args.n
    ('certify', 'streets', [0.75, 0.9], [100])
    """
    parser = Parser(prog=PROG, description="Certified segmentation by randomized smoothing "
                                           "(SEGCERTIFY).")
    parser.add_argument("--version", action=VersionAction,
                        help="print the installed segcertify version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    certify.add_parsers(sub)
    misc.add_parsers(sub)
    radius_maps.add_parsers(sub)
    train.add_parsers(sub)
    return parser


def _fail(message: object, parser: argparse.ArgumentParser | None = None) -> int:
    """Print ONE error line (newlines folded, options named as flags); exit status 2."""
    text = _name_flags(" ".join(str(message).split()), parser or build_parser())
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return 2

def _flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Python parameter name -> its flag (``data_root`` -> ``--data-root``), all commands."""
    names: dict[str, str] = {}
    parsers = [parser]
    while parsers:
        p = parsers.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings and action.dest != argparse.SUPPRESS:
                longs = [o for o in action.option_strings if o.startswith("--")]
                names.setdefault(action.dest, (longs or action.option_strings)[0])
    return names


def _name_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """Write the options of ``message`` as flags: `` `data_root` `` -> `` `--data-root` ``.

    The runner's messages name the Python parameters in backticks; the CLI user typed
    flags. Names without a flag (``out`` is positional in ``summarize``) stay.

    Examples
    --------
    >>> _name_flags("dataset 'cityscapes' needs `data_root` (its folder).", build_parser())
    "dataset 'cityscapes' needs `--data-root` (its folder)."
    >>> _name_flags("`n` must be >= 1; got 0.", build_parser())
    '`--n` must be >= 1; got 0.'
    """
    flags = _flag_names(parser)
    return re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)`",
                  lambda m: f"`{flags.get(m.group(1), m.group(1))}`", message)



def _memoize_gettext() -> Callable[[str], str]:
    """Make argparse translate each message once; return the original to restore.

    argparse passes every header and help string through :func:`gettext.gettext`,
    which searches the message catalogues again on each call (~30 calls, a few ms of
    a ``--help`` that should cost about an ``import argparse``). The answers do not
    change while the parser is built and used.
    """
    original: Callable[[str], str] = argparse._  # type: ignore[attr-defined]
    cache: dict[str, str] = {}

    def translate(message: str) -> str:
        if message not in cache:
            cache[message] = original(message)
        return cache[message]

    argparse._ = translate  # type: ignore[attr-defined]
    return original




def main(argv: Sequence[str] | None = None) -> int:
    """Run ``segcertify`` with ``argv`` (default: ``sys.argv[1:]``); the exit status.

    Returns 0 on success and 2 for every failure a user can cause or meet: a usage or
    validation error (nothing written), an OS error (a read-only or full disk, an
    ``--out`` that is a file or inside one), a bare ``segcertify`` (the usage on
    stderr), and Ctrl-C at any moment. Each failure is ONE line on stderr, never a
    traceback; a run interrupted or stopped by an OS error keeps what it finished,
    and the same command resumes it. A command whose packages of the ``torch`` extra
    are missing ends with one line naming ``pip install 'segcertify[torch]'``.
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return _interrupted()


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    original = _memoize_gettext()
    try:
        parser = build_parser()
        if not argv:  # bare `segcertify`: the usage and the commands, as argparse would
            print(parser.format_help(), end="", file=sys.stderr)
            return 2
        args = parser.parse_args(argv)
    except UsageError as err:
        return _fail(err)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else _fail(exc.code)
    finally:
        argparse._ = original  # type: ignore[attr-defined]
    try:
        return args.func(args)
    except ImportError as err:
        hint = missing_extra(err)
        if hint is None:
            raise
        return _fail(hint, parser)
    except OSError as err:
        return _fail(os_error_message(err), parser)
    except (ValueError, TypeError, OverflowError) as err:
        return _fail(err, parser)
    except MemoryError:
        return _fail(_OUT_OF_MEMORY, parser)
    except RuntimeError as err:
        if type(err).__name__ != "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
            raise
        return _fail(f"the GPU ran out of memory ({str(err).splitlines()[0]}); "
                     + _OUT_OF_MEMORY.split("; ", 1)[1], parser)


#: The line of a MemoryError (what fills memory is a noisy batch, or one huge input).
_OUT_OF_MEMORY = ("out of memory; lower `--batch-size` (noisy copies per forward pass), or "
                  "`--image-size` / `--num-points`, then run the same command again to resume")
#: The line of Ctrl-C.
INTERRUPTED = ("interrupted (Ctrl-C); run the same command again to resume: finished work "
               "is kept")


def _interrupted() -> int:
    """Print the one line of Ctrl-C, shielded from a second Ctrl-C; exit status 2."""
    import signal

    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to shield
        previous = None
    try:
        print(f"{PROG}: error: {INTERRUPTED}", file=sys.stderr)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return 2


def os_error_message(err: OSError) -> str:
    """One line for an OS error: the cause, the file and what to do.

    Examples
    --------
    >>> import errno
    >>> print(os_error_message(OSError(errno.ENOSPC, "No space left on device", "run/x.npz")))
    No space left on device: 'run/x.npz'; free some space, then run the same command
    again to resume (finished work is kept)
    >>> os_error_message(FileNotFoundError("Cityscapes root not found: 'data'."))
    "Cityscapes root not found: 'data'."
    """
    if err.errno is None or not err.strerror:  # raised with a message of ours
        return str(err)
    import errno

    text = err.strerror
    if err.filename is not None:
        text += f": '{os.fsdecode(err.filename)}'"
    if getattr(err, "filename2", None) is not None:
        text += f" -> '{os.fsdecode(err.filename2)}'"
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        text += ("; free some space, then run the same command again to resume (finished "
                 "work is kept)")
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        text += "; check its permissions, or choose another output folder (`--out`)"
    return text
