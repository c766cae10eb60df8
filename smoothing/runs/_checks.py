"""What the files of a run folder must hold: ``config.json``, the records, the arrays.

Every file of a run folder is untrusted: an edit, a crash, a full disk or another
program can leave anything there. :mod:`smoothing.runs.store` passes everything it
reads through these checks before anything counts it:

* :func:`check_blob` -- ``config.json``: format and version, the required options
  and their types, a grid consistent with them, and (format 3) its digest;
* :func:`check_record` -- one record against the run: kind, input among the
  selected ones, grid point of the run, the options recorded for that grid point,
  the run's digest, value types and ranges; the reason it fails, else ``None``;
* :func:`check_arrays` -- the record's ``.npz`` file: present, of the size the record
  names, a readable zip whose arrays have the names, dtypes and shape of the record
  (read from the ``.npy`` headers, without decompressing the data;
  ``allow_pickle=False`` always).

**The digest.** :func:`digest` is a SHA-256 of the run's identity (:func:`identity`:
every option and derived value that changes results; not the *location* of the
checkpoint or data, the number of inputs or the data set's size, which may change
on a resume). Format 3 stores it in ``config.json`` (``"digest"``) and in every
record (``"config_digest"``). An edited ``config.json`` no longer matches its own
digest and is refused; a ``config.json`` edited *with* its digest no longer matches
its records, which are then all skipped. It detects edits and records copied from
another run; it is no signature (whoever can write the folder can rewrite both).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoothing.runs.config import OMITTED_AT_DEFAULT, fmt_value, is_default, noise_seed

__all__ = ["FORMAT", "FORMAT_VERSION", "RunInfo", "arrays_file", "arrays_name", "check_arrays",
           "check_blob", "check_record", "digest", "file_field", "identity"]

FORMAT = "segcertify.run"
#: 3: the run's digest in config.json and in every record, ``kind``, ``labels_bytes``;
#: 2: one sampling per (sigma, n) shared by every tau; 1: a sampling per tau.
FORMAT_VERSION = 3
#: Options that may change between a run and its resume (their location only; a
#: hierarchical run compares its hierarchy by ``derived.hierarchy_sha256``, a folder
#: data set its files by ``derived.dataset_fingerprint``; ``class_names`` are names).
NOT_COMPARED = frozenset({"checkpoint", "data_root", "trust_program", "follow_symlinks",
                          "hierarchy", "class_names"})
#: Run kinds: what a folder's records are.
KINDS = {"certify": ("base", "certify"), "radius_maps": ("radius_map",)}
#: Options a radius map does not depend on (its sampling and bounds use none of them).
MAP_IGNORES = ("tau", "correction", "k")


# --------------------------------------------------------------------------- config
def identity(blob: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a ``config.json`` that decides the results (what :func:`digest` hashes)."""
    kind = blob.get("kind", "certify")
    # an option left at None is the same as one absent (options added later default to
    # it), and so is one of OMITTED_AT_DEFAULT at its default (precision, compile)
    config = {k: v for k, v in blob["config"].items()
              if k not in NOT_COMPARED and k != "num_inputs" and v is not None
              and not (k in OMITTED_AT_DEFAULT and is_default(k, v))}
    if kind == "radius_maps":
        for key in MAP_IGNORES:
            config.pop(key, None)
    derived = {k: v for k, v in blob["derived"].items() if k != "dataset_size"}
    ident = {"format": FORMAT, "kind": kind, "config": config, "derived": derived}
    if kind == "radius_maps":
        ident["radius_maps"] = blob.get("radius_maps")
    return ident


