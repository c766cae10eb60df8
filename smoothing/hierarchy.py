"""Class hierarchies: a tree over the classes, for hierarchical certification.

A :class:`Hierarchy` has the ``C`` fine classes of a model as its leaves (node ids
``0..C-1``, the label values) and coarser classes as internal nodes (ids ``C..M-1``),
each containing the fine classes below it. There is no root: a node without a
parent is a top-level class (a root holding every class would have probability 1
and certify nothing). Trees may have any depth and leaves at different depths.

Built in (:data:`BUILTIN_HIERARCHIES`): ``'cityscapes'`` (the 19 evaluated classes
-> the 7 official categories), ``'cityscapes-ahc'`` (the 4-level hierarchy of Anani
et al., ICML 2024), ``'streets'`` (the built-in street scenes -> the same 7
categories) and ``'parts'`` (the 50 global ShapeNet part ids -> their 16 object
categories; also for ``ShapeNetPart`` data). User hierarchies come from a Python
mapping (:meth:`Hierarchy.from_tree`) or a JSON file (:func:`read_hierarchy`)::

    {"format": "segcertify.hierarchy", "version": 1, "name": "my-tree",
     "classes": ["road", "sidewalk", "car", "truck", "sky"],
     "tree": {"flat": ["road", "sidewalk"], "vehicle": ["car", "truck"]}}

Classes not in the tree must be listed too: ``"tree": [{"flat": [...]}, "sky"]``
puts ``sky`` at the top level. Files are untrusted: everything is validated.

One module (~650 lines, mostly validation and docstrings): the tree, its parser and
its checks are one data type; the built-in trees are JSON files beside it.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BUILTIN_HIERARCHIES",
    "DATASET_HIERARCHIES",
    "Hierarchy",
    "builtin_hierarchy",
    "load_hierarchy",
    "read_hierarchy",
]

#: ``format`` field of a hierarchy file.
FORMAT = "segcertify.hierarchy"
#: Largest number of nodes, depth, name length and file size accepted (files are untrusted).
MAX_NODES = 65_536
MAX_DEPTH = 32
MAX_NAME = 200
MAX_FILE_BYTES = 4 * 2**20

#: Names of the built-in hierarchies.
BUILTIN_HIERARCHIES: tuple[str, ...] = ("cityscapes", "cityscapes-ahc", "streets", "parts",
                                        "shapenet-part")

#: The built-in hierarchy of each data set a run can read (none for pascal-context).
DATASET_HIERARCHIES: dict[str, str] = {
    "streets": "streets", "parts": "parts", "shapenet-part": "parts",
    "cityscapes": "cityscapes",
}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """A validated tree over ``num_classes`` fine classes.

    Parameters
    ----------
    names : sequence of str
        One unique, non-empty name per node: the ``num_classes`` fine classes
        first (in label order), then the coarser classes.
    parents : sequence of int
        The parent node id of every node, -1 for a top-level node. A parent must be
        a coarser class (id ``>= num_classes``): fine classes are leaves.
    num_classes : int
        Number ``C`` of fine classes (>= 1).
    name : str, default 'custom'
        A name for records and figures.

    Attributes
    ----------
    num_nodes : int
        ``M``, fine and coarser classes together.
    levels : numpy.ndarray
        int64 (M,): the level of every node, its height above the leaves: 0 for a
        fine class, ``1 + max(level of its children)`` for a coarser one.
    num_levels : int
        ``1 + max(levels)``.
    paths : numpy.ndarray
        int64 (C, D): row ``c`` is the path from fine class ``c`` up to its
        top-level class (``paths[c, 0] == c``), padded by repeating the top-level
        class; ``D`` is the longest path.
    leaf_counts : numpy.ndarray
        int64 (M,): number of fine classes in every node.

    Raises
    ------
    TypeError, ValueError
        For a name that is not a unique non-empty string of at most 200
        characters, a parent outside [-1, M), a fine class as a parent, a coarser
        class without children, a cycle, or a tree deeper than 32 levels.

    Examples
    --------
    >>> h = Hierarchy.from_tree({"flat": ["road", "sidewalk"], "vehicle": ["car", "bus"]},
    ...                         classes=["road", "sidewalk", "car", "bus"], name="toy")
    >>> h
    Hierarchy(name='toy', classes=4, nodes=6, levels=2, depth=2)
    >>> h.paths.tolist()
    [[0, 4], [1, 4], [2, 5], [3, 5]]
    >>> h.names[5], h.levels.tolist(), h.leaf_counts.tolist()
    ('vehicle', [0, 0, 0, 0, 1, 1], [1, 1, 1, 1, 2, 2])
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    num_classes: int
    name: str = "custom"
    levels: np.ndarray = field(init=False, repr=False)
    paths: np.ndarray = field(init=False, repr=False)
    leaf_counts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        name = _check_name(self.name, "name")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes,
                                                                 numbers.Integral):
            raise TypeError(f"`num_classes` must be an integer >= 1; got {self.num_classes!r}.")
        C = int(self.num_classes)
        if C < 1:
            raise ValueError(f"`num_classes` must be an integer >= 1; got {C}.")
        names = _check_names(self.names, C)
        parents = _check_parents(self.parents, names, C)
        levels, paths = _levels_and_paths(parents, names, C)
        leaf_counts = np.zeros(len(names), dtype=np.int64)
        for c in range(C):  # each fine class counts once in every node of its path
            leaf_counts[np.unique(paths[c])] += 1
        for attr, value in (("name", name), ("num_classes", C), ("names", names),
                            ("parents", parents), ("levels", _read_only(levels)),
                            ("paths", _read_only(paths)),
                            ("leaf_counts", _read_only(leaf_counts))):
            object.__setattr__(self, attr, value)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_tree(cls, tree: Mapping[str, Any] | Sequence[Any],
                  classes: Sequence[str] | int, *, name: str = "custom") -> Hierarchy:
        """Build a hierarchy from a nested mapping over the fine classes.

        Parameters
        ----------
        tree : mapping or sequence
            ``{coarse name: children}`` or a list of items; ``children`` is again a
            list of items or a mapping. An item is a fine class (its name in
            ``classes`` or its index) or a mapping ``{coarse name: children}``.
            Fine classes at the top level of a list have no parent. Every fine
            class must appear exactly once.
        classes : sequence of str or int
            The fine class names in label order, or their number ``C`` (names
            ``'0'..'C-1'``; refer to the classes by index).
        name : str, default 'custom'
            The hierarchy's name.

        Returns
        -------
        Hierarchy

        Raises
        ------
        TypeError, ValueError
            For an item of the wrong type, an unknown class, a class listed twice
            or missing, a coarse name that repeats or equals a class name, a
            coarse class without children, or a tree deeper than 32 levels.

        Examples
        --------
        >>> h = Hierarchy.from_tree([{"animal": {"pet": ["cat", "dog"]}}, "car"],
        ...                         classes=["cat", "dog", "car"])
        >>> h.names, h.parents, h.num_levels
        (('cat', 'dog', 'car', 'animal', 'pet'), (4, 4, -1, -1, 3), 3)
        """
        class_names = _class_names(classes)
        names, parents = list(class_names), [-1] * len(class_names)
        index = {n: i for i, n in enumerate(class_names)}
        placed: dict[int, str] = {}
        coarse: set[str] = set()

        def add(children: Any, parent: int, where: str, depth: int) -> None:
            if depth > MAX_DEPTH:
                raise ValueError(f"the tree is deeper than {MAX_DEPTH} levels at {where}.")
            if isinstance(children, Mapping):
                children = [{k: v} for k, v in children.items()]
            elif isinstance(children, (str, bytes)) or not isinstance(children, Sequence):
                raise TypeError(f"the children of {where} must be a list or a mapping; got "
                                f"{type(children).__name__}.")
            if not children:
                raise ValueError(f"{where} has no children; a coarse class needs at least one.")
            for item in children:
                if isinstance(item, Mapping):
                    for key, sub in item.items():
                        node = _check_name(key, f"coarse class name under {where}")
                        if node in index:
                            raise ValueError(f"the coarse class {node!r} under {where} has the "
                                             "name of a fine class; names must be unique.")
                        if node in coarse:
                            raise ValueError(f"the coarse class {node!r} appears twice; names "
                                             "must be unique.")
                        coarse.add(node)
                        names.append(node)
                        parents.append(parent)
                        add(sub, len(names) - 1, repr(node), depth + 1)
                    continue
                c = _class_ref(item, index, len(class_names), where)
                if c in placed:
                    raise ValueError(f"the fine class {class_names[c]!r} appears twice (under "
                                     f"{placed[c]} and {where}); every fine class must be in "
                                     "exactly one place.")
                placed[c] = where
                parents[c] = parent

        try:
            add(tree, -1, "the top level", 0)
        except RecursionError:  # pragma: no cover - bounded by MAX_DEPTH first
            raise ValueError(f"the tree is deeper than {MAX_DEPTH} levels.") from None
        missing = [class_names[c] for c in range(len(class_names)) if c not in placed]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ValueError(f"every fine class must appear exactly once in the tree; missing: "
                             f"{shown}{more} (list a class at the top level to leave it "
                             "ungrouped).")
        return cls(tuple(names), tuple(parents), len(class_names), name)

    @classmethod
    def flat(cls, classes: Sequence[str] | int, *, name: str = "flat") -> Hierarchy:
        """The one-level hierarchy: the fine classes, no coarser ones.

        Hierarchical certification with it is the flat SEGCERTIFY certificate.

        Examples
        --------
        >>> Hierarchy.flat(3).paths.tolist()
        [[0], [1], [2]]
        """
        names = _class_names(classes)
        return cls(names, (-1,) * len(names), len(names), name)

    # ------------------------------------------------------------------ queries
    @property
    def num_nodes(self) -> int:
        return len(self.names)

    @property
    def num_levels(self) -> int:
        return int(self.levels.max()) + 1

    @property
    def depth(self) -> int:
        """``D``, the number of steps of the longest path (columns of ``paths``)."""
        return int(self.paths.shape[1])

    @property
    def classes(self) -> tuple[str, ...]:
        """The fine class names, in label order."""
        return self.names[: self.num_classes]

    def level_groups(self, level: int) -> np.ndarray:
        """The level-``level`` view: every node's class at that level, -1 if coarser.

        A node of level ``<= level`` maps to its coarsest ancestor (or itself) of
        level ``<= level``; a node of a higher level maps to -1 (it says less than
        the view asks). The fine classes (rows ``0..C-1``) partition into the
        groups of the view; level 0 is the identity on them.

        Parameters
        ----------
        level : int
            In ``[0, num_levels)``.

        Returns
        -------
        numpy.ndarray
            int64 (M,): node ids or -1.

        Examples
        --------
        >>> h = Hierarchy.from_tree({"flat": ["road", "sidewalk"]}, ["road", "sidewalk"])
        >>> h.level_groups(1).tolist(), h.level_groups(0).tolist()
        ([2, 2, 2], [0, 1, -1])
        """
        if isinstance(level, bool) or not isinstance(level, numbers.Integral) or not (
                0 <= level < self.num_levels):
            raise ValueError(f"`level` must be an integer in [0, {self.num_levels}); got "
                             f"{level!r}.")
        out = np.full(self.num_nodes, -1, dtype=np.int64)
        for v in range(self.num_nodes):
            if self.levels[v] > level:
                continue
            g = v
            while self.parents[g] != -1 and self.levels[self.parents[g]] <= level:
                g = self.parents[g]
            out[v] = g
        return out

    def contains(self, nodes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Elementwise: is fine class ``classes[i]`` in node ``nodes[i]`` (False for -1)?

        Examples
        --------
        >>> import numpy as np
        >>> h = Hierarchy.from_tree({"flat": ["road", "sidewalk"]}, ["road", "sidewalk"])
        >>> h.contains(np.array([2, 0, -1]), np.array([1, 1, 0])).tolist()
        [True, False, False]
        """
        nodes, classes = np.asarray(nodes, np.int64), np.asarray(classes, np.int64)
        return (self.paths[classes] == nodes[..., None]).any(axis=-1) & (nodes >= 0)

    # ------------------------------------------------------------------ serialising
    def to_dict(self) -> dict[str, Any]:
        """The hierarchy as a JSON-ready document (what :func:`read_hierarchy` reads).

        Examples
        --------
        >>> h = Hierarchy.from_tree([{"flat": ["road", "sidewalk"]}, "sky"],
        ...                         ["road", "sidewalk", "sky"], name="t")
        >>> h.to_dict()["tree"]
        ['sky', {'flat': ['road', 'sidewalk']}]
        >>> Hierarchy.from_tree(h.to_dict()["tree"], h.classes).parents == h.parents
        True
        """
        children: dict[int, list[int]] = {v: [] for v in range(-1, self.num_nodes)}
        for v, p in enumerate(self.parents):
            children[p].append(v)

        def item(v: int) -> Any:
            if v < self.num_classes:
                return self.names[v]
            return {self.names[v]: [item(u) for u in children[v]]}

        return {"format": FORMAT, "version": 1, "name": self.name,
                "classes": list(self.classes), "tree": [item(v) for v in children[-1]]}

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_dict` without the name: equal
        trees over equal classes have equal fingerprints."""
        doc = {**self.to_dict(), "name": ""}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def __repr__(self) -> str:
        return (f"Hierarchy(name={self.name!r}, classes={self.num_classes}, "
                f"nodes={self.num_nodes}, levels={self.num_levels}, depth={self.depth})")


# ---------------------------------------------------------------------- validation
def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"the {what} must be a string; got {type(value).__name__} {value!r}.")
    if not value.strip() or len(value) > MAX_NAME:
        raise ValueError(f"the {what} must be a non-empty string of at most {MAX_NAME} "
                         f"characters; got {value[:MAX_NAME + 1]!r}.")
    return value


