"""The README's two commands: CI runs the test command verbatim."""

from __future__ import annotations

from pathlib import Path

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
