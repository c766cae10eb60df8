"""The FolderDataset example of docs/data-and-models.md runs and prints what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "data-and-models.md"


def test_folder_dataset_example_runs_as_documented():
    text = DOC.read_text()
    section = text.split("## Your own data: `FolderDataset`", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    namespace: dict = {}
    for code in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), namespace)
        expected = [line.split("#", 1)[1].strip() for line in code.splitlines()
                    if line.lstrip().startswith("print(")]
        assert out.getvalue().splitlines() == expected
