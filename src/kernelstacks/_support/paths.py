"""Paths we write must stay where the user said: one check, used by every writer.

A layer name becomes a directory name, a lock file name and part of archive and staging names;
a name such as ``..`` or one longer than the file system allows would either escape the build
directory or fail halfway through a build. :func:`inside` is the one check that a path we are
about to write, replace or delete lies within the directory the user gave us, and
:func:`max_name_bytes` is the one place the file system's name limit is worked out.
"""

from __future__ import annotations

import os
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError

#: The most we add around a layer's build name in a single path component. The longest is an
#: archive being written atomically: ``.`` + ``framework-`` + name + ``@<lock version>`` +
#: ``-macosx_x86_64.tar.xz`` + ``.<8 random>.tmp`` (about 52 bytes); the rest is headroom.
NAME_OVERHEAD = 64

#: POSIX guarantees at least this much; used when the file system cannot be asked.
_DEFAULT_NAME_MAX = 255


class OutsideError(KernelstacksError):
    """A path we were about to write lies outside the directory it belongs in."""


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists: where a path still to be made will live
    (same file system, same permissions to create it)."""
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def max_name_bytes(directory: Path) -> int:
    """The longest layer name (in UTF-8 bytes) whose derived file names fit ``directory``'s FS.

    The directory need not exist yet (``_build`` before the first build): the nearest existing
    ancestor is asked, since a new directory lives on the same file system.
    """
    try:
        limit = os.pathconf(nearest_existing(directory), "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = _DEFAULT_NAME_MAX
    if limit <= 0:
        limit = _DEFAULT_NAME_MAX
    return max(limit - NAME_OVERHEAD, 1)


def inside(base: Path, path: Path, *, what: str = "path") -> Path:
    """Return ``path`` (made absolute) if it lies within ``base``, else raise :class:`OutsideError`.

    Checked lexically (``..`` folded, so ``_build/..`` or a layer named ``..`` is caught before
    anything exists) and through symlinks for the part that exists, so a directory inside
    ``base`` that links elsewhere is caught too. ``base`` itself is refused: nothing we make may
    replace or delete the whole directory the user gave.
    """
    full = Path(os.path.normpath(os.path.abspath(path)))
    root = Path(os.path.normpath(os.path.abspath(base)))
    if not _strictly_under(full, root):
        raise OutsideError(_outside_message(what, path, base))
    probe = full.parent
    while not probe.exists() and probe != root:
        probe = probe.parent
    if probe != root and probe.exists():  # something between base and path exists: follow it
        real_root = Path(os.path.realpath(root))
        if not _strictly_under(Path(os.path.realpath(probe)), real_root):
            raise OutsideError(_outside_message(what, path, base) + f" ({probe} leads elsewhere)")
    return full


def _strictly_under(path: Path, base: Path) -> bool:
    """Whether normalised absolute ``path`` is below ``base`` (not ``base`` itself)."""
    return base in path.parents


def _outside_message(what: str, path: Path, base: Path) -> str:
    return (
        f"refusing to write {what} {path}: it is not inside {base} (a layer name or path in "
        "the stack file must not lead out of the directory it belongs in)"
    )


def ensure_dir(path: Path, what: str) -> Path:
    """Create ``path`` (and parents) if needed; a failure is a message naming it, not OSError.

    ``what`` says what the directory is for ("build directory"). Read-only file systems,
    missing permissions and a file in the way all end up here.
    """
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise KernelstacksError(f"{what} {path} is a file; it must be a directory") from None
    except OSError as exc:
        raise KernelstacksError(
            f"cannot create {what} {path}: {exc.strerror or exc} (choose a writable place)"
        ) from None
    return Path(path)
