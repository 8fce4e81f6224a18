"""Layer archives: reproducible ``.tar.xz`` files for ``publish``, safe extraction for ``deploy``.

``publish`` turns a built layer directory into one archive per layer; ``deploy`` unpacks those
archives on another machine of the same platform.  Two properties matter and shape this module:

* **Reproducible output.**  Publishing the same layer twice must give byte-identical archives,
  whoever runs it, from wherever, with whatever umask, and even after the layer's files were
  touched.  So nothing of the machine leaks into the archive: members are in a fixed order,
  owners are ``0``/``""``, modes are normalised, mtimes are clamped to ``clamp_mtime``, no PAX
  record carries atime/ctime, and the xz container has a fixed preset and check (xz has no
  file name or timestamp field, unlike gzip).  Byte identity holds for the same CPython
  ``tarfile`` and liblzma versions; other versions may compress differently.  A file *older*
  than ``clamp_mtime`` keeps its own mtime, so identical bytes on another machine also need
  its files to be at least that new (freshly built files are; files hard-linked from an older
  uv cache keep the cache's time).
* **Safe extraction.**  An archive is checked completely (sha256 first, then every member)
  before anything is written, and written only into a caller-made staging directory, so a bad
  archive can never touch the deployment.  Layers legitimately link to *sibling* layers
  (``bin/python -> ../../cpython-3.12/bin/python3``), so links may leave the layer but never
  the deployment directory.

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
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kernelstacks._support.errors import KernelstacksError

__all__ = [
    "XZ_CHECK",
    "ArchiveError",
    "ArchiveInfo",
    "safe_extract",
    "sha256_file",
    "write_archive",
]

#: The xz integrity check written into every archive (fixed, so the container bytes are too).
XZ_CHECK = lzma.CHECK_CRC64
_CHUNK = 1 << 20  # big reads/writes: fewer Python-level calls, and lzma/hashlib drop the GIL
_MAX_SYMLINK_HOPS = 40  # Linux's MAXSYMLINKS: a longer chain cannot be followed anyway
_DIR_MODE, _FILE_MODE, _EXEC_MODE, _LINK_MODE = 0o755, 0o644, 0o755, 0o777
_ARCHIVE_MODE = 0o644  # fixed rather than umask-dependent: published archives are for sharing


class ArchiveError(KernelstacksError):
    """A layer archive that cannot be written or trusted; names the archive and the member."""

    def __init__(self, archive: Path | str, reason: str, member: str | None = None) -> None:
        self.archive = Path(archive)
        self.reason = reason
        self.member = member
        where = str(archive) if member is None else f"{archive}: member {member!r}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[ArchiveError], tuple[Path, str, str | None]]:
        # Keep the error picklable (process pools) despite the custom signature.
        return (type(self), (self.archive, self.reason, self.member))


@dataclass(frozen=True)
class ArchiveInfo:
    """What a publish records about an archive: deploy checks ``sha256`` before unpacking."""

    path: Path
    size: int
    sha256: str


# ---------------------------------------------------------------------------------------------
# Hashing


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed (archives of big layers do not fit in memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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


# ---------------------------------------------------------------------------------------------
# Member validation (shared by writer and reader: what we publish, we can deploy)


def _check_name(archive: Path, name: str, member: str, what: str = "path") -> None:
    """Refuse names that are not plain relative paths: they could land outside the staging."""
    if not name:
        raise ArchiveError(archive, f"empty {what}", member)
    if "\0" in name:
        raise ArchiveError(archive, f"{what} contains a NUL byte", member)
    if name.startswith("/"):
        raise ArchiveError(archive, f"absolute {what} {name!r}", member)
    parts = name.split("/")
    if ".." in parts:
        raise ArchiveError(archive, f"{what} {name!r} has a '..' component", member)
    if "" in parts or "." in parts:
        raise ArchiveError(archive, f"{what} {name!r} is not normalised ('.' or '//')", member)


def _kind(info: tarfile.TarInfo) -> str:
    """A human word for a member type, for error messages."""
    kinds = {
        tarfile.CHRTYPE: "character device",
        tarfile.BLKTYPE: "block device",
        tarfile.FIFOTYPE: "fifo",
        tarfile.SYMTYPE: "symlink",
        tarfile.LNKTYPE: "hardlink",
        tarfile.DIRTYPE: "directory",
    }
    if info.isreg():
        return "regular file"
    return kinds.get(info.type, f"member of tar type {info.type!r}")


def _check_type(archive: Path, info: tarfile.TarInfo) -> None:
    """Only files, directories and links belong in a layer; devices and fifos are refused."""
    if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
        raise ArchiveError(
            archive,
            f"is a {_kind(info)}; layer archives hold only files, dirs and links",
            info.name,
        )


def _check_hardlink(
    archive: Path, info: tarfile.TarInfo, earlier: Mapping[str, tarfile.TarInfo]
) -> None:
    """A hardlink may only alias an earlier regular file of this archive, never anything else."""
    _check_name(archive, info.linkname, info.name, "hardlink target")
    target = earlier.get(info.linkname)
    if target is None or not (target.isreg() or target.islnk()):
        raise ArchiveError(
            archive,
            f"hardlink to {info.linkname!r}, which is not an earlier regular file of the archive",
            info.name,
        )


def _check_ancestors(
    archive: Path, info: tarfile.TarInfo, by_name: Mapping[str, tarfile.TarInfo]
) -> None:
    """Every parent must be a real directory: writing through a symlinked parent escapes."""
    parts = info.name.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        found = by_name.get(parent)
        if found is not None and not found.isdir():
            raise ArchiveError(
                archive, f"its parent {parent!r} is a {_kind(found)}, not a directory", info.name
            )


def _symlink_escape(
    info: tarfile.TarInfo, by_name: Mapping[str, tarfile.TarInfo], top: str, root: str
) -> str | None:
    """Why ``info``'s target would leave the deployment directory, or None if it stays inside.

    Resolution mimics the kernel: start in the member's directory at its final place
    (``dest_root/<top>/...``), apply components one by one, and follow symlinks of this archive
    as they are met.  Paths outside ``<top>`` belong to other layers whose entries we cannot
    see (and which may change), so a ``..`` taken from inside another layer is refused rather
    than guessed.  Needs no file system access, so the verdict does not depend on what happens
    to be deployed right now.
    """
    if info.linkname.startswith("/"):
        return f"absolute symlink target {info.linkname!r} (deployed layers must be relocatable)"
    parts = info.name.split("/")[:-1]
    pending = deque(info.linkname.split("/"))
    hops = 0
    while pending:
        component = pending.popleft()
        if component in ("", "."):
            continue
        if component == "..":
            if not parts:
                return f"symlink target {info.linkname!r} leaves the deployment directory {root}"
            if parts[0] != top:
                return (
                    f"symlink target {info.linkname!r} uses '..' inside another layer "
                    f"({'/'.join(parts)!r}), which cannot be checked"
                )
            parts.pop()
            continue
        parts.append(component)
        hit = by_name.get("/".join(parts)) if parts[0] == top else None
        if hit is not None and hit.issym():
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                return f"symlink target {info.linkname!r}: too many levels of symbolic links"
            if hit.linkname.startswith("/"):
                return f"symlink target {info.linkname!r} goes through absolute link {hit.name!r}"
            parts.pop()
            pending.extendleft(reversed(hit.linkname.split("/")))
    return None


def _check_symlink(
    archive: Path,
    info: tarfile.TarInfo,
    by_name: Mapping[str, tarfile.TarInfo],
    top: str,
    root: str,
) -> None:
    """Refuse a symlink whose target resolves outside the deployment (see _symlink_escape)."""
    if not info.linkname or "\0" in info.linkname:
        raise ArchiveError(archive, "symlink has an empty target or a NUL byte", info.name)
    reason = _symlink_escape(info, by_name, top, root)
    if reason is not None:
        raise ArchiveError(archive, reason, info.name)


def _check_top(archive: Path, info: tarfile.TarInfo, top: str | None, expected: str | None) -> str:
    """The archive holds exactly one top-level directory (named ``expected`` when given)."""
    first = info.name.split("/", 1)[0]
    if top is None:
        if expected is not None and first != expected:
            raise ArchiveError(
                archive, f"top-level directory is {first!r}, expected {expected!r}", info.name
            )
        return first
    if first != top:
        raise ArchiveError(
            archive, f"second top-level entry (the archive must hold only {top!r})", info.name
        )
    return top


def _check_members(
    archive: Path,
    members: list[tarfile.TarInfo],
    expected_top: str | None = None,
    dest_root: Path | None = None,
) -> str:
    """Validate every member before anything is written; return the top-level directory name.

    Per member (in archive order): a plain relative name, a single top-level directory, no
    duplicates, an allowed type, hardlinks to earlier files.  Then with the whole table (links
    resolve after extraction, so later members count): real-directory parents, symlinks that
    stay inside the deployment.
    """
    if not members:
        raise ArchiveError(archive, "the archive is empty")
    by_name: dict[str, tarfile.TarInfo] = {}
    top: str | None = None
    for info in members:
        _check_name(archive, info.name, info.name)
        top = _check_top(archive, info, top, expected_top)
        if info.name in by_name:
            raise ArchiveError(archive, "appears twice in the archive", info.name)
        _check_type(archive, info)
        if info.islnk():
            _check_hardlink(archive, info, by_name)
        by_name[info.name] = info
    assert top is not None
    root = str(dest_root) if dest_root is not None else "(the archive's parent)"
    for info in members:
        _check_ancestors(archive, info, by_name)
        if info.issym():
            _check_symlink(archive, info, by_name, top, root)
    if top in by_name and not by_name[top].isdir():
        raise ArchiveError(archive, f"top-level entry is a {_kind(by_name[top])}", top)
    return top


# ---------------------------------------------------------------------------------------------
# Writing


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


def _clamp(mtime: float, clamp_mtime: int) -> int:
    """Whole seconds, never after ``clamp_mtime``: rebuilt or touched files hash the same."""
    return max(0, min(int(mtime), clamp_mtime))


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
    mtime = _clamp(st.st_mtime, clamp_mtime)
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
) -> list[_Entry]:
    """Every member in archive order, headers complete, so they can be checked before writing."""
    root_mtime = _clamp(os.stat(source).st_mtime, clamp_mtime)
    entries = [_Entry(_member(top, tarfile.DIRTYPE, _DIR_MODE, root_mtime))]
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


def _write_atomically(archive: Path, entries: list[_Entry], preset: int) -> ArchiveInfo:
    """Write to a temporary file beside ``archive`` and rename: readers never see half of it."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".part")
    try:
        with open(fd, "wb") as raw:
            os.fchmod(raw.fileno(), _ARCHIVE_MODE)
            sink = _HashingSink(raw)
            with (
                lzma.LZMAFile(
                    sink, "wb", format=lzma.FORMAT_XZ, check=XZ_CHECK, preset=preset
                ) as xz,
                tarfile.TarFile(
                    fileobj=xz,
                    mode="w",
                    format=tarfile.PAX_FORMAT,
                    encoding="utf-8",
                    errors="surrogateescape",
                    copybufsize=_CHUNK,
                ) as tar,
            ):
                for entry in entries:
                    _add(archive, tar, entry)
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


