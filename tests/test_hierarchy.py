"""Class hierarchies (smoothing.hierarchy) and the hierarchical metrics (CIG, per level)."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smoothing.hierarchy import (
    BUILTIN_HIERARCHIES,
    DATASET_HIERARCHIES,
    Hierarchy,
    builtin_hierarchy,
    load_hierarchy,
    read_hierarchy,
)
from smoothing.metrics import (
    HierarchicalMetrics,
    SegmentationMetrics,
    certified_information_gain,
)

CLASSES = ["road", "sidewalk", "car", "truck", "sky"]
TREE = [{"flat": ["road", "sidewalk"]}, {"vehicle": ["car", 3]}, "sky"]


def toy():
    return Hierarchy.from_tree(TREE, CLASSES, name="toy")


def reference_leaves(h):
    """Fine classes below every node, by walking up the parents."""
    out = {v: set() for v in range(h.num_nodes)}
    for c in range(h.num_classes):
        v = c
        while v != -1:
            out[v].add(c)
            v = h.parents[v]
    return out


def check_structure(h):
    leaves = reference_leaves(h)
    assert h.leaf_counts.tolist() == [len(leaves[v]) for v in range(h.num_nodes)]
    for c in range(h.num_classes):
        path = h.paths[c].tolist()
        assert path[0] == c
        for a, b in zip(path, path[1:], strict=False):
            assert b == a or h.parents[a] == b  # parent steps, then the top repeated
        assert h.parents[path[-1]] == -1
        assert all(c in leaves[v] for v in path)
    for v in range(h.num_classes, h.num_nodes):
        kids = [u for u in range(h.num_nodes) if h.parents[u] == v]
        assert h.levels[v] == 1 + max(h.levels[u] for u in kids)
    assert (h.levels[: h.num_classes] == 0).all()


# ---------------------------------------------------------------------------
# building and validating
# ---------------------------------------------------------------------------
def test_from_tree_names_indices_and_top_level_leaves():
    h = toy()
    assert h.names == (*CLASSES, "flat", "vehicle")
    assert h.parents == (5, 5, 6, 6, -1, -1, -1)
    assert h.paths.tolist() == [[0, 5], [1, 5], [2, 6], [3, 6], [4, 4]]
    assert h.num_levels == 2 and h.depth == 2 and h.classes == tuple(CLASSES)
    check_structure(h)
    assert not h.paths.flags.writeable and not h.levels.flags.writeable


@pytest.mark.parametrize("name", BUILTIN_HIERARCHIES)
def test_builtins_are_valid(name):
    h = builtin_hierarchy(name)
    check_structure(h)
    assert load_hierarchy(name).fingerprint == h.fingerprint


def test_cityscapes_is_the_official_seven_categories():
    from smoothing.datasets import CITYSCAPES_CLASSES

    h = builtin_hierarchy("cityscapes")
    assert h.classes == CITYSCAPES_CLASSES and h.num_nodes == 26
    cats = {h.names[v]: sorted(h.names[c] for c in range(19) if h.parents[c] == v)
            for v in range(19, 26)}
    assert cats["vehicle"] == sorted(["car", "truck", "bus", "train", "motorcycle", "bicycle"])
    assert cats["flat"] == ["road", "sidewalk"] and cats["human"] == ["person", "rider"]
    assert cats["object"] == sorted(["pole", "traffic light", "traffic sign"])
    assert len(cats) == 7


def test_parts_groups_every_part_under_its_object():
    from smoothing.datasets import SHAPENET_PARTS

    h = builtin_hierarchy("parts")
    assert h.num_classes == 50 and h.num_levels == 2
    for cat, parts in SHAPENET_PARTS.items():
        v = h.names.index(cat)
        assert [c for c in range(50) if h.parents[c] == v] == list(parts)


def test_streets_and_ahc():
    from smoothing.datasets import STREET_CLASSES

    s = builtin_hierarchy("streets")
    assert s.classes == STREET_CLASSES
    assert s.names[s.paths[0, 1]] == "flat" == s.names[s.paths[1, 1]]
    a = builtin_hierarchy("cityscapes-ahc")
    assert a.classes == builtin_hierarchy("cityscapes").classes
    assert builtin_hierarchy("shapenet-part").name == "shapenet-part"
    assert builtin_hierarchy("shapenet-part").fingerprint == builtin_hierarchy("parts").fingerprint
    assert a.num_levels == 4 and a.paths[0].tolist() == [0] * 4  # 'road' hangs from the root
    assert set(DATASET_HIERARCHIES.values()) <= set(BUILTIN_HIERARCHIES)


def test_flat_is_one_level():
    h = Hierarchy.flat(["a", "b"])
    assert h.num_levels == 1 and h.paths.tolist() == [[0], [1]]


@pytest.mark.parametrize(("tree", "error", "match"), [
    ({"flat": ["road", "sidewalk", "bike"]}, ValueError, "unknown fine class 'bike'"),
    ([{"flat": ["road", "road"]}], ValueError, "appears twice"),
    ({"flat": ["road"], "x": ["road"]}, ValueError, "appears twice"),
    ({"flat": ["road", "sidewalk"]}, ValueError, "missing: 'car', 'truck', 'sky'"),
    ([{"road": ["sidewalk"]}], ValueError, "name of a fine class"),
    ([{"a": ["road"]}, {"a": ["sidewalk"]}], ValueError, "'a' appears twice"),
    ({"a": []}, ValueError, "has no children"),
    ({"a": "road"}, TypeError, "must be a list or a mapping"),
    ([1.5], TypeError, "class name, a class index or a mapping"),
    ([True], TypeError, "class name, a class index"),
    ([7], ValueError, r"index 7 .* \[0, 5\)"),
    ({"": ["road"]}, ValueError, "non-empty string"),
    ({3: ["road"]}, TypeError, "must be a string"),
    ("road", TypeError, "must be a list or a mapping"),
])
def test_from_tree_errors(tree, error, match):
    with pytest.raises(error, match=match):
        Hierarchy.from_tree(tree, CLASSES)


def test_too_deep():
    tree = ["a"]
    for i in range(40):
        tree = [{f"n{i}": tree}]
    with pytest.raises(ValueError, match="deeper than 32"):
        Hierarchy.from_tree(tree, ["a"])


@pytest.mark.parametrize(("names", "parents", "C", "match"), [
    (("a", "b", "g"), (2, 2, 0), 2, "fine class 'a'; fine classes"),
    (("a", "b", "g", "h"), (2, 3, 3, 2), 2, "cycle"),
    (("a", "b", "g", "h"), (2, 2, -1, -1), 2, "'h' has no children"),
    (("a", "b", "g"), (2, 2), 2, "one entry per node"),
    (("a", "a", "g"), (2, 2, -1), 2, "'a' appears twice"),
    (("a", "b", "g"), (2, 2, 3), 2, r"\[-1, 3\)"),
    (("a", "b", "g"), (2, 2, 2), 2, "its own parent"),
    (("a",), (-1,), 2, "must hold the 2 fine classes"),
])
def test_constructor_errors(names, parents, C, match):
    with pytest.raises(ValueError, match=match):
        Hierarchy(names, parents, C)


def test_constructor_type_errors():
    with pytest.raises(TypeError, match="parent of 'a' must be an integer"):
        Hierarchy(("a", "g"), (1.0, -1), 1)
    with pytest.raises(TypeError, match="num_classes"):
        Hierarchy(("a",), (-1,), True)
    with pytest.raises(TypeError, match="`classes`"):
        Hierarchy.from_tree(["a"], "abc")


@st.composite
def trees(draw):
    C = draw(st.integers(1, 12))
    classes = [f"c{i}" for i in range(C)]
    order = draw(st.permutations(range(C)))
    counter = iter(range(10_000))

    def build(items, depth):
        if len(items) <= 1 or depth > 3 or not draw(st.booleans()):
            return list(items)
        cut = draw(st.integers(1, len(items)))
        head, tail = items[:cut], items[cut:]
        return [{f"g{next(counter)}": build(head, depth + 1)}, *build(tail, depth)]

    return build(list(order), 0), classes


@settings(max_examples=60, deadline=None)
@given(trees())
def test_random_trees_round_trip(spec):
    tree, classes = spec
    h = Hierarchy.from_tree(tree, classes)
    check_structure(h)
    doc = h.to_dict()
    again = load_hierarchy(json.loads(json.dumps(doc)), classes=classes)
    assert again.parents == h.parents and again.names == h.names
    assert again.fingerprint == h.fingerprint
    for level in range(h.num_levels):  # the level view partitions the fine classes
        groups = h.level_groups(level)
        assert (groups[: h.num_classes] >= 0).all()
        assert all(h.levels[g] <= level for g in groups[groups >= 0])
        members = h.contains(groups[: h.num_classes], np.arange(h.num_classes))
        assert members.all()


def test_level_groups_and_contains():
    h = builtin_hierarchy("cityscapes-ahc")
    g1 = h.level_groups(1)
    assert h.names[g1[h.names.index("car")]] == "vehicle"
    assert g1[h.names.index("road")] == h.names.index("road")  # a top-level fine class
    assert g1[h.names.index("obstacle")] == -1
    assert h.contains(np.array([h.names.index("obstacle")]), np.array([2])).all()
    with pytest.raises(ValueError, match=r"`level` must be an integer in \[0, 4\)"):
        h.level_groups(4)


def test_fingerprint_ignores_the_name_only():
    a = Hierarchy.from_tree(TREE, CLASSES, name="a")
    b = Hierarchy.from_tree(TREE, CLASSES, name="b")
    c = Hierarchy.from_tree([{"flat": ["road", "sky"]}, {"vehicle": ["car", 3]}, "sidewalk"],
                            CLASSES)
    assert a.fingerprint == b.fingerprint != c.fingerprint


# ---------------------------------------------------------------------------
# files: untrusted input
# ---------------------------------------------------------------------------
def write(tmp_path, text, name="h.json"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def test_read_round_trip(tmp_path):
    h = toy()
    p = write(tmp_path, json.dumps(h.to_dict()))
    got = read_hierarchy(p, classes=CLASSES)
    assert got.names == h.names and got.parents == h.parents and got.name == "toy"
    assert load_hierarchy(str(p)).fingerprint == h.fingerprint
    assert load_hierarchy(p, classes=5).parents == h.parents
    # without 'classes' in the file, the model's classes name the leaves
    bare = write(tmp_path, json.dumps({"tree": TREE}), "bare.json")
    assert read_hierarchy(bare, classes=CLASSES).parents == h.parents


@pytest.mark.parametrize(("text", "match"), [
    ('{"tree": [], "tree": []}', "appears twice in one JSON object"),
    ('{"tree": [NaN]}', "NaN is not allowed"),
    ('{"tree": [], "extra": 1}', "unknown keys"),
    ('{"format": "other", "tree": []}', "format 'other'"),
    ('{"version": 2, "tree": []}', "version 2"),
    ('{"version": true, "tree": []}', "version True"),
    ('{"classes": ["a"]}', "has no 'tree'"),
    ('{"tree": [', "not valid JSON"),
    (b'{"tree": ["\xff"]}', "not UTF-8"),
    ('[1, 2]', "must be a JSON object"),
    ('{"classes": ["x", "y"], "tree": ["x", "y"]}', "differ from the data set's"),
    ('{"tree": ["road"]}', "missing"),
    ('{"name": 5, "tree": []}', "'name'"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply|not valid JSON"),
])
def test_read_rejects_bad_files(tmp_path, text, match):
    with pytest.raises((ValueError, TypeError), match=match):
        read_hierarchy(write(tmp_path, text), classes=CLASSES)


def test_read_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_hierarchy(tmp_path / "none.json")
    with pytest.raises(ValueError, match="YAML hierarchies are not supported"):
        read_hierarchy(write(tmp_path, "tree: []", "h.yaml"))
    big = write(tmp_path, " " * (4 * 2**20 + 1))
    with pytest.raises(ValueError, match="larger than"):
        read_hierarchy(big)
    with pytest.raises(ValueError, match="lists no 'classes'"):
        read_hierarchy(write(tmp_path, '{"tree": [0]}'))
    with pytest.raises(ValueError, match="lists 5 classes; the model has 4"):
        read_hierarchy(write(tmp_path, json.dumps(toy().to_dict())), classes=4)


def test_load_hierarchy_dispatch():
    assert load_hierarchy(toy()).name == "toy"
    assert load_hierarchy({"classes": CLASSES, "tree": TREE}).num_nodes == 7
    with pytest.raises(ValueError, match="must be one of 'cityscapes'"):
        load_hierarchy("nope")
    with pytest.raises(ValueError, match="has 8 fine classes; the model has 19"):
        load_hierarchy("streets", classes=19)
    with pytest.raises(TypeError, match="`hierarchy` must be"):
        load_hierarchy(3)


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------
def reference_metrics(h, nodes, target):
    """CIG, per-level fractions and accuracy by a loop over components."""
    C, L = h.num_classes, h.num_levels
    leaves = reference_leaves(h)
    gain, cert, corr = 0.0, np.zeros(L), np.zeros(L)
    for v, t in zip(nodes, target, strict=True):
        if v < 0:
            continue
        cert[h.levels[v]] += 1
        if t in leaves[v]:
            corr[h.levels[v]] += 1
            gain += math.log(C) - math.log(len(leaves[v]))
    return gain / len(nodes) / math.log(C), cert / len(nodes), corr / len(nodes)


@pytest.mark.parametrize("name", ["cityscapes-ahc", "streets", "parts"])
def test_metrics_against_a_loop(rng, name):
    h = builtin_hierarchy(name)
    nodes = rng.integers(-1, h.num_nodes, size=300)
    target = rng.integers(0, h.num_classes, size=300)
    m = HierarchicalMetrics(h)
    m.update(nodes[:100], target[:100])
    m.update(nodes[100:], target[100:])
    cig, cert, corr = reference_metrics(h, nodes, target)
    assert m.cig == pytest.approx(cig, rel=1e-12)
    np.testing.assert_allclose(m.certified_fraction(), cert)
    np.testing.assert_allclose(m.certified_accuracy(), corr)
    assert m.abstain_rate == pytest.approx(np.mean(nodes == -1))
    assert m.accuracy == pytest.approx(corr.sum())
    assert certified_information_gain([nodes[:100], nodes[100:]],
                                      [target[:100], target[100:]], h) == pytest.approx(cig)
    assert m.summary()["num_components"] == 300


def test_flat_hierarchy_metrics_are_the_flat_ones(rng):
    h = Hierarchy.flat(6)
    labels = rng.integers(-1, 6, size=(2, 40))
    target = rng.integers(0, 6, size=(2, 40))
    target[0, :3] = 255
    m, flat = HierarchicalMetrics(h), SegmentationMetrics(6)
    for p, t in zip(labels, target, strict=True):
        m.update(p, t)
        flat.update(p, t)
    assert m.cig == pytest.approx(flat.accuracy)  # CIG of a flat certificate = accuracy
    assert m.miou(0) == flat.miou_dataset
    assert m.miou(0, per_image=True) == flat.miou_per_image
    assert m.abstain_rate == flat.abstain_rate and m.num_components == 77


def test_level_view_miou():
    h = Hierarchy.from_tree({"flat": ["road", "sidewalk"], "x": ["car"]},
                            ["road", "sidewalk", "car"])
    m = HierarchicalMetrics(h)
    # certified 'flat' on a road pixel: right at level 1, no answer at level 0
    m.update(np.array([3, 3, 2]), np.array([0, 1, 2]))
    assert m.miou(1) == 1.0
    assert m.miou(0) == pytest.approx((0 + 0 + 1) / 3)


def test_metrics_validation():
    h = toy()
    m = HierarchicalMetrics(h)
    with pytest.raises(ValueError, match=r"`nodes` must lie in \[0, 7\)"):
        m.update(np.array([7]), np.array([0]))
    with pytest.raises(ValueError, match=r"`target` must lie in \[0, 5\)"):
        m.update(np.array([0]), np.array([5]))
    with pytest.raises(ValueError, match="same shape"):
        m.update(np.array([0, 1]), np.array([0]))
    with pytest.raises(TypeError, match="integer labels"):
        m.update(np.array([0.5]), np.array([0]))
    with pytest.raises(TypeError, match="Hierarchy"):
        HierarchicalMetrics("toy")
    with pytest.raises(TypeError, match="both as arrays"):
        certified_information_gain([np.array([0])], np.array([0]), h)
    assert math.isnan(HierarchicalMetrics(Hierarchy.flat(1)).cig)


# ---------------------------------------------------------------------------
# the measurement script
# ---------------------------------------------------------------------------
def test_simulation_quick_mode(tmp_path):
    import csv

    from simulations import hierarchical as sim

    args = ["--out", str(tmp_path), "--figures", str(tmp_path), "--threads", "1"]
    assert sim.main(["--quick", *args]) == 0
    with open(tmp_path / "hierarchical.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["rule"] for r in rows} == set(sim.RULES)
    assert len(rows) == 2 * len(sim.RULES) * 2  # 2 data sets, seed 0 and the mean
    for dataset in ("parts", "streets"):
        by = {r["rule"]: r for r in rows if r["dataset"] == dataset and r["seed"] == "0"}
        for r in by.values():
            total = sum(float(r[k]) for k in ("certified_fine_pct", "certified_coarse_pct",
                                              "abstain_pct"))
            assert total == pytest.approx(100, abs=1e-3)
            assert float(r["accuracy_fine_pct"]) <= float(r["certified_fine_pct"]) + 1e-9
        flat, nested = by["flat-holm"], by["nested-holm"]
        assert flat["certified_fine_pct"] == nested["certified_fine_pct"]  # the flat labels
        assert float(flat["certified_coarse_pct"]) == 0
        assert float(nested["abstain_pct"]) <= float(flat["abstain_pct"])
        assert float(nested["cig"]) >= float(flat["cig"])
        assert float(nested["abstain_pct"]) <= float(by["nested-bonferroni"]["abstain_pct"])
    assert (tmp_path / "hierarchical.png").stat().st_size > 0
    assert "| parts | nested Holm (step-down) |" in (tmp_path / "hierarchical_table.md").read_text()
    assert sim.main(["--plot-only", *args]) == 0


def test_states_pool_like_one_object(rng):
    h = builtin_hierarchy("cityscapes-ahc")
    whole = HierarchicalMetrics(h)
    pooled = HierarchicalMetrics(h)
    for _ in range(3):
        nodes = rng.integers(-1, h.num_nodes, size=(5, 7))
        target = rng.integers(0, h.num_classes, size=(5, 7))
        target[0, 0] = 255
        whole.update(nodes, target)
        one = HierarchicalMetrics(h)
        one.update(nodes, target)
        pooled.add_state(json.loads(json.dumps(one.state())))
    a, b = whole.summary(), pooled.summary()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-12)


@pytest.mark.parametrize(("change", "match"), [
    ({"hierarchy_sha256": "0" * 64}, "another hierarchy"),
    ({"abstained": -1}, "non-negative integers"),
    ({"num_inputs": True}, "non-negative integers"),
    ({"certified": [1]}, "list of 2 counts"),
    ({"intersection": [[0] * 5]}, "list of 2 entries"),
    ({"union": [[0] * 4, [0] * 3]}, r"\['union'\]\[0\]"),
    ({"gain_nats": float("nan")}, "finite non-negative"),
    ({"iou_sum": [0.0, -1.0]}, "finite non-negative"),
    ({"num_components": None}, "non-negative integers"),
])
def test_add_state_rejects_bad_records(change, match):
    h = toy()
    m = HierarchicalMetrics(h)
    m.update(np.array([0, 5, -1]), np.array([0, 1, 2]))
    state = {**m.state(), **change}
    with pytest.raises(ValueError, match=match):
        HierarchicalMetrics(h).add_state(state)
    with pytest.raises(ValueError, match="is missing"):
        HierarchicalMetrics(h).add_state({k: v for k, v in m.state().items()
                                          if k != "correct"})


def test_node_palette_lightens_coarser_levels():
    from smoothing.figures import colorize, node_palette

    h = builtin_hierarchy("cityscapes-ahc")
    base = np.full((19, 3), 40, dtype=np.uint8)
    pal = node_palette(h, base)
    assert pal.shape == (h.num_nodes, 3) and (pal[:19] == 40).all()
    brightness = pal.astype(int).sum(axis=1)
    for v in range(h.num_nodes):  # every node at least as light as its children
        if h.parents[v] != -1:
            assert brightness[h.parents[v]] >= brightness[v]
    assert colorize(np.array([h.num_nodes - 1, -1]), pal).shape == (2, 3)
    with pytest.raises(ValueError, match="a colour for each of the 19"):
        node_palette(h, base[:5])
    with pytest.raises(ValueError, match="`lighten`"):
        node_palette(h, base, lighten=1.0)
