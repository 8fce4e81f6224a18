"""What a layer archive may contain: the member checks shared by publishing and deploying.

An archive is checked completely before anything is written: plain relative names under one
top-level directory, no duplicates, only files, directories and links, hardlinks to earlier files,
real directories as parents, and symlinks that stay inside the deployment directory (layers
legitimately link to sibling layers: ``bin/python -> ../../cpython-3.12/bin/python3``). The
writer applies the same rules, so what we publish we can deploy.
"""

from __future__ import annotations

import tarfile
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError

_MAX_SYMLINK_HOPS = 40  # Linux's MAXSYMLINKS: a longer chain cannot be followed anyway


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


def check_name(archive: Path, name: str, member: str, what: str = "path") -> None:
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


def member_kind(info: tarfile.TarInfo) -> str:
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


def check_type(archive: Path, info: tarfile.TarInfo) -> None:
    """Only files, directories and links belong in a layer; devices and fifos are refused."""
    if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
        raise ArchiveError(
            archive,
            f"is a {member_kind(info)}; layer archives hold only files, dirs and links",
            info.name,
        )


def check_hardlink(
    archive: Path, info: tarfile.TarInfo, earlier: Mapping[str, tarfile.TarInfo]
) -> None:
    """A hardlink may only alias an earlier regular file of this archive, never anything else."""
    check_name(archive, info.linkname, info.name, "hardlink target")
    target = earlier.get(info.linkname)
    if target is None or not (target.isreg() or target.islnk()):
        raise ArchiveError(
            archive,
            f"hardlink to {info.linkname!r}, which is not an earlier regular file of the archive",
            info.name,
        )


def check_ancestors(
    archive: Path, info: tarfile.TarInfo, by_name: Mapping[str, tarfile.TarInfo]
) -> None:
    """Every parent must be a real directory: writing through a symlinked parent escapes."""
    parts = info.name.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        found = by_name.get(parent)
        if found is not None and not found.isdir():
            raise ArchiveError(
                archive,
                f"its parent {parent!r} is a {member_kind(found)}, not a directory",
                info.name,
            )


def symlink_escape(
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


def check_symlink(
    archive: Path,
    info: tarfile.TarInfo,
    by_name: Mapping[str, tarfile.TarInfo],
    top: str,
    root: str,
) -> None:
    """Refuse a symlink whose target resolves outside the deployment (see _symlink_escape)."""
    if not info.linkname or "\0" in info.linkname:
        raise ArchiveError(archive, "symlink has an empty target or a NUL byte", info.name)
    reason = symlink_escape(info, by_name, top, root)
    if reason is not None:
        raise ArchiveError(archive, reason, info.name)


def check_top(archive: Path, info: tarfile.TarInfo, top: str | None, expected: str | None) -> str:
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


def check_members(
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
        check_name(archive, info.name, info.name)
        top = check_top(archive, info, top, expected_top)
        if info.name in by_name:
            raise ArchiveError(archive, "appears twice in the archive", info.name)
        check_type(archive, info)
        if info.islnk():
            check_hardlink(archive, info, by_name)
        by_name[info.name] = info
    assert top is not None
    root = str(dest_root) if dest_root is not None else "(the archive's parent)"
    for info in members:
        check_ancestors(archive, info, by_name)
        if info.issym():
            check_symlink(archive, info, by_name, top, root)
    if top in by_name and not by_name[top].isdir():
        raise ArchiveError(archive, f"top-level entry is a {member_kind(by_name[top])}", top)
    return top
