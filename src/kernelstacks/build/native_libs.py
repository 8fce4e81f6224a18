"""Native libraries across layers: extensions of upper layers find libraries lower layers ship.

A C extension in an application layer that needs a shared library shipped in a framework layer
(``torch/lib``, ``nvidia/*/lib``, auditwheel's ``*.libs``) gets an extra ``$ORIGIN``-relative
search-path entry pointing at it, so the kernel and every other process load it without a
wrapper setting ``LD_LIBRARY_PATH``.

A layer's ``dynlib_exclude`` glob patterns keep its own matching libraries from being link
targets, as in venvstacks: each pattern is matched against the *end* of the library's path
(``"libpng16.*"`` matches that file name anywhere, ``"PIL/**/libpng16.*"`` only below a ``PIL``
folder, ``"*"`` matches every file), with ``*``/``?``/``[...]`` inside one path segment and
``**`` across any number of segments (venvstacks' ``glob.translate(recursive=True,
include_hidden=True)`` on ``"/" + pattern``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from kernelstacks.build.elf import (
    ElfDynamic,
    expand_origin,
    origin_relative,
    read_elf_dynamic,
    set_search_path,
)
from kernelstacks.build.venv import real_path

__all__ = ["exclusion_pattern", "link_native_libs"]


def link_native_libs(
    layer_dir: Path,
    lower_layers: list[Path],
    *,
    final_dir: Path | None = None,
    dynlib_exclude: Mapping[Path, Sequence[str]] | None = None,
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

    ``dynlib_exclude`` maps a lower layer's directory to that layer's ``dynlib_exclude`` patterns:
    its libraries matching one are never linked to (a same-named library elsewhere may be).
    """
    if not sys.platform.startswith("linux"):
        return []
    layer_dir = Path(layer_dir)
    final = Path(final_dir) if final_dir is not None else layer_dir
    provided = _index_lower_libs(lower_layers, dynlib_exclude or {})
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


def _index_lower_libs(
    lower_layers: list[Path], dynlib_exclude: Mapping[Path, Sequence[str]]
) -> dict[str, Path]:
    """Map shared-library file names to the (real) dir of the first lower layer that ships them.

    A layer's libraries matching its ``dynlib_exclude`` patterns are not offered.
    """
    provided: dict[str, Path] = {}
    for layer in lower_layers:
        excluded = [exclusion_pattern(p) for p in dynlib_exclude.get(Path(layer), ())]
        for sp in sorted(Path(layer).glob("lib/python*/site-packages")):
            for path in _walk_files(sp, follow_file_links=True):
                if ".so" not in path.name or path.name in provided:
                    continue
                if any(pattern.search(path.as_posix()) for pattern in excluded):
                    continue
                provided[path.name] = real_path(path.parent)
    return provided


def exclusion_pattern(pattern: str) -> re.Pattern[str]:
    """A ``dynlib_exclude`` glob as a regex that matches the end of a POSIX path."""
    parts = f"/{pattern}".split("/")
    last = len(parts) - 1
    out: list[str] = []
    for i, part in enumerate(parts):
        if part == "**":
            if i == last:
                out.append("(?:[^/]+/)*(?:[^/]+)?")
            elif parts[i + 1] != "**":
                out.append("(?:[^/]+/)*")
        elif part == "*":
            out.append("[^/]+/" if i < last else "[^/]+")
        else:
            out.append(_segment_regex(part))
            if i < last:
                out.append("/")
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _segment_regex(segment: str) -> str:
    """fnmatch rules within one path segment: ``*``, ``?`` and ``[...]`` never match ``/``."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        i += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := _class_end(segment, i)) is not None:
            out.append(_class_regex(segment[i:end]))
            i = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def _class_end(segment: str, start: int) -> int | None:
    """Index of the ``]`` closing a ``[...]`` that starts at ``start`` (a leading ``]`` or
    ``!]`` is part of the set, as in fnmatch), or None when it is not closed."""
    j = start + (segment[start : start + 1] == "!")
    j += segment[j : j + 1] == "]"
    end = segment.find("]", j)
    return end if end >= 0 else None


def _class_regex(body: str) -> str:
    """A ``[...]`` set as a regex set; ``[!...]`` negates and never matches ``/`` either."""
    negate = body.startswith("!")
    chars = "".join("\\" + c if c in "\\^[" else c for c in body[negate:])
    return f"[^/{chars}]" if negate else f"[{chars}]"


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
