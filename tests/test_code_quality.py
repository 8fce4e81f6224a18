"""The shape of the code itself: stage layering, no import cycles, small modules, lint and types.

These run the real tools (import-linter, ruff, mypy) on the source tree, so a change that breaks
the architecture or the type checker fails the suite like any other regression.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MAX_LINES = 500


def _tool(name: str) -> list[str]:
    """Run a tool from this interpreter's environment (the one the tests run in)."""
    scripts = Path(sys.executable).parent
    found = shutil.which(name, path=str(scripts)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (it is part of the test extra)")
    return [found]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_stages_only_import_earlier_stages_and_nothing_cycles() -> None:
    proc = _run([*_tool("lint-imports"), "--no-cache"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_no_module_is_too_big() -> None:
    big = {
        str(path.relative_to(ROOT)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert big == {}, f"modules over {MAX_LINES} lines: {big}"


def test_kernel_side_imports_only_stdlib_ipython_and_widgets() -> None:
    """The kernel side runs in layers where kernelstacks (uv, typer, rich...) is not installed."""
    # ipykernel (and its pyzmq) are in every kernel stack: the launcher starts them
    allowed = {"IPython", "ipykernel", "ipywidgets", "kernelstacks_kernel", "packaging"}
    allowed |= {"traitlets", "zmq"}
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for path in (SRC / "kernelstacks_kernel").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top not in allowed and top != "__future__":
                    bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert bad == []


def test_ruff_is_clean() -> None:
    check = _run([*_tool("ruff"), "check", "src", "tests", "bench"])
    assert check.returncode == 0, check.stdout[-4000:]
    fmt = _run([*_tool("ruff"), "format", "--check", "src", "tests", "bench"])
    assert fmt.returncode == 0, fmt.stdout[-4000:]


def test_type_checker_is_clean() -> None:
    proc = _run([*_tool("mypy")])
    assert proc.returncode == 0, proc.stdout[-6000:]
