"""Layer archives: reproducible ``.tar.xz``/``.tar.zst`` files for ``publish``.

``publish`` turns a built layer directory into one archive per layer; ``deploy`` unpacks those
archives on another machine of the same platform.  Two properties matter and shape this module:

* **Reproducible output.**  Publishing the same layer twice must give byte-identical archives,
  whoever runs it, from wherever, with whatever umask, and even after the layer's files were
  touched.  So nothing of the machine leaks into the archive: members are in a fixed order,
  owners are ``0``/``""``, modes are normalised, every member gets the same mtime
  (``mtime``: the layer's lock time), no PAX record carries atime/ctime, and the compressed
  container has a fixed level and check (xz and zstd have no file name or timestamp field,
  unlike gzip).  Compression runs in independent chunks on every core
  (:mod:`~kernelstacks.distribute.parallel_compress`); the bytes do not depend on the number of
  workers.  Byte identity holds for the same CPython ``tarfile`` and compression library
  versions; other versions may compress differently.
* **Safe extraction** (:mod:`~kernelstacks.distribute.archive_extract`) applies the member rules
  of :mod:`~kernelstacks.distribute.archive_members`, which the writer checks too, so an archive
  that deploy would refuse fails at publish time instead.

Hardlinks: files that share an inode in the layer (uv hard-links from its cache) are stored as
separate regular members.  Whether two paths share an inode depends on uv's link mode, on where
its cache lives and on the file system, not on the layer's content; storing them separately
keeps the archive a function of the content alone (xz's window dedupes nearby copies).
``safe_extract`` still accepts hardlink members written by other tools, as long as they point
at an earlier regular file of the same archive.

POSIX only: Windows layers would be ``.zip`` archives (as venvstacks publishes them); that
format is not implemented here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kernelstacks.distribute.archive_members import ArchiveError, check_members, check_name
from kernelstacks.distribute.compression import CHUNK_SIZE, ArchiveFormat, archive_format
from kernelstacks.distribute.parallel_compress import ParallelCompressor, Progress

__all__ = ["ArchiveError", "ArchiveInfo", "write_archive"]


_CHUNK = 1 << 20  # big reads/writes: fewer Python-level calls, and lzma/hashlib drop the GIL


_DIR_MODE, _FILE_MODE, _EXEC_MODE, _LINK_MODE = 0o755, 0o644, 0o755, 0o777


_ARCHIVE_MODE = 0o644  # fixed rather than umask-dependent: published archives are for sharing


@dataclass(frozen=True)
class ArchiveInfo:
    """What a publish records about an archive: deploy checks ``sha256`` before unpacking."""

    path: Path
    size: int
    sha256: str


class _HashingSink:
    """A write-only file wrapper that hashes and counts, so publishing needs no second read."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self._raw.write(data)
        self.size += len(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass(frozen=True)
class _Entry:
    """One member to write: its header, plus where its data comes from (file or replacement)."""

    info: tarfile.TarInfo
    source: str | None = None
    data: bytes | None = None


def _member(
    name: str, kind: bytes, mode: int, mtime: int, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    """A TarInfo carrying nothing of this machine: owner 0/"" and only the fields we choose."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.size = size
    info.linkname = link
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _walk(
    directory: str, rel: str, exclude: Callable[[str], bool] | None
) -> Iterator[tuple[str, str, os.stat_result]]:
    """(layer-relative path, path, lstat) in sorted pre-order: a directory before its contents.

    Sorting each directory's names gives an order that does not depend on the file system's
    ``readdir`` order; an excluded directory is not descended into.
    """
    with os.scandir(directory) as it:
        children = sorted(it, key=lambda e: e.name)
    for child in children:
        child_rel = f"{rel}/{child.name}" if rel else child.name
        if exclude is not None and exclude(child_rel):
            continue
        st = child.stat(follow_symlinks=False)
        yield child_rel, child.path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(child.path, child_rel, exclude)


def _entry(
    archive: Path,
    name: str,
    rel: str,
    path: str,
    st: os.stat_result,
    clamp_mtime: int,
    replace: Mapping[str, bytes],
    symlinks: Callable[[str, str], str] | None,
) -> _Entry:
    """The normalised member for one file of the layer (modes: 755/644 files, 755 dirs)."""
    mtime = clamp_mtime
    if rel in replace and not stat.S_ISREG(st.st_mode):
        raise ArchiveError(archive, "'replace' names it but it is not a regular file", name)
    if stat.S_ISDIR(st.st_mode):
        return _Entry(_member(name, tarfile.DIRTYPE, _DIR_MODE, mtime))
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        if symlinks is not None:
            target = symlinks(rel, target)
        return _Entry(_member(name, tarfile.SYMTYPE, _LINK_MODE, mtime, link=target))
    if stat.S_ISREG(st.st_mode):
        mode = _EXEC_MODE if st.st_mode & 0o111 else _FILE_MODE
        if rel in replace:
            data = bytes(replace[rel])
            return _Entry(_member(name, tarfile.REGTYPE, mode, mtime, len(data)), data=data)
        return _Entry(_member(name, tarfile.REGTYPE, mode, mtime, st.st_size), source=path)
    raise ArchiveError(
        archive, f"{path} is neither a file, a directory nor a symlink; cannot publish it", name
    )


def _collect(
    source: Path,
    archive: Path,
    top: str,
    clamp_mtime: int,
    replace: Mapping[str, bytes],
    symlinks: Callable[[str, str], str] | None,
    exclude: Callable[[str], bool] | None,
    add: Mapping[str, bytes],
) -> list[_Entry]:
    """Every member in archive order, headers complete, so they can be checked before writing."""
    root_mtime = clamp_mtime
    entries = [_Entry(_member(top, tarfile.DIRTYPE, _DIR_MODE, root_mtime))]
    for rel, data in sorted(add.items()):
        if "/" in rel or (os.path.lexists(source / rel) and not (exclude and exclude(rel))):
            raise ArchiveError(archive, "'add' names a path the layer has (or a subdirectory)", rel)
        info = _member(f"{top}/{rel}", tarfile.REGTYPE, _FILE_MODE, clamp_mtime, len(data))
        entries.append(_Entry(info, data=bytes(data)))
    unused = set(replace)
    for rel, path, st in _walk(str(source), "", exclude):
        entries.append(
            _entry(archive, f"{top}/{rel}", rel, path, st, clamp_mtime, replace, symlinks)
        )
        unused.discard(rel)
    if unused:
        raise ArchiveError(
            archive,
            "'replace' names a path that is not in the layer (keys are relative to the layer "
            "root, without the top directory, and must not be excluded)",
            f"{top}/{sorted(unused)[0]}",
        )
    return entries


@contextlib.contextmanager
def _open_source(archive: Path, entry: _Entry) -> Iterator[BinaryIO]:
    """Open a layer file without following a symlink swapped in, and notice it changing size."""
    assert entry.source is not None
    fd = os.open(entry.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.info.size:
            raise ArchiveError(archive, "changed while being archived", entry.info.name)
        yield f


def _add(archive: Path, tar: tarfile.TarFile, entry: _Entry) -> None:
    """Append one member, streaming file data (big layers never sit in memory)."""
    try:
        if entry.data is not None:
            tar.addfile(entry.info, io.BytesIO(entry.data))
        elif entry.source is not None:
            with _open_source(archive, entry) as f:
                tar.addfile(entry.info, f)
        else:
            tar.addfile(entry.info)
    except OSError as e:
        raise ArchiveError(archive, f"cannot archive: {e}", entry.info.name) from e


@dataclass
class _Compression:
    """How the tar stream is compressed: format, level, the shared pool and progress reports."""

    fmt: ArchiveFormat
    level: int
    pool: Executor
    on_progress: Progress | None = None
    chunk_size: int = CHUNK_SIZE


def _write_atomically(archive: Path, entries: list[_Entry], how: _Compression) -> ArchiveInfo:
    """Write to a temporary file beside ``archive`` and rename: readers never see half of it."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".part")
    try:
        with open(fd, "wb") as raw:
            os.fchmod(raw.fileno(), _ARCHIVE_MODE)
            sink = _HashingSink(raw)
            workers = getattr(how.pool, "_max_workers", 2)
            stream = ParallelCompressor(
                sink,  # type: ignore[arg-type]
                how.fmt,
                how.level,
                how.pool,
                chunk_size=how.chunk_size,
                max_pending=2 * workers,
                on_progress=how.on_progress,
            )
            try:
                _write_tar(archive, stream, entries)
            except BaseException:
                stream.abort()
                raise
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, archive)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise ArchiveError(archive, f"cannot write the archive: {e}") from e
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return ArchiveInfo(path=archive, size=sink.size, sha256=sink.hexdigest())


def _write_tar(archive: Path, stream: ParallelCompressor, entries: list[_Entry]) -> None:
    """The tar stream of ``entries`` into the compressor (which writes the archive)."""
    with tarfile.TarFile(
        fileobj=stream,  # type: ignore[arg-type]
        mode="w",
        format=tarfile.PAX_FORMAT,
        encoding="utf-8",
        errors="surrogateescape",
        copybufsize=_CHUNK,
    ) as tar:
        for entry in entries:
            _add(archive, tar, entry)
    stream.close()


def tar_size(entries_sizes: list[int]) -> int:
    """About how many tar bytes members of these sizes make (for progress totals)."""
    return sum(512 + -(-size // 512) * 512 for size in entries_sizes) + 1024


def _check_write_args(
    source: Path, archive: Path, top: str, clamp_mtime: int, fmt: ArchiveFormat, level: int
) -> None:
    """Catch caller mistakes up front, before minutes of compression are spent."""
    check_name(archive, top, top, "top directory name")
    if "/" in top:
        raise ArchiveError(archive, "the top directory must be a single path component", top)
    if not isinstance(clamp_mtime, int) or clamp_mtime < 0:
        raise ValueError(f"clamp_mtime must be a non-negative int, not {clamp_mtime!r}")
    if level not in fmt.levels:
        raise ValueError(
            f"{fmt.name} level must be {fmt.levels.start}-{fmt.levels.stop - 1}, not {level!r}"
        )
    if not source.is_dir():
        raise ArchiveError(archive, f"the layer directory {source} does not exist")
    real_source = os.path.realpath(source)
    real_out = os.path.realpath(archive.parent)
    if os.path.commonpath([real_source, real_out]) == real_source:
        raise ArchiveError(archive, f"cannot write an archive inside the layer {source}")


def write_archive(
    source: Path,
    archive: Path,
    *,
    top: str,
    clamp_mtime: int,
    replace: Mapping[str, bytes] | None = None,
    symlinks: Callable[[str, str], str] | None = None,
    exclude: Callable[[str], bool] | None = None,
    add: Mapping[str, bytes] | None = None,
    archive_type: str = "tar.xz",
    level: int | None = None,
    pool: Executor | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> ArchiveInfo:
    """Write the layer directory ``source`` as a reproducible archive at ``archive``.

    The archive holds one top-level directory ``top`` (the deployed name, which may differ
    from ``source.name``); every member's mtime is ``clamp_mtime``.  ``replace``, ``symlinks``
    and ``exclude`` all take layer-relative POSIX paths (``"bin/python"``, no ``top`` prefix):
    ``replace`` swaps the content of regular files (metadata rewritten for the deployed names),
    ``symlinks(path, target)`` returns the target to store (e.g. absolute -> relative),
    ``exclude(path)`` leaves a path out (and a directory's whole subtree); ``add`` puts new files
    at the layer root (venvstacks' ``postinstall.py``), before the walked members.  Every member is
    checked with the same rules ``safe_extract`` applies.  ``archive_type`` is ``tar.xz`` or
    ``tar.zst``, ``level`` its compression level (default: the format's).  Chunks of
    ``chunk_size`` uncompressed bytes (the bytes depend on it) are compressed on ``pool``
    (shared between concurrent writers; default: one thread per core); ``on_progress(done,
    total)`` reports uncompressed bytes.
    """
    source, archive = Path(source), Path(archive)
    fmt = archive_format(archive_type)
    level = fmt.default_level if level is None else level
    _check_write_args(source, archive, top, clamp_mtime, fmt, level)
    entries = _collect(
        source, archive, top, clamp_mtime, dict(replace or {}), symlinks, exclude, dict(add or {})
    )
    check_members(archive, [e.info for e in entries], top)
    total = tar_size([e.info.size for e in entries])
    done = 0

    def progress(size: int) -> None:
        nonlocal done
        done += size
        if on_progress is not None:
            on_progress(min(done, total), total)

    if pool is not None:
        how = _Compression(fmt, level, pool, progress, chunk_size)
        return _write_atomically(archive, entries, how)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as own:
        return _write_atomically(
            archive, entries, _Compression(fmt, level, own, progress, chunk_size)
        )