def digest(blob: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of :func:`identity`."""
    text = json.dumps(identity(blob), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class RunInfo:
    """A checked ``config.json``: what the records of the run must agree with.

    Attributes
    ----------
    blob : dict
        The file's content.
    kind : {'certify', 'radius_maps'}
    version : int
        Its ``format_version``.
    digest : str
        :func:`digest` of the blob (recomputed; equal to the stored one in format 3).
    points : dict
        Grid key -> ``(sigma, tau, n)`` (``tau`` is ``None`` for a radius map's
        ``sigma{s}-n{n}``; ``'base'`` -> ``None``).
    inputs : range
        The selected inputs.
    num_classes : int
    ndim : int
        Dimensions of a component array: 2 for images, 1 for point clouds.
    hierarchy : smoothing.hierarchy.Hierarchy or None
        A hierarchical run's hierarchy, rebuilt from ``derived.hierarchy_tree``.
    """

    blob: dict[str, Any]
    kind: str
    version: int
    digest: str
    points: dict[str, tuple[float, float | None, int] | None]
    inputs: range
    num_classes: int
    ndim: int
    hierarchy: Any = None

    @property
    def config(self) -> dict[str, Any]:
        return self.blob["config"]


def _is_int(v: object, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_list(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: (isinstance(v, list) and len(v) > 0
                      and all(check(x) for x in v) and len(set(v)) == len(v))


def _opt_str(v: object) -> bool:
    return v is None or isinstance(v, str)


#: The options a run folder's readers use: name -> (check, what it must be).
_CONFIG_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "dataset": (lambda v: isinstance(v, str), "a string"),
    "sampler": (lambda v: isinstance(v, str), "a string"),
    "split": (_opt_str, "a string or null"),
    "model": (_opt_str, "a string or null"),
    "checkpoint": (_opt_str, "a string or null"),
    "correction": (lambda v: isinstance(v, str), "a string"),
    "alpha": (lambda v: _is_num(v) and 0 < v < 1, "a number in (0, 1)"),
    "n0": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "k": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "seed": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "start": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "stride": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "num_inputs": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "sigma": (_is_list(lambda s: _is_num(s) and s > 0), "a list of numbers > 0"),
    "tau": (_is_list(lambda t: _is_num(t) and 0.5 <= t < 1), "a list of numbers in [0.5, 1)"),
    "n": (_is_list(lambda n: _is_int(n, 1)), "a list of integers >= 1"),
}
_DERIVED_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "num_classes": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "input_kind": (lambda v: v in ("image", "points"), "'image' or 'points'"),
    "dataset_size": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "grid": (_is_list(lambda g: isinstance(g, str)), "a list of grid keys"),
}


def check_blob(blob: object, path: Path) -> RunInfo:
    """Check the content of ``config.json`` at ``path``; its :class:`RunInfo`.

    Raises
    ------
    ValueError
        Naming ``path`` and the first problem: not a segcertify run, a newer format,
        a missing or mistyped option, a grid that does not follow from the options,
        or (format 3) a digest that no longer matches (the file was edited).
    """
    def bad(why: str) -> ValueError:
        return ValueError(f"'{path}' is not a valid segcertify run configuration: {why}.")

    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"'{path}' is not a segcertify run configuration.")
    version = blob.get("format_version")
    if not _is_int(version, 1):
        raise bad(f"`format_version` must be an integer >= 1; got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"'{path}' was written by a newer segcertify (run format version "
                         f"{version}; this version reads up to {FORMAT_VERSION}); upgrade.")
    kind = blob.get("kind", "certify")
    if kind not in KINDS:
        raise bad(f"`kind` must be one of {', '.join(KINDS)}; got {kind!r}")
    for section, fields in (("config", _CONFIG_FIELDS), ("derived", _DERIVED_FIELDS)):
        values = blob.get(section)
        if not isinstance(values, dict):
            raise bad(f"`{section}` must be a JSON object; got {_short(values)}")
        for name, (ok, what) in fields.items():
            if name not in values:
                raise bad(f"`{section}.{name}` is missing")
            if not ok(values[name]):
                raise bad(f"`{section}.{name}` must be {what}; got {_short(values[name])}")
    if kind == "radius_maps":
        _check_radius_options(blob.get("radius_maps"), bad)
    config, derived = blob["config"], blob["derived"]
    points = _grid_points(config, derived["grid"], kind, bad)
    computed = digest(blob)
    if version >= 3 and blob.get("digest") != computed:
        raise ValueError(
            f"'{path}' does not match its digest: it was edited after the run wrote it "
            "(or the digest was), so its options may not be those of its results; "
            "restore it or choose another `out`.")
    inputs = range(config["start"], config["start"] + config["stride"] * config["num_inputs"],
                   config["stride"])
    hierarchy = _run_hierarchy(blob, kind, bad) if "hierarchy" in config else None
    return RunInfo(blob, kind, version, computed, points, inputs, derived["num_classes"],
                   2 if derived["input_kind"] == "image" else 1, hierarchy)


def _run_hierarchy(blob: Mapping[str, Any], kind: str, bad: Callable[[str], ValueError]) -> Any:
    """The hierarchy of a hierarchical run: its options' types, and the tree recorded in
    ``derived`` over the run's classes with the recorded fingerprint."""
    from smoothing.hierarchy import from_document

    config, derived = blob["config"], blob["derived"]
    if kind != "certify":
        raise bad(f"`config.hierarchy` is not used by a {kind} run")
    if not isinstance(config["hierarchy"], str):
        raise bad(f"`config.hierarchy` must be a string; got {_short(config['hierarchy'])}")
    if config.get("hierarchy_rule") not in ("nested", "adaptive"):
        raise bad(f"`config.hierarchy_rule` must be 'nested' or 'adaptive'; got "
                  f"{_short(config.get('hierarchy_rule'))}")
    try:
        h = from_document(derived.get("hierarchy_tree"), classes=derived["num_classes"],
                          source="`derived.hierarchy_tree`")
    except (TypeError, ValueError) as err:
        raise bad(str(err).rstrip(".")) from None
    if derived.get("hierarchy_sha256") != h.fingerprint:
        raise bad("`derived.hierarchy_sha256` is not the fingerprint of "
                  "`derived.hierarchy_tree`")
    return h


def _check_radius_options(section: object, bad: Callable[[str], ValueError]) -> None:
    if not isinstance(section, dict) or section.get("method") not in ("bonferroni", "ladder"):
        raise bad(f"`radius_maps.method` must be 'bonferroni' or 'ladder'; got {_short(section)}")
    levels = section.get("levels")
    if levels is not None and not _is_list(lambda t: _is_num(t) and 0.5 < t < 1)(levels):
        raise bad(f"`radius_maps.levels` must be null or a list of numbers in (0.5, 1); got "
                  f"{_short(levels)}")


def _grid_points(config: Mapping[str, Any], keys: list[str], kind: str,
                 bad: Callable[[str], ValueError]) -> dict[str, Any]:
    """Grid key -> (sigma, tau, n), every key of ``derived.grid`` from the options."""
    possible: dict[str, Any] = {}
    for s in config["sigma"]:
        for n in config["n"]:
            if kind == "radius_maps":
                possible[f"sigma{fmt_value(s)}-n{n}"] = (s, None, n)
                continue
            for t in config["tau"]:
                possible[f"sigma{fmt_value(s)}-tau{fmt_value(t)}-n{n}"] = (s, t, n)
    unknown = [k for k in keys if k not in possible]
    if unknown:
        raise bad(f"`derived.grid` names {unknown[0]!r}, which is no point of the options' "
                  "sigma x tau x n")
    points = {k: possible[k] for k in keys}
    if kind == "certify":
        points["base"] = None
    return points


def _short(value: object) -> str:
    text = json.dumps(value) if _jsonable(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- records
def check_record(rec: Mapping[str, Any], info: RunInfo) -> str | None:
    """Why ``rec`` cannot be counted for the run ``info`` (``None``: it can).

    Examples
    --------
    >>> info = check_blob({"format": FORMAT, "format_version": 2, "config": {
    ...     "dataset": "streets", "sampler": "gaussian", "split": "test", "model": None,
    ...     "checkpoint": None, "correction": "holm", "alpha": 0.01, "n0": 4, "k": 1,
    ...     "seed": 0, "start": 0, "stride": 1, "num_inputs": 2, "sigma": [0.25],
    ...     "tau": [0.6], "n": [32]}, "derived": {"num_classes": 8, "input_kind": "image",
    ...     "dataset_size": 2, "grid": ["sigma0.25-tau0.6-n32"]}}, Path("config.json"))
    >>> check_record({"kind": "base", "input": 7, "grid": "base"}, info)
    "`input` 7 is not one of the run's inputs (0 to 1)"
    """
    kind = rec.get("kind")
    if kind not in KINDS[info.kind]:
        return f"`kind` {_short(kind)} is not one of {', '.join(KINDS[info.kind])}"
    index = rec.get("input")
    if not _is_int(index) or index not in info.inputs:
        r = info.inputs
        where = f"{r.start} to {r[-1]}" + (f" by {r.step}" if r.step != 1 else "")
        return f"`input` {_short(index)} is not one of the run's inputs ({where})"
    grid = rec.get("grid")
    if not isinstance(grid, str) or grid not in info.points or (kind == "base") != (
            grid == "base"):
        return f"`grid` {_short(grid)} is not a grid point of the run"
    if info.version >= 3 or "config_digest" in rec:
        if rec.get("config_digest") != info.digest:
            return ("`config_digest` does not match config.json (a record of other options, "
                    "or config.json was edited)")
    expected, field = arrays_name(kind, index, grid), _FILE_FIELD[kind]
    if rec.get(field) != expected:
        return f"`{field}` must be {expected!r}; got {_short(rec.get(field))}"
    if "labels_bytes" in rec and not _is_int(rec["labels_bytes"], 1):
        return f"`labels_bytes` must be an integer >= 1; got {_short(rec['labels_bytes'])}"
    return _KIND_CHECKS[kind](rec, info, info.points[grid])


def _fields(rec: Mapping[str, Any], specs: Mapping[str, tuple[Callable[[object], bool], str]]
            ) -> str | None:
    for name, (ok, what) in specs.items():
        if name not in rec:
            return f"`{name}` is missing"
        if not ok(rec[name]):
            return f"`{name}` must be {what}; got {_short(rec[name])}"
    return None


def _time(v: object) -> bool:
    return _is_num(v) and v >= 0


_COUNTS = {name: (lambda v: _is_int(v), "an integer >= 0")
           for name in ("num_valid", "num_correct", "num_abstain")}
_COUNTS["num_components"] = (lambda v: _is_int(v, 1), "an integer >= 1")
_TIME = (_time, "a finite number >= 0")


def _check_metrics(rec: Mapping[str, Any], info: RunInfo) -> str | None:
    """The per-input metrics of a base or certify record (what summaries pool)."""
    if (why := _fields(rec, _COUNTS)) is not None:
        return why
    valid, correct, abstain = rec["num_valid"], rec["num_correct"], rec["num_abstain"]
    if valid > rec["num_components"]:
        return f"`num_valid` {valid} exceeds `num_components` {rec['num_components']}"
    if correct + abstain > valid:
        return (f"`num_correct` {correct} + `num_abstain` {abstain} exceed `num_valid` "
                f"{valid}")
    k = info.num_classes
    lists = {name: (lambda v: isinstance(v, list) and len(v) == k
                    and all(_is_int(x) and x <= valid for x in v),
                    f"a list of {k} integers in [0, num_valid]")
             for name in ("intersection", "union")}
    if (why := _fields(rec, lists)) is not None:
        return why
    if any(i > u for i, u in zip(rec["intersection"], rec["union"], strict=True)):
        return "`intersection` exceeds `union` for some class"
    if sum(rec["intersection"]) != correct:
        return f"`intersection` sums to {sum(rec['intersection'])}, not `num_correct` {correct}"
    return None


def _check_base(rec: Mapping[str, Any], info: RunInfo, point: None) -> str | None:
    return _check_metrics(rec, info) or _fields(rec, {"time_forward": _TIME})


def _same(value: object) -> tuple[Callable[[object], bool], str]:
    return (lambda v: v == value and type(v) is not bool, f"the run's {_short(value)}")


def _check_certify(rec: Mapping[str, Any], info: RunInfo,
                   point: tuple[float, float, int]) -> str | None:
    c = info.config
    sigma, tau, n = point
    specs = {"sigma": _same(sigma), "tau": _same(tau), "n": _same(n), "n0": _same(c["n0"]),
             "alpha": _same(c["alpha"]), "correction": _same(c["correction"]),
             "k": _same(c["k"]),
             "radius": (lambda v: v is None or (_is_num(v) and v >= 0),
                        "a finite number >= 0 or null"),
             "sound": (lambda v: isinstance(v, bool), "true or false"),
             "time_sampling": _TIME, "time_testing": _TIME}
    return (_fields(rec, specs) or _check_metrics(rec, info)
            or _check_seed(rec, info, sigma, n) or _check_hierarchical(rec, info))


def _check_hierarchical(rec: Mapping[str, Any], info: RunInfo) -> str | None:
    """A hierarchical run's fields of a certify record: its fingerprint and rule, and a
    ``hier`` state of this hierarchy for one input of the record's ``num_valid``."""
    h = info.hierarchy
    if h is None:
        return None
    specs = {"hierarchy_sha256": _same(h.fingerprint),
             "hierarchy_rule": _same(info.config["hierarchy_rule"])}
    if (why := _fields(rec, specs)) is not None:
        return why
    from smoothing.metrics import HierarchicalMetrics

    metrics = HierarchicalMetrics(h)
    try:
        metrics.add_state(rec.get("hier"))  # type: ignore[arg-type]
    except ValueError as err:
        return f"`hier` is not a state of the run's hierarchy: {str(err).rstrip('.')}"
    if metrics.num_inputs != 1 or metrics.num_components != rec["num_valid"]:
        return (f"`hier` counts {metrics.num_inputs} input(s) of {metrics.num_components} "
                f"components, not 1 of `num_valid` {rec['num_valid']}")
    return None


def _check_seed(rec: Mapping[str, Any], info: RunInfo, sigma: float, n: int) -> str | None:
    if info.version < 2 or "noise_seed" not in rec:  # format 1 seeded every tau apart
        return None
    seed = noise_seed(info.config["seed"], rec["input"], f"sigma{fmt_value(sigma)}-n{n}")
    if rec["noise_seed"] != seed:
        return f"`noise_seed` {_short(rec['noise_seed'])} is not the run's {seed}"
    return None


def _check_radius_map(rec: Mapping[str, Any], info: RunInfo,
                      point: tuple[float, None, int]) -> str | None:
    c, opts = info.config, info.blob["radius_maps"]
    sigma, _, n = point
    frac = (lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]")
    radius = (lambda v: _is_num(v) and v >= 0, "a finite number >= 0")
    specs = {"sigma": _same(sigma), "n": _same(n), "n0": _same(c["n0"]),
             "alpha": _same(c["alpha"]), "method": _same(opts["method"]),
             "num_components": _COUNTS["num_components"],
             "certified": frac, "certified_accuracy": frac, "mean_radius": radius,
             "mean_certified_radius": radius, "max_radius": radius,
             "time_sampling": _TIME, "time_testing": _TIME}
    why = _fields(rec, specs) or _check_seed(rec, info, sigma, n)
    if why is None and opts["method"] == "ladder" and rec.get("levels") != opts["levels"] \
            and opts["levels"] is not None:
        why = f"`levels` {_short(rec.get('levels'))} are not the run's {opts['levels']}"
    return why


_KIND_CHECKS: dict[str, Callable[..., str | None]] = {
    "base": _check_base, "certify": _check_certify, "radius_map": _check_radius_map}
#: Where a record's arrays are (folder of the run folder) and the field naming them.
FOLDERS = {"base": "labels", "certify": "labels", "radius_map": "radius_maps"}
_FILE_FIELD = {"base": "labels_file", "certify": "labels_file", "radius_map": "file"}


def arrays_name(kind: str, index: int, grid: str) -> str:
    """The ``.npz`` file of a record, relative to the run folder.

    Examples
    --------
    >>> arrays_name("certify", 7, "sigma0.25-tau0.75-n100")
    'labels/000007-sigma0.25-tau0.75-n100.npz'
    """
    return f"{FOLDERS[kind]}/{index:06d}-{grid}.npz"


def file_field(kind: str) -> str:
    """The record field that names its ``.npz`` file."""
    return _FILE_FIELD[kind]


# --------------------------------------------------------------------------- arrays
#: The arrays of a record's file: name -> NumPy dtype kinds allowed (all of one shape).
ARRAYS: dict[str, dict[str, str]] = {
    "base": {"labels": "i"},
    "certify": {"labels": "i", "guesses": "i", "counts": "iu"},
    "radius_map": {"radius": "f", "labels": "i", "p_lower": "f", "guesses": "i",
                   "counts": "iu", "target": "iu"},
}
#: The arrays a hierarchical run's certify files hold besides :data:`ARRAYS`: the
#: certified node and its level per component (ABSTAIN = -1).
HIERARCHY_ARRAYS: dict[str, str] = {"nodes": "i", "levels": "i"}


def expected_arrays(rec: Mapping[str, Any], info: RunInfo) -> dict[str, str]:
    """The arrays of a checked record's file: name -> NumPy dtype kinds allowed."""
    names = ARRAYS[rec["kind"]]
    if info.hierarchy is not None and rec["kind"] == "certify":
        names = {**names, **HIERARCHY_ARRAYS}
    return names


def arrays_file(rec: Mapping[str, Any]) -> str:
    """The relative path of a checked record's ``.npz`` file."""
    return rec[_FILE_FIELD[rec["kind"]]]


def check_arrays(out: Path, rec: Mapping[str, Any], info: RunInfo) -> str | None:
    """Why the ``.npz`` file of a checked record cannot be used (``None``: it can).

    Reads the zip directory and the ``.npy`` headers only: a missing, truncated or
    replaced file, a missing array, a wrong dtype or shape are found without
    decompressing the data. Nothing is unpickled.
    """
    import numpy as np

    path = out / arrays_file(rec)
    try:
        size = os.stat(path).st_size
        if "labels_bytes" in rec and size != rec["labels_bytes"]:
            return (f"its file '{path.name}' has {size} bytes, not the {rec['labels_bytes']} "
                    "written (truncated or replaced)")
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            shapes = []
            for name, kinds in expected_arrays(rec, info).items():
                if f"{name}.npy" not in names:
                    return f"its file '{path.name}' holds no `{name}` array"
                with z.open(f"{name}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(f)
                if dtype.kind not in kinds or dtype.hasobject:
                    return f"its `{name}` array has dtype {dtype}, not an expected one"
                shapes.append(shape)
    except FileNotFoundError:
        return f"its file '{path.name}' is missing"
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        return f"its file '{path.name}' cannot be read ({type(err).__name__}: {err})"
    shape = shapes[0]
    if any(s != shape for s in shapes) or len(shape) != info.ndim \
            or math.prod(shape) != rec["num_components"]:
        return (f"the arrays of '{path.name}' have shapes {shapes}, not one "
                f"{info.ndim}-D shape of {rec['num_components']} components")
    return None
