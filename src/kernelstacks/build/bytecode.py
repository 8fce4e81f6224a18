"""Bytecode for a venv layer, compiled by the layer's own interpreter before it is swapped in."""

from __future__ import annotations

import os
from pathlib import Path

from kernelstacks._support.processes import clean_env, run

__all__ = ["compile_layer"]

_COMPILE_SCRIPT = """\
import compileall, os, sys
dirs = sys.argv[1:]
files = sum(len(names) for d in dirs for _, _, names in os.walk(d))
for directory in dirs:
    compileall.compile_dir(directory, quiet=1, workers=0 if files > 400 else 1)
"""


def compile_layer(layer_dir: Path, python: Path) -> None:
    """Compile the layer's site-packages to bytecode with ``python`` (the layer's interpreter).

    Uncompiled layers start several times slower and a deployed layer is often read-only, so the
    bytecode must exist before the layer is swapped in. ``PYTHONDONTWRITEBYTECODE`` (set on our
    machines) is removed for the compiler. Files that do not compile (test data with deliberate
    syntax errors, Python-2 leftovers) are skipped like uv and pip do; a compiler that cannot start
    (e.g. a missing lower layer) raises :class:`~kernelstacks._support.processes.ProcessError`.
    Only big layers get a process pool: its start-up costs more than compiling a small layer
    serially.
    """
    dirs = [os.fspath(p) for p in sorted(Path(layer_dir).glob("lib/python*/site-packages"))]
    if not dirs:
        return
    cmd = [os.fspath(python), "-I", "-c", _COMPILE_SCRIPT, *dirs]
    run(cmd, what=f"compiling bytecode in {layer_dir}", env=clean_env(bytecode=True))