def _check_write_args(source: Path, archive: Path, top: str, clamp_mtime: int, preset: int) -> None:
    """Catch caller mistakes up front, before minutes of compression are spent."""
    _check_name(archive, top, top, "top directory name")
    if "/" in top:
        raise ArchiveError(archive, "the top directory must be a single path component", top)
    if not isinstance(clamp_mtime, int) or clamp_mtime < 0:
        raise ValueError(f"clamp_mtime must be a non-negative int, not {clamp_mtime!r}")
    if not 0 <= (preset & ~lzma.PRESET_EXTREME) <= 9:
        raise ValueError(f"xz preset must be 0-9 (optionally | lzma.PRESET_EXTREME): {preset}")
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
    preset: int = 6,
) -> ArchiveInfo:
    """Write the layer directory ``source`` as a reproducible ``.tar.xz`` at ``archive``.

    The archive holds one top-level directory ``top`` (the deployed name, which may differ
    from ``source.name``).  ``replace``, ``symlinks`` and ``exclude`` all take layer-relative
    POSIX paths (``"bin/python"``, no ``top`` prefix): ``replace`` swaps the content of regular
    files (metadata rewritten for the deployed names), ``symlinks(path, target)`` returns the
    target to store (e.g. absolute -> relative), ``exclude(path)`` leaves a path out (and a
    directory's whole subtree).  Every member is checked with the same rules ``safe_extract``
    applies, so an archive that would be refused at deploy time fails at publish time instead.
    Compression runs in liblzma without the GIL: several archives can be written in threads
    (preset 6 needs ~100 MB of memory per thread).
    """
    source, archive = Path(source), Path(archive)
    _check_write_args(source, archive, top, clamp_mtime, preset)
    entries = _collect(source, archive, top, clamp_mtime, dict(replace or {}), symlinks, exclude)
    _check_members(archive, [e.info for e in entries], top)
    return _write_atomically(archive, entries, preset)