def _class_names(classes: Sequence[str] | int) -> tuple[str, ...]:
    if isinstance(classes, numbers.Integral) and not isinstance(classes, bool):
        if not 1 <= int(classes) <= MAX_NODES:
            raise ValueError(f"`classes` must be between 1 and {MAX_NODES}; got {classes}.")
        return tuple(str(i) for i in range(int(classes)))
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise TypeError(f"`classes` must be a list of class names or their number; got "
                        f"{type(classes).__name__}.")
    names = tuple(_check_name(c, f"class name at index {i}") for i, c in enumerate(classes))
    if not names:
        raise ValueError("`classes` must name at least one class; got an empty list.")
    return _unique(names, "class name")


def _unique(names: tuple[str, ...], what: str) -> tuple[str, ...]:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"the {what} {n!r} appears twice; names must be unique.")
        seen.add(n)
    return names


def _class_ref(item: object, index: Mapping[str, int], C: int, where: str) -> int:
    if isinstance(item, str):
        if item not in index:
            known = ", ".join(repr(n) for n in list(index)[:8])
            raise ValueError(f"unknown fine class {item!r} under {where}; the classes are "
                             f"{known}{', ...' if len(index) > 8 else ''}.")
        return index[item]
    if isinstance(item, numbers.Integral) and not isinstance(item, bool):
        if not 0 <= int(item) < C:
            raise ValueError(f"fine class index {item} under {where} must lie in [0, {C}).")
        return int(item)
    raise TypeError(f"an item under {where} must be a class name, a class index or a mapping "
                    f"{{coarse class: children}}; got {type(item).__name__} {item!r}.")


