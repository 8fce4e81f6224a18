"""venvstacks itself (0.8.0b2 from PyPI), run from its own virtualenv as the oracle for lock trees.

venvstacks' pins clash with ours, so it never runs inside the test environment: :func:`make_peer`
makes a separate venv with ``uv venv`` + ``uv pip install venvstacks==0.8.0b2``, with the same uv
version as ours so both tools resolve with the same uv.

venvstacks downloads its runtimes from python-build-standalone, which these machines cannot reach.
How it gets one (``RuntimeEnv._create_new_environment`` and ``_pdm_python_install``): it installs
``python_implementation`` into ``<build dir>/<resolved version>/`` and moves that to
``<build dir>/<runtime name>``; but when ``<build dir>/<runtime name>`` already exists and the
command does not build (``lock``, ``show``), it reuses that folder as it is and only runs
``<folder>/bin/python`` (``uv lock --python``) and writes ``share/venv/metadata`` into it. So
:func:`seed_runtime` puts a virtualenv of a local interpreter of the right version there: enough
for ``venvstacks lock`` and ``venvstacks show``, offline.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from kernelstacks._support.uv import run_uv

VENVSTACKS = "venvstacks==0.8.0b2"


def make_peer(directory: Path, python: Path) -> Path:
    """A venv holding venvstacks 0.8.0b2 and our uv version; skip the test when PyPI fails."""
    peer = directory / "venvstacks-peer"
    if not (peer / "bin" / "venvstacks").exists():
        run_uv(["venv", "--quiet", "--python", python, peer])
        same_uv = f"uv=={version('uv')}"
        python = peer / "bin" / "python"
        proc = run_uv(
            ["pip", "install", "--quiet", "--python", python, VENVSTACKS, same_uv], check=False
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot install {VENVSTACKS} from PyPI: {proc.stderr.strip()[-300:]}")
    return peer


def seed_runtime(build_dir: Path, runtime: str, python: Path) -> Path:
    """``<build_dir>/<runtime>`` as venvstacks' runtime environment, from a local interpreter."""
    target = build_dir / runtime
    if not target.exists():
        run_uv(["venv", "--quiet", "--python", python, target])
    return target


def peer_env() -> dict[str, str]:
    """Our environment for the peer, minus the test-only ``UV_NO_CONFIG``.

    venvstacks passes its uv settings in the generated ``pyproject.toml``; with ``UV_NO_CONFIG``
    uv would ignore them (``exclude-newer`` included), which venvstacks never expects.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("UV_NO_CONFIG", "VIRTUAL_ENV")}
    env["PYTHONWARNINGS"] = "ignore::FutureWarning"
    return env


def venvstacks(peer: Path, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """Run the ``venvstacks`` command of the peer; fail the test with its output on error."""
    cmd = [os.fspath(peer / "bin" / "venvstacks"), *map(os.fspath, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=peer_env(), timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"venvstacks {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def peer_python(peer: Path, code: str, *args: str) -> object:
    """Run Python code with venvstacks importable; it prints one JSON value, returned here."""
    cmd = [os.fspath(peer / "bin" / "python"), "-c", code, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=peer_env(), timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"peer python failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def layer_validity(status: dict) -> dict[str, tuple[bool, str]]:
    """``venvstacks show --json``: layer -> (has_valid_lock, install_target), dependencies too."""
    found: dict[str, tuple[bool, str]] = {}
    for category in ("runtimes", "frameworks", "applications"):
        for layer in status.get(category, []):
            for entry in [layer, *layer.get("dependencies", [])]:
                found[entry["name"]] = (entry["has_valid_lock"], entry["install_target"])
    return found


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: relative path -> (bytes, mtime in ns)."""
    return {
        path.relative_to(folder).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> bytes."""
    return {name: data for name, (data, _) in snapshot(folder).items()}