# ---------------------------------------------------------------------------------------------
# Reading


def _check_staging(archive: Path, staging: Path) -> None:
    """Staging must be an empty directory: on failure we empty it again, and only it."""
    if not staging.is_dir():
        raise ArchiveError(archive, f"the staging directory {staging} does not exist")
    if any(staging.iterdir()):
        raise ArchiveError(archive, f"the staging directory {staging} is not empty")


def _verify_sha256(archive: Path, f: BinaryIO, expected: str) -> None:
    """Hash the very file object we then extract from: no swap between check and use."""
    actual = hashlib.file_digest(f, "sha256").hexdigest()
    if actual != expected.strip().lower():
        raise ArchiveError(
            archive, f"sha256 mismatch: expected {expected}, got {actual} (corrupt or wrong file)"
        )
    f.seek(0)


@contextlib.contextmanager
def _read_members(
    archive: Path, f: BinaryIO
) -> Iterator[tuple[tarfile.TarFile, list[tarfile.TarInfo]]]:
    """Open the tar stream and read every header, then the stream's end (its xz check)."""
    errors = (tarfile.TarError, lzma.LZMAError, EOFError, OSError)
    try:
        tar = tarfile.open(  # noqa: SIM115 - closed by the with below
            fileobj=f, mode="r:xz", encoding="utf-8", errors="surrogateescape"
        )
    except errors as e:
        raise ArchiveError(archive, f"not a readable .tar.xz archive: {e}") from e
    with tar:
        try:
            members = tar.getmembers()
            assert tar.fileobj is not None
            while tar.fileobj.read(_CHUNK):
                pass
        except errors as e:
            raise ArchiveError(archive, f"corrupt archive: {e}") from e
        yield tar, members


