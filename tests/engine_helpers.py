"""Helpers for tests that lock and build real stacks through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import local_python

EXCLUDE_NEWER = "2025-06-01T00:00:00Z"


def python_options() -> list[str]:
    """``--python`` options naming this machine's 3.11 and 3.12 interpreters."""
    options = []
    for version in ("3.11", "3.12"):
        found = local_python(version)
        if found is not None:
            options += ["--python", f"cpython@{version}={found}"]
    return options


def ks(
    *args: str | os.PathLike[str], check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run the kernelstacks CLI in a subprocess, as a user would."""
    cmd = [sys.executable, "-m", "kernelstacks", *map(os.fspath, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kernelstacks {' '.join(map(str, args))} failed ({proc.returncode}):\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc


def run_py(python: Path, code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run code with a layer's interpreter, with a clean environment for Python variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [os.fspath(python), *flags, "-c", code], capture_output=True, text=True, env=env
    )


def probe(python: Path, *flags: str) -> dict:
    """sys.path, prefixes and version of a layer's interpreter."""
    code = (
        "import json, sys; print(json.dumps({'path': sys.path, 'prefix': sys.prefix,"
        " 'base_prefix': sys.base_prefix, 'version': sys.version.split()[0]}))"
    )
    proc = run_py(python, code, *flags)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def json_events(stdout: str) -> list[dict]:
    """Parse ``--json`` progress output: one object per line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
