"""Native libraries across layers: extensions of upper layers find libraries lower layers ship.

A C extension in an application layer that needs a shared library shipped in a framework layer
(``torch/lib``, ``nvidia/*/lib``, auditwheel's ``*.libs``) gets an extra ``$ORIGIN``-relative
search-path entry pointing at it, so the kernel and every other process load it without a
wrapper setting ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

from kernelstacks.build.elf import (
    ElfDynamic,
    expand_origin,
    origin_relative,
    read_elf_dynamic,
    set_search_path,
)
from kernelstacks.build.venv import real_path

__all__ = ["link_native_libs"]


def link_native_libs(
    layer_dir: Path, lower_layers: list[Path], *, final_dir: Path | None = None
) -> list[str]:
    """Let the layer's ELF files load shared libraries that lower layers ship; return the patched.

    A file whose NEEDED library is neither on its own RUNPATH/RPATH nor anywhere in this layer,
    but is shipped in a lower layer's site-packages, gets ``$ORIGIN``-relative entries appended to
    its search path, computed for the layer at ``final_dir`` (default ``layer_dir``). An RPATH
    stays an RPATH (its transitive semantics are kept), otherwise a RUNPATH is written. Files are
    patched on a copy that then replaces them (:func:`~kernelstacks.build.elf.set_search_path`),
    so hard links into uv's cache are never modified. Idempotent. Returns layer-relative POSIX
    paths. No-op except on Linux.

    Limits: libraries are matched by file name (the soname, as auditwheel and the CUDA wheels name
    them); only lower layers' site-packages are searched; a RUNPATH applies to the file's own
    NEEDED entries, so a library loaded later with ``dlopen`` by name is not covered.
    """
    if not sys.platform.startswith("linux"):
        return []
    layer_dir = Path(layer_dir)
    final = Path(final_dir) if final_dir is not None else layer_dir
    provided = _index_lower_libs(lower_layers)
    own = {path.name for path in _layer_files(layer_dir) if ".so" in path.name}
    patched = []
    for path in _elf_candidates(layer_dir):
        info = read_elf_dynamic(path)
        if info is None:
            continue
        rel = path.relative_to(layer_dir)
        origin = real_path(final) / rel.parent
        extra = _missing_lib_dirs(info, origin, own, provided)
        if extra:
            entries = [*info.search_path, *(origin_relative(d, origin) for d in extra)]
            set_search_path(path, entries, keep_rpath=info.runpath is None and bool(info.rpath))
            patched.append(rel.as_posix())
    return patched


def _missing_lib_dirs(
    info: ElfDynamic, origin: Path, own: set[str], provided: dict[str, Path]
) -> list[Path]:
    """Lower-layer directories that hold NEEDED libraries the file's search path cannot find."""
    searched = [Path(expand_origin(entry, origin)) for entry in info.search_path]
    dirs: list[Path] = []
    for name in info.needed:
        if "/" in name or name in own or name not in provided:
            continue
        if any((d / name).exists() for d in searched):
            continue
        if provided[name] not in dirs:
            dirs.append(provided[name])
    return dirs


def _index_lower_libs(lower_layers: list[Path]) -> dict[str, Path]:
    """Map shared-library file names to the (real) dir of the first lower layer that ships them."""
    provided: dict[str, Path] = {}
    for layer in lower_layers:
        for sp in sorted(Path(layer).glob("lib/python*/site-packages")):
            for path in _walk_files(sp, follow_file_links=True):
                if ".so" in path.name and path.name not in provided:
                    provided[path.name] = real_path(path.parent)
    return provided


def _layer_files(layer_dir: Path) -> Iterator[Path]:
    for top in ("lib", "bin"):
        if (layer_dir / top).is_dir():
            yield from _walk_files(layer_dir / top, follow_file_links=False)


def _elf_candidates(layer_dir: Path) -> Iterator[Path]:
    """Regular files (never symlinks) that may be ELF objects: ``*.so*`` names or executables."""
    for path in _layer_files(layer_dir):
        if path.is_symlink():
            continue
        if ".so" in path.name or os.stat(path).st_mode & 0o111:
            yield path


def _walk_files(top: Path, *, follow_file_links: bool) -> Iterator[Path]:
    for root, _dirs, files in os.walk(top):
        for name in files:
            path = Path(root, name)
            if follow_file_links or not path.is_symlink():
                yield path