def _check_names(names: object, C: int) -> tuple[str, ...]:
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise TypeError(f"`names` must be a sequence of strings; got {type(names).__name__}.")
    names = tuple(_check_name(n, f"node name at index {i}") for i, n in enumerate(names))
    if not C <= len(names) <= MAX_NODES:
        raise ValueError(f"`names` must hold the {C} fine classes and at most {MAX_NODES} "
                         f"nodes in all; got {len(names)}.")
    return _unique(names, "node name")


def _check_parents(parents: object, names: tuple[str, ...], C: int) -> tuple[int, ...]:
    if isinstance(parents, (str, bytes)) or not isinstance(parents, Sequence):
        raise TypeError(f"`parents` must be a sequence of integers; got "
                        f"{type(parents).__name__}.")
    M = len(names)
    if len(parents) != M:
        raise ValueError(f"`parents` must have one entry per node ({M}); got {len(parents)}.")
    out = []
    for v, p in enumerate(parents):
        if isinstance(p, bool) or not isinstance(p, numbers.Integral):
            raise TypeError(f"the parent of {names[v]!r} must be an integer; got {p!r}.")
        p = int(p)
        if not -1 <= p < M:
            raise ValueError(f"the parent of {names[v]!r} must lie in [-1, {M}); got {p}.")
        if 0 <= p < C:
            raise ValueError(f"the parent of {names[v]!r} is the fine class {names[p]!r}; fine "
                             f"classes (ids 0..{C - 1}) must be leaves.")
        if p == v:
            raise ValueError(f"{names[v]!r} is its own parent.")
        out.append(p)
    has_child = set(out)
    for v in range(C, M):
        if v not in has_child:
            raise ValueError(f"the coarse class {names[v]!r} has no children; every coarse "
                             "class must contain at least one fine class.")
    return tuple(out)


