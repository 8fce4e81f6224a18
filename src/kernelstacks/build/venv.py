"""Framework and application layers are venvs on a runtime: create one, and find paths in it.

A layer is a venv on a runtime (``venv --without-pip``, symlinked interpreter on POSIX), built in
a staging directory beside its final location and swapped in atomically
(:mod:`kernelstacks._support.swap`), so a kernel never sees a half-built layer. The other build
modules then chain it to its lower layers (:mod:`~kernelstacks.build.chain`), make native
libraries of lower layers loadable (:mod:`~kernelstacks.build.native_libs`), compile bytecode
(:mod:`~kernelstacks.build.bytecode`), fix scripts (:mod:`~kernelstacks.build.scripts`) and record
venvstacks-compatible metadata (:mod:`~kernelstacks.build.layer_metadata`).

Everything that points from one layer to another is stored *relative* to the layer, so a stack
moved or unpacked elsewhere with the same relative layout keeps working. The only absolute paths
point at the runtime: ``pyvenv.cfg``'s ``home`` (CPython requires it) and the ``bin/python``
symlinks; a deployment that moves the runtime rewrites both.

Linux/POSIX only for now (``lib/pythonX.Y/site-packages`` layout, ELF ``RUNPATH``s).
"""

from __future__ import annotations

import os
from pathlib import Path

from kernelstacks._support.processes import run
from kernelstacks.build.postinstall import read_pyvenv_cfg, update_pyvenv_cfg

__all__ = [
    "create_layer_venv",
    "pyvenv_home",
    "real_path",
    "relative_to_layer",
    "site_packages",
]


def site_packages(layer_dir: Path, py_version: str) -> Path:
    """Return the layer's ``lib/pythonX.Y/site-packages`` (same layout in runtimes and venvs)."""
    return Path(layer_dir) / "lib" / f"python{py_version}" / "site-packages"


def real_path(path: Path) -> Path:
    """``path`` with every symlink resolved, the way the OS resolves stored relative paths."""
    return Path(os.path.realpath(path))


def relative_to_layer(layer_dir: Path, target: Path) -> str:
    """Return ``target`` relative to ``layer_dir`` (POSIX separators, ``..`` allowed).

    Both are resolved first: the OS resolves ``..`` in a stored path physically, so the relative
    path must be computed between real locations to mean the same thing at run time.
    """
    return Path(os.path.relpath(real_path(target), real_path(layer_dir))).as_posix()


def pyvenv_home(layer_dir: Path) -> Path | None:
    """The runtime bin directory a venv layer runs on (``pyvenv.cfg`` ``home``), if it has one."""
    home = read_pyvenv_cfg(Path(layer_dir) / "pyvenv.cfg").get("home")
    return Path(home) if home is not None else None


def create_layer_venv(runtime_python: Path, layer_dir: Path) -> None:
    """Create the layer's venv (no pip, symlinked interpreter) on the runtime ``runtime_python``.

    ``home`` in ``pyvenv.cfg`` is set to the runtime's bin directory as an absolute path: a relative
    or wrong ``home`` makes CPython silently fall back to its compiled-in prefix. ``relocatable =
    true`` makes uv write console scripts that find their interpreter relative to themselves, so
    they survive the rename from the staging directory to the final one.
    """
    runtime_python = Path(runtime_python).absolute()
    layer_dir = Path(layer_dir)
    if layer_dir.exists() and any(layer_dir.iterdir()):
        raise FileExistsError(f"layer directory is not empty: {layer_dir}")
    cmd = [os.fspath(runtime_python), "-I", "-m", "venv", "--without-pip"]
    if os.name == "posix":
        cmd.append("--symlinks")
    run([*cmd, os.fspath(layer_dir)], what=f"creating the venv {layer_dir}")
    settings = {"home": os.fspath(runtime_python.parent), "relocatable": "true"}
    update_pyvenv_cfg(layer_dir / "pyvenv.cfg", settings)
