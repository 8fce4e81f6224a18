"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import textwrap
from pathlib import Path

BASE_RUNTIME = """
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.11"
requirements = []
"""


def write_spec(directory: Path, body: str, *, modules: tuple[str, ...] = ()) -> Path:
    """Write ``venvstacks.toml`` (dedented) and empty module files it refers to."""
    directory.mkdir(parents=True, exist_ok=True)
    for rel in modules:
        target = directory / rel
        if rel.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            (target / "__main__.py").write_text("print('main')\n")
            (target / "__init__.py").write_text("")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("print('hello')\n")
    path = directory / "venvstacks.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path