def _levels_and_paths(parents: tuple[int, ...], names: tuple[str, ...],
                      C: int) -> tuple[np.ndarray, np.ndarray]:
    M = len(parents)
    ups: list[list[int]] = []
    for v in range(M):  # the path up from every node, with cycle and depth checks
        path, seen = [v], {v}
        while parents[path[-1]] != -1:
            p = parents[path[-1]]
            if p in seen:
                raise ValueError(f"the parents form a cycle through {names[p]!r}.")
            if len(path) > MAX_DEPTH:
                raise ValueError(f"the tree is deeper than {MAX_DEPTH} levels above "
                                 f"{names[v]!r}.")
            path.append(p)
            seen.add(p)
        ups.append(path)
    levels = np.zeros(M, dtype=np.int64)
    for c in range(C):  # height: the longest way down to a fine class
        for h, v in enumerate(ups[c]):
            levels[v] = max(levels[v], h)
    D = max(len(ups[c]) for c in range(C))
    paths = np.array([ups[c] + [ups[c][-1]] * (D - len(ups[c])) for c in range(C)],
                     dtype=np.int64).reshape(C, D)
    return levels, paths


# ---------------------------------------------------------------------- built-ins
#: Where the built-in hierarchies live: one JSON file each (package data), read and
#: validated like any user file. Their classes are those of the data sets
#: (tests/test_hierarchy.py checks them against ``smoothing.datasets``).
BUILTIN_DIR = Path(__file__).resolve().parent / "hierarchies"
_ALIASES = {"shapenet-part": "parts"}


