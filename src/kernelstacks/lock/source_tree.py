"""Hashes of launch and support modules, as venvstacks 0.8 computes them (``version_inputs``).

A versioned application's lock is valid only while its modules hash the same, so the hash must be
venvstacks' to the byte, including which files count:

* a module file: SHA-256 over its name and ``sha256:<hex of its bytes>``;
* a package directory: one SHA-256 over, for every directory walked top-down (subdirectories and
  files sorted), the directory's name, then each file's name and ``sha256:<hex>``; written
  ``sha256/<hex>`` (venvstacks' spelling for directories);
* which files: when the stack file's folder or one of its parents holds a ``.git`` *directory*,
  files git ignores (``.gitignore``, as ``git check-ignore`` reports them; tracked files are
  never ignored) and names starting with ``.git`` are left out; otherwise only ``__pycache__``
  folders are.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from kernelstacks._support.hashing import sha256_file
from kernelstacks._support.processes import ProcessError, run

_PYCACHE = "__pycache__"


def git_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` with a ``.git`` directory (a worktree's file does
    not count, as it does not for venvstacks)."""
    for folder in (start, *start.parents):
        if (folder / ".git").is_dir():
            return folder
    return None


def module_hash(path: Path, root: Path) -> str:
    """venvstacks' hash of a launch or support module at ``path`` of a stack in ``root``."""
    path = Path(path)
    if path.is_file():
        digest = hashlib.sha256(path.name.encode())
        digest.update(sha256_file(path).encode())
        return f"sha256:{digest.hexdigest()}"
    if not path.exists():
        return ""
    repo = git_root(Path(root).absolute())
    walk = _walk_git(path.absolute(), repo) if repo is not None else _walk_plain(path)
    digest = hashlib.sha256()
    for folder, subdirs, files in walk:
        digest.update(folder.name.encode())
        subdirs.sort()
        for name in sorted(files):
            digest.update(name.encode())
            digest.update(sha256_file(folder / name).encode())
    return f"sha256/{digest.hexdigest()}"


Walk = Iterator[tuple[Path, list[str], list[str]]]


def _walk_plain(top: Path) -> Walk:
    """``os.walk`` without ``__pycache__`` folders (or files of that name)."""
    for folder, subdirs, files in os.walk(top):
        here = Path(folder)
        if here.name == _PYCACHE:
            continue
        subdirs[:] = [d for d in subdirs if d != _PYCACHE]
        files[:] = [f for f in files if f != _PYCACHE]
        yield here, subdirs, files


def _walk_git(top: Path, repo: Path) -> Walk:
    """``os.walk`` without what git ignores and without ``.git*`` names."""
    if not top.is_relative_to(repo) or _ignored(repo, top.parent, [top.name]):
        return
    for folder, subdirs, files in os.walk(top):
        here = Path(folder)
        subdirs[:] = [d for d in subdirs if d not in _ignored(repo, here, subdirs)]
        files[:] = [f for f in files if f not in _ignored(repo, here, files)]
        yield here, subdirs, files


def _ignored(repo: Path, folder: Path, names: list[str]) -> set[str]:
    """The entries of ``folder`` that git ignores, plus every ``.git*`` name."""
    ignored = {name for name in names if name.startswith(".git")}
    candidates = [name for name in names if name not in ignored]
    if not candidates or shutil.which("git") is None:
        return ignored
    paths = []
    for name in candidates:
        relative = (folder / name).relative_to(repo).as_posix()
        paths.append(relative + "/" if (folder / name).is_dir() else relative)
    try:
        proc = run(
            ["git", "-C", repo, "-c", "core.quotePath=false", "check-ignore", "--", *paths],
            what="git check-ignore",
            check=False,
        )
    except ProcessError:
        return ignored
    if proc.returncode not in (0, 1):  # 1: nothing ignored; anything else: not a usable repo
        return ignored
    for line in proc.stdout.splitlines():
        if line.startswith('"') and line.endswith('"'):  # a name git had to quote
            line = codecs.escape_decode(line[1:-1].encode())[0].decode("utf-8", "replace")
        ignored.add(line.rstrip("/").rpartition("/")[2])
    return ignored