def _mtime_ns(info: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) in ns from the archive, so deployed files keep their published times."""
    ns = int(info.mtime * 1_000_000_000)
    return ns, ns


def _extract_file(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> None:
    """Stream one regular file; O_EXCL|O_NOFOLLOW so nothing pre-existing is ever written."""
    src = tar.extractfile(info)
    assert src is not None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with src, open(os.open(path, flags, 0o600), "wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
        out.flush()
        os.fchmod(out.fileno(), info.mode & 0o777)  # no setuid/setgid/sticky from an archive
        os.utime(out.fileno(), ns=_mtime_ns(info))


def _extract_member(tar: tarfile.TarFile, info: tarfile.TarInfo, staging: Path) -> None:
    """Create one validated member under ``staging`` (directory modes are applied later)."""
    path = staging / info.name
    if info.isdir():
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if info.isreg():
        _extract_file(tar, info, path)
    elif info.issym():
        os.symlink(info.linkname, path)
        os.utime(path, ns=_mtime_ns(info), follow_symlinks=False)
    else:
        os.link(staging / info.linkname, path, follow_symlinks=False)


def _finish_directories(staging: Path, directories: list[tarfile.TarInfo]) -> None:
    """Modes and mtimes of directories last, deepest first: writing into them changed mtimes,
    and a read-only directory must not be applied before its contents exist."""
    for info in sorted(directories, key=lambda d: d.name.count("/"), reverse=True):
        path = staging / info.name
        os.chmod(path, info.mode & 0o777)
        os.utime(path, ns=_mtime_ns(info))


def _extract_all(
    archive: Path, tar: tarfile.TarFile, members: list[tarfile.TarInfo], staging: Path
) -> None:
    """Extract validated members in archive order; any failure names the member at fault."""
    current: str | None = None
    try:
        for info in members:
            current = info.name
            _extract_member(tar, info, staging)
        current = None
        _finish_directories(staging, [m for m in members if m.isdir()])
    except (OSError, tarfile.TarError, lzma.LZMAError, EOFError) as e:
        raise ArchiveError(archive, f"cannot extract: {e}", current) from e


def _make_writable(directory: str) -> None:
    """u+rwx on a directory tree we wrote, so a non-root user can delete read-only parts."""
    os.chmod(directory, 0o700)
    with os.scandir(directory) as it:
        subdirs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
    for sub in subdirs:
        _make_writable(sub)


def _remove_tree(path: Path) -> None:
    """Remove a partial extraction, even inside directories made read-only by the archive."""
    if path.is_dir() and not path.is_symlink():
        _make_writable(str(path))
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


@contextlib.contextmanager
def _opened(archive: Path) -> Iterator[BinaryIO]:
    """The archive, opened once: hashed and extracted through the same file object."""
    try:
        f = open(archive, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as e:
        raise ArchiveError(archive, f"cannot open: {e.strerror}") from e
    with f:
        yield f


def safe_extract(
    archive: Path,
    dest_root: Path,
    staging: Path,
    *,
    expected_sha256: str | None = None,
    expected_top: str | None = None,
) -> Path:
    """Check ``archive`` completely, unpack it into ``staging`` and return ``staging/<top>``.

    ``dest_root`` is the deployment directory the layer will be moved into (by the caller,
    from ``staging``, an empty directory beside it); symlinks may point anywhere inside it,
    including sibling layers, but never out of it.  Order of work: sha256 (when given), every
    header and the xz check, every member's name/type/link, and only then writing.  Nothing is
    written outside ``staging``; on any failure ``staging`` is left empty again.  Modes are
    kept without setuid/setgid/sticky bits, owners are not changed (the deploying user owns the
    files), mtimes come from the archive.  Extraction decompresses the archive twice (check,
    then write) rather than writing anything unchecked.
    """
    archive, dest_root, staging = Path(archive), Path(dest_root), Path(staging)
    _check_staging(archive, staging)
    with _opened(archive) as f:
        if expected_sha256 is not None:
            _verify_sha256(archive, f, expected_sha256)
        with _read_members(archive, f) as (tar, members):
            top = _check_members(archive, members, expected_top, dest_root)
            try:
                _extract_all(archive, tar, members, staging)
            except BaseException:
                _remove_tree(staging / top)
                raise
    return staging / top