def builtin_hierarchy(name: str) -> Hierarchy:
    """A built-in hierarchy by name (:data:`BUILTIN_HIERARCHIES`).

    Raises
    ------
    ValueError
        If ``name`` is not built in (the message lists them).

    Examples
    --------
    >>> builtin_hierarchy("cityscapes")
    Hierarchy(name='cityscapes', classes=19, nodes=26, levels=2, depth=2)
    >>> builtin_hierarchy("parts")
    Hierarchy(name='parts', classes=50, nodes=66, levels=2, depth=2)
    """
    if name not in BUILTIN_HIERARCHIES:
        raise ValueError(f"`hierarchy` must be one of "
                         f"{', '.join(map(repr, BUILTIN_HIERARCHIES))} or a JSON file; "
                         f"got {name!r}.")
    h = read_hierarchy(BUILTIN_DIR / f"{_ALIASES.get(name, name)}.json")
    return h if h.name == name else Hierarchy(h.names, h.parents, h.num_classes, name)


# ---------------------------------------------------------------------- files
_DOC_KEYS = frozenset({"format", "version", "name", "classes", "tree"})


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one JSON object.")
        out[key] = value
    return out


def _no_constants(text: str) -> None:
    raise ValueError(f"{text} is not allowed in a hierarchy file.")


def from_document(doc: object, *, classes: Sequence[str] | int | None = None,
                  source: str = "the hierarchy") -> Hierarchy:
    """A hierarchy from a parsed document ``{"classes": ..., "tree": ...}`` (see the
    module docstring), checked against the model's ``classes`` when given."""
    if not isinstance(doc, Mapping):
        raise TypeError(f"{source} must be a JSON object; got {type(doc).__name__}.")
    unknown = sorted(set(doc) - _DOC_KEYS, key=str)
    if unknown:
        raise ValueError(f"{source} has unknown keys {unknown}; allowed: {sorted(_DOC_KEYS)}.")
    if "format" in doc and doc["format"] != FORMAT:
        raise ValueError(f"{source} has format {doc['format']!r}; expected {FORMAT!r}.")
    if "version" in doc and (isinstance(doc["version"], bool) or doc["version"] != 1):
        raise ValueError(f"{source} has version {doc['version']!r}; this reader knows 1.")
    if "tree" not in doc:
        raise ValueError(f"{source} has no 'tree'.")
    name = _check_name(doc.get("name", "custom"), f"'name' of {source}")
    declared = doc.get("classes")
    if declared is None and classes is None:
        raise ValueError(f"{source} lists no 'classes'; pass the model's classes (names or "
                         "their number).")
    if declared is not None:
        declared = _class_names(declared)
        if classes is not None:
            expected = _class_names(classes)
            if isinstance(classes, numbers.Integral):
                if len(declared) != len(expected):
                    raise ValueError(f"{source} lists {len(declared)} classes; the model "
                                     f"has {len(expected)}.")
            elif declared != expected:
                raise ValueError(f"the 'classes' of {source} differ from the data set's: "
                                 f"{list(declared)[:6]}... vs {list(expected)[:6]}...")
    return Hierarchy.from_tree(doc["tree"], declared if declared is not None else classes,
                               name=name)


