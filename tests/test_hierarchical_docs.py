"""The examples of docs/hierarchical.md run and print what their comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "hierarchical.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_first_example_prints_what_it_says():
    code = blocks()[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {})
    expected = [line.split("#", 1)[1].strip() for line in code.splitlines()
                if line.startswith("print(")]
    assert out.getvalue().splitlines() == expected


def test_the_tree_example_builds(tmp_path):

    from smoothing.hierarchy import read_hierarchy

    code = blocks()[1].split("h = load_hierarchy")[0]
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)
    h = scope["h"]
    assert h.names[h.paths[4, 1]] == "vehicle" and h.paths[5].tolist() == [5, 5, 5]
    (doc,) = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    (tmp_path / "h.json").write_text(doc)
    assert read_hierarchy(tmp_path / "h.json").num_nodes == 7
