"""Copying an interpreter's installation into a runtime layer: what to copy, and the copy.

A dedicated prefix (python-build-standalone, pyenv, a ``/opt`` build) is copied wholesale, minus
what nothing needs at run time; a prefix shared with the operating system (``/usr``) only with
the interpreter's own files. Either way the runtime never shares a file with its source.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from kernelstacks.build.elf import read_elf_dynamic
from kernelstacks.interpreters.inspect import (
    InterpreterInfo,
    RuntimeProvisionError,
    is_within,
    source_executable,
)

__all__ = ["SYSTEM_PREFIXES", "CopyPlan", "copy_prefix", "install_executables", "plan_copy"]

#: Prefixes shared with other software: only the interpreter's own files are copied from these.
SYSTEM_PREFIXES = frozenset({"/", "/usr", "/usr/local"})


@dataclasses.dataclass(frozen=True)
class CopyPlan:
    """What to copy from the source prefix and which paths belong to the interpreter."""

    source: InterpreterInfo
    executable: Path  # real executable inside the prefix
    system_prefix: bool  # shared with the OS: copy only the interpreter's own files
    roots: tuple[Path, ...]  # relative paths copied (files or directories)
    aliases: tuple[Path, ...] = ()  # other spellings of the prefix (symlinked install dirs)

    @property
    def prefix(self) -> Path:
        """The installation prefix the runtime is copied from."""
        return self.source.base_prefix

    @property
    def stdlib(self) -> Path:
        """The standard library's directory, relative to the prefix (and to the runtime)."""
        return Path(os.path.realpath(self.source.stdlib)).relative_to(self.prefix)


def plan_copy(info: InterpreterInfo) -> CopyPlan:
    """Decide what to copy: a dedicated prefix wholesale, a shared (OS) prefix minimally."""
    prefix = Path(os.path.realpath(info.base_prefix))
    aliases = tuple(p for p in {info.base_prefix, info.prefix} if p != prefix)
    info = _with_prefix(info, prefix)
    executable = source_executable(info)
    stdlib = Path(os.path.realpath(info.stdlib))
    if not is_within(stdlib, prefix):
        raise RuntimeProvisionError(
            f"the standard library of {executable} ({stdlib}) is outside its prefix {prefix}"
        )
    system = os.fspath(prefix) in SYSTEM_PREFIXES
    if system:
        roots = [stdlib.relative_to(prefix)]
        include = Path(os.path.realpath(info.include)) if info.include else None
        if include and include.is_dir() and is_within(include, prefix):
            roots.append(include.relative_to(prefix))
        libpython = _linked_libpython(info, executable)
        if libpython is not None:
            roots.append(libpython.relative_to(prefix))
    else:
        roots = [
            Path(entry.name)
            for entry in sorted(prefix.iterdir())
            if entry.name in ("lib", "lib64", "include") and (entry.is_dir() or entry.is_symlink())
        ]
    return CopyPlan(
        source=info,
        executable=executable,
        system_prefix=system,
        roots=tuple(roots),
        aliases=aliases,
    )


def _with_prefix(info: InterpreterInfo, prefix: Path) -> InterpreterInfo:
    """``info`` with its base prefix resolved (symlinked prefixes would confuse path tests)."""
    return dataclasses.replace(info, base_prefix=prefix, prefix=prefix)


def _linked_libpython(info: InterpreterInfo, executable: Path) -> Path | None:
    """``libpythonX.Y.so`` when a shared-prefix executable links it (Fedora) — Debian does not."""
    if not info.instsoname or not info.libdir:
        return None
    dynamic = read_elf_dynamic(executable)
    if dynamic is None or info.instsoname not in dynamic.needed:
        return None
    candidate = Path(os.path.realpath(info.libdir / info.instsoname))
    if candidate.is_file() and is_within(candidate, info.base_prefix):
        return candidate
    return None


# -- copying ----------------------------------------------------------------------------------

#: Never copied: recompiled bytecode, the PEP 668 marker (uv installs runtime requirements here).
_ALWAYS_SKIP = frozenset({"__pycache__", "EXTERNALLY-MANAGED"})


def copy_prefix(plan: CopyPlan, dest: Path) -> None:
    """Copy the planned roots, leaving out site-packages contents, tests and static archives."""
    for root in plan.roots:
        src = plan.prefix / root
        target = dest / root
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir() and not src.is_symlink():
            _copy_tree(src, target, plan.prefix, stdlib=plan.prefix / plan.stdlib)
        else:
            _copy_symlink_or_target(src, target, plan.prefix)


def _copy_tree(src: Path, dst: Path, prefix: Path, *, stdlib: Path) -> None:
    """Copy a directory, keeping internal symlinks and materialising ones that point away."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        path = Path(entry.path)
        if _skip(path, stdlib):
            continue
        target = dst / entry.name
        if entry.is_symlink():
            _copy_symlink_or_target(path, target, prefix)
        elif entry.is_dir():
            _copy_tree(path, target, prefix, stdlib=stdlib)
        else:
            shutil.copy2(path, target)


def _skip(path: Path, stdlib: Path) -> bool:
    """What a runtime leaves out of the copy (:mod:`kernelstacks.build.runtimes` says why)."""
    name = path.name
    if name in _ALWAYS_SKIP:
        return True
    parent = path.parent
    if parent == stdlib and name == "test":
        return True
    if parent.name in ("site-packages", "dist-packages") and parent.parent == stdlib:
        return True
    return name.startswith("libpython") and name.endswith(".a")


def _copy_symlink_or_target(src: Path, dst: Path, prefix: Path) -> None:
    """Keep a symlink that stays inside the prefix (relative); copy the target of any other."""
    if not src.is_symlink():
        shutil.copy2(src, dst)
        return
    link = os.readlink(src)
    resolved = Path(os.path.realpath(src))
    if not os.path.isabs(link) and is_within(resolved, prefix):
        os.symlink(link, dst)
    elif is_within(resolved, prefix) and not resolved.is_dir():
        os.symlink(os.path.relpath(resolved, os.path.realpath(src.parent)), dst)
    elif resolved.is_file():
        shutil.copy2(resolved, dst)  # e.g. Debian's sitecustomize.py -> /etc/python3.11/...
    # dangling links and links to outside directories are dropped


def install_executables(plan: CopyPlan, dest: Path) -> None:
    """Only the interpreter goes into ``bin/``: scripts there would carry absolute shebangs."""
    bindir = dest / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    name = plan.executable.name
    shutil.copy2(plan.executable, bindir / name)
    xy = plan.source.xy
    for alias in (f"python{xy}", "python3", "python"):
        link = bindir / alias
        if alias != name and not link.exists():
            link.symlink_to(name)