def read_hierarchy(path: str | os.PathLike[str], *,
                   classes: Sequence[str] | int | None = None) -> Hierarchy:
    """Read a hierarchy from a JSON file (untrusted: every field is validated).

    Parameters
    ----------
    path : str or path-like
        A ``.json`` file of at most 4 MiB (see the module docstring for the format).
    classes : sequence of str or int, optional
        The model's classes (names or number): the file's ``classes`` must match
        them, or, if the file lists none, they name its fine classes.

    Returns
    -------
    Hierarchy

    Raises
    ------
    ValueError
        If the file is missing, too large, not UTF-8 JSON (duplicate keys, NaN and
        YAML included), or its content is not a valid hierarchy over ``classes``.
    TypeError
        If a field has the wrong type.
    """
    p = Path(path).expanduser()
    if p.suffix.lower() in (".yaml", ".yml"):
        raise ValueError(f"{p}: YAML hierarchies are not supported (no YAML parser is "
                         "installed); write the same document as JSON.")
    if not p.is_file():
        raise ValueError(f"`hierarchy` file {str(p)!r} does not exist or is not a file.")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{p} is larger than {MAX_FILE_BYTES} bytes; a hierarchy file is "
                         "small.")
    try:
        doc = json.loads(p.read_bytes().decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_constant=_no_constants)
    except UnicodeDecodeError as err:
        raise ValueError(f"{p} is not UTF-8 text: {err}.") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{p} is not valid JSON: {err}.") from None
    except RecursionError:
        raise ValueError(f"{p} is nested too deeply.") from None
    return from_document(doc, classes=classes, source=str(p))


def load_hierarchy(spec: Hierarchy | str | os.PathLike[str] | Mapping[str, Any], *,
                   classes: Sequence[str] | int | None = None) -> Hierarchy:
    """A hierarchy from a built-in name, a JSON file, a document mapping or itself.

    Parameters
    ----------
    spec : Hierarchy, str, path-like or mapping
        A :class:`Hierarchy` (returned as is), a name in :data:`BUILTIN_HIERARCHIES`,
        a path to a JSON file (:func:`read_hierarchy`), or a document mapping
        ``{"classes": [...], "tree": ...}``.
    classes : sequence of str or int, optional
        The model's classes: the hierarchy must cover exactly these (checked for
        every kind of ``spec``).

    Returns
    -------
    Hierarchy

    Raises
    ------
    TypeError, ValueError
        For an unknown name or a missing file, an invalid hierarchy, or one over
        other classes than ``classes``.

    Examples
    --------
    >>> load_hierarchy("streets", classes=8)
    Hierarchy(name='streets', classes=8, nodes=15, levels=2, depth=2)
    >>> load_hierarchy("streets", classes=19)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: hierarchy 'streets' has 8 fine classes; the model has 19.
    """
    if isinstance(spec, Hierarchy):
        h = spec
    elif isinstance(spec, Mapping):
        h = from_document(spec, classes=classes)
    elif isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        file_like = text.lower().endswith((".json", ".yaml", ".yml")) or os.sep in text
        if text in BUILTIN_HIERARCHIES or not file_like:
            h = builtin_hierarchy(text)  # an unknown name raises, listing the names
        else:
            h = read_hierarchy(text, classes=classes)
    else:
        raise TypeError(f"`hierarchy` must be a Hierarchy, a built-in name, a JSON file or a "
                        f"mapping; got {type(spec).__name__}.")
    if classes is not None:
        expected = _class_names(classes)
        if h.num_classes != len(expected):
            raise ValueError(f"hierarchy {h.name!r} has {h.num_classes} fine classes; the model "
                             f"has {len(expected)}.")
    return h
