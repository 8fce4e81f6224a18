"""Unpack a layer archive safely: verify everything first, write only into a staging directory.

Order of work: sha256 (when given), every header and the xz check, every member's name, type and
link (:mod:`kernelstacks.distribute.archive_members`), and only then writing. Nothing is written
outside the staging directory; on any failure it is left empty again.
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from kernelstacks._support.swap import remove_tree
from kernelstacks.distribute.archive_members import ArchiveError, check_members

_CHUNK = 1 << 20


def _check_staging(archive: Path, staging: Path) -> None:
    """Staging must be an empty directory: on failure we empty it again, and only it."""
    if not staging.is_dir():
        raise ArchiveError(archive, f"the staging directory {staging} does not exist")
    if any(staging.iterdir()):
        raise ArchiveError(archive, f"the staging directory {staging} is not empty")


def _verify_sha256(archive: Path, f: BinaryIO, expected: str) -> None:
    """Hash the very file object we then extract from: no swap between check and use."""
    actual = hashlib.file_digest(f, "sha256").hexdigest()  # type: ignore[arg-type]
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


Place = Callable[[str], Path]


def _placer(staging: Path, strip_top: bool) -> Place:
    """Where a member lands: ``staging/<name>``, or without its top directory (``strip_top``)."""

    def place(name: str) -> Path:
        if not strip_top:
            return staging / name
        _top, _sep, rest = name.partition("/")
        return staging / rest if rest else staging

    return place


def _extract_member(tar: tarfile.TarFile, info: tarfile.TarInfo, place: Place) -> None:
    """Create one validated member (directory modes are applied later)."""
    path = place(info.name)
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
        os.link(place(info.linkname), path, follow_symlinks=False)


def _finish_directories(place: Place, directories: list[tarfile.TarInfo]) -> None:
    """Modes and mtimes of directories last, deepest first: writing into them changed mtimes,
    and a read-only directory must not be applied before its contents exist."""
    for info in sorted(directories, key=lambda d: d.name.count("/"), reverse=True):
        path = place(info.name)
        os.chmod(path, info.mode & 0o777)
        os.utime(path, ns=_mtime_ns(info))


def _extract_all(
    archive: Path, tar: tarfile.TarFile, members: list[tarfile.TarInfo], place: Place
) -> None:
    """Extract validated members in archive order; any failure names the member at fault."""
    current: str | None = None
    try:
        for info in members:
            current = info.name
            _extract_member(tar, info, place)
        current = None
        _finish_directories(place, [m for m in members if m.isdir()])
    except (OSError, tarfile.TarError, lzma.LZMAError, EOFError) as e:
        raise ArchiveError(archive, f"cannot extract: {e}", current) from e


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
    strip_top: bool = False,
) -> Path:
    """Check ``archive`` completely, unpack it into ``staging`` and return ``staging/<top>``.

    With ``strip_top`` the top-level directory's contents land in ``staging`` itself (which is
    returned): a deployment prepares each layer in a staging directory beside its final place.

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
            top = check_members(archive, members, expected_top, dest_root)
            try:
                _extract_all(archive, tar, members, _placer(staging, strip_top))
            except BaseException:
                _empty(staging, top, strip_top)
                raise
    return staging if strip_top else staging / top


def _empty(staging: Path, top: str, strip_top: bool) -> None:
    """Leave ``staging`` empty again after a failed extraction."""
    if not strip_top:
        remove_tree(staging / top)
        return
    os.chmod(staging, 0o700)
    for child in list(staging.iterdir()):
        remove_tree(child)
