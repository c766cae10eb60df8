"""The runnable example of docs/smoothing.md runs and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "smoothing.md"


def example_blocks() -> list[str]:
    text = DOC.read_text()
    section = text.split("## A complete example", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_complete_example_runs_as_documented():
    (code,) = example_blocks()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {})
    printed = out.getvalue().splitlines()
    expected = [line.split("#", 1)[1].strip() for line in code.splitlines()
                if line.startswith("print(")]
    assert len(printed) == len(expected) == 3
    assert printed[0] == expected[0]  # the labels, exactly
    assert printed[1].startswith("0.1686") and expected[1].startswith("0.1686")
    assert printed[2] == expected[2].split(":")[0]  # 0.875
