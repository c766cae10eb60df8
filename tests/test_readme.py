"""The README's two commands: CI runs the test command verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_command(marker: str) -> str:
    """The command in the fenced block right after ``<!-- marker -->`` in README.md."""
    lines = (ROOT / "README.md").read_text().splitlines()
    i = lines.index(f"<!-- {marker} -->")
    assert lines[i + 1] == "```bash" and lines[i + 3] == "```"
    return lines[i + 2]


def test_ci_runs_the_readme_test_command_verbatim():
    command = readme_command("test-command")
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln and not ln.startswith("#")]
    assert command in ci
    assert "pytest" in command and "torch==2.13.0" in command


def test_main_command_runs_the_demo_with_the_cpu_torch_pin():
    command = readme_command("main-command")
    assert command.startswith("python3 -m venv .venv && ")
    assert "torch==2.13.0" in command and "-m smoothing demo --out results" in command


def python_blocks(path: Path) -> list[str]:
    """The fenced ```python blocks of a Markdown file, in order."""
    blocks, current = [], None
    for line in path.read_text().splitlines():
        if current is None and line.strip() == "```python":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


@pytest.mark.parametrize("doc", ["README.md", "docs/multitest.md"])
def test_python_blocks_run_as_written(doc):
    """Each block runs on its own, in a fresh namespace (issue 13.7: no undefined names)."""
    blocks = python_blocks(ROOT / doc)
    assert blocks, f"{doc} has no python block"
    for i, block in enumerate(blocks):
        exec(compile(block, f"{doc} python block {i + 1}", "exec"), {})
