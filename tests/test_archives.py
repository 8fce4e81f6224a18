"""Layer archives (kernelstacks.distribute.archives): reproducible writing, safe extraction.

Real files only: a fake layer tree in ``tmp_path`` (files, an executable, nested and empty
directories, a link to a sibling layer, an absolute link, a hardlinked pair, ``__pycache__``),
real ``.tar.xz`` archives, and malicious archives crafted with ``tarfile`` directly.  Every
refused archive must name the member at fault and leave the file system exactly as it was.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.hashing import sha256_hex as sha256_file
from kernelstacks.distribute.archive_extract import safe_extract
from kernelstacks.distribute.archives import ArchiveError, ArchiveInfo, write_archive

CLAMP = 1_700_000_000  # the lock time a publish would clamp to
OLD = 1_600_000_000  # files older than the lock time: their mtime is normalised all the same
TOP = "framework-scipy@3"
SITE = "lib/python3.12/site-packages"
LONG_NAME = f"{SITE}/pkg/" + "very_long_module_name_" * 6 + ".py"  # > 100 bytes: PAX path
METADATA = "share/venv/metadata/venvstacks_layer.json"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def make_layer(root: Path) -> Path:
    """A small layer tree with every kind of entry publish meets in real layers."""
    layer = root / "framework-scipy"
    pkg = layer / SITE / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (layer / "bin").mkdir()
    (layer / "share" / "empty").mkdir(parents=True)
    (layer / METADATA).parent.mkdir(parents=True)
    (layer / METADATA).write_text('{"python": "bin/python"}\n')
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    (pkg / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"\x00pyc")
    (pkg / "data.txt").write_text("text " * 1000)
    (pkg / "données.txt").write_text("non-ascii name\n")
    (layer / LONG_NAME).write_text("# long\n")
    (pkg / "_native.so").write_bytes(os.urandom(4096))
    os.link(pkg / "_native.so", pkg / "_native_alias.so")  # uv-style hardlinked pair
    tool = layer / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o750)
    (layer / "bin" / "private").write_text("secret-ish\n")
    (layer / "bin" / "private").chmod(0o600)
    (layer / "bin" / "python").symlink_to("../../cpython-3.12/bin/python3")  # sibling layer
    (layer / "lib64").symlink_to(layer / "lib")  # absolute: rewritten by symlinks=
    (layer / ".kernelstacks-state").write_text("build state\n")
    for path in walk(layer):
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    return layer


def walk(root: Path) -> Iterator[Path]:
    """Every path under root (not root itself), without following symlinks."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            yield Path(dirpath, name)


def relativize(layer: Path) -> Callable[[str, str], str]:
    """The symlinks= callback publish uses: absolute links into the layer become relative."""

    def rewrite(member: str, target: str) -> str:
        if not os.path.isabs(target):
            return target
        return os.path.relpath(target, start=os.path.dirname(os.path.join(layer, member)))

    return rewrite


def leave_out(member: str) -> bool:
    """The exclude= callback publish uses: bytecode caches of nothing, and build state."""
    return member.split("/")[-1] == "__pycache__" or member == ".kernelstacks-state"


def publish(layer: Path, archive: Path, **kwargs: object) -> ArchiveInfo:
    """write_archive with the settings a publish uses."""
    options: dict = {
        "top": TOP,
        "clamp_mtime": CLAMP,
        "symlinks": relativize(layer),
        "exclude": leave_out,
    }
    options.update(kwargs)
    return write_archive(layer, archive, **options)


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:xz") as tar:
        return {m.name: m for m in tar.getmembers()}


def member_bytes(archive: Path, name: str) -> bytes:
    with tarfile.open(archive, "r:xz") as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything observable about a tree: types, modes, sizes, contents, link targets, mtimes."""
    state: dict[str, tuple] = {".": (os.lstat(root).st_mode, os.lstat(root).st_mtime_ns)}
    for path in walk(root):
        st_ = os.lstat(path)
        if stat.S_ISLNK(st_.st_mode):
            extra: object = os.readlink(path)
        elif stat.S_ISREG(st_.st_mode):
            extra = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            extra = None
        state[str(path.relative_to(root))] = (st_.st_mode, st_.st_size, extra, st_.st_mtime_ns)
    return state


def craft(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A hand-made .tar.xz, exactly as listed (no normalisation, no checks)."""
    with tarfile.open(path, "w:xz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def entry(name: str, kind: str = "file", link: str = "", mode: int | None = None):
    """One crafted member: kind is file, dir, sym, lnk, chr or fifo."""
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "sym": tarfile.SYMTYPE,
        "lnk": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    info = tarfile.TarInfo(name)
    info.type = types[kind]
    info.linkname = link
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.mtime = OLD
    return info, (b"payload\n" if kind == "file" else None)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return make_layer(tmp_path / "build")


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[Path, Path]:
    """(dest_root, staging): a deployment with a sibling runtime layer, staging beside.

    ``alias -> .`` stands for a link an admin made in the deployment: harmless in itself, but
    ``alias/..`` is the deployment's parent, not the deployment.
    """
    dest_root = tmp_path / "deploy"
    python3 = dest_root / "cpython-3.12" / "bin" / "python3"
    python3.parent.mkdir(parents=True)
    python3.write_text("#!/bin/sh\n")
    (dest_root / "alias").symlink_to(".")
    staging = dest_root / ".staging-1"
    staging.mkdir()
    return dest_root, staging


# --------------------------------------------------------------------------------------------
# writing: reproducibility
# --------------------------------------------------------------------------------------------


def test_publishing_twice_is_byte_identical(
    layer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def touch_all(when: int) -> None:
        for path in [layer, *walk(layer)]:
            os.utime(path, (when, when), follow_symlinks=False)

    touch_all(CLAMP + 100)  # built after it was locked
    first = publish(layer, tmp_path / "out1" / f"{TOP}.tar.xz")

    # Between the two publishes: every mtime moves, modes move within their class, owners
    # change, and the second run has another cwd, a relative source path and another umask.
    touch_all(CLAMP + 5000)
    (layer / SITE / "pkg" / "data.txt").chmod(0o664)
    (layer / "bin" / "tool").chmod(0o700)
    if os.geteuid() == 0:
        for path in [layer, *walk(layer)]:
            os.chown(path, 4321, 4321, follow_symlinks=False)
    monkeypatch.chdir(layer.parent)
    with umask(0o077):
        second = publish(Path(layer.name), tmp_path / "out2" / f"{TOP}.tar.xz")

    assert second.sha256 == first.sha256
    assert second.size == first.size
    assert first.path.read_bytes() == second.path.read_bytes()
    assert sha256_file(first.path) == first.sha256
    assert first.size == first.path.stat().st_size
    assert stat.S_IMODE(second.path.stat().st_mode) == 0o644  # not umask-dependent


def test_members_are_normalised(layer: Path, tmp_path: Path) -> None:
    info = publish(layer, tmp_path / "out" / "a.tar.xz")
    with tarfile.open(info.path, "r:xz") as tar:
        found = tar.getmembers()
    names = [m.name for m in found]

    assert names[0] == TOP
    assert names == sorted(names, key=lambda n: n.split("/"))  # directories before contents
    assert not any("__pycache__" in n or ".kernelstacks-state" in n for n in names)
    for m in found:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.mtime == CLAMP  # every member: the same normalised mtime
        assert set(m.pax_headers) <= {"path"}, m.pax_headers  # no atime/ctime records
        if m.isdir():
            assert m.mode == 0o755, m.name
        elif m.issym():
            assert m.mode == 0o777, m.name
        else:
            assert m.isreg() and m.mode in (0o644, 0o755), m.name
    by_name = {m.name: m for m in found}
    assert by_name[f"{TOP}/bin/tool"].mode == 0o755  # any exec bit -> 755
    assert by_name[f"{TOP}/bin/private"].mode == 0o644  # 600 -> 644
    assert by_name[f"{TOP}/{LONG_NAME}"].pax_headers == {"path": f"{TOP}/{LONG_NAME}"}
    assert by_name[f"{TOP}/{SITE}/pkg/données.txt"].isreg()
    assert by_name[f"{TOP}/bin/python"].linkname == "../../cpython-3.12/bin/python3"
    assert by_name[f"{TOP}/lib64"].linkname == "lib"  # absolute link rewritten
    assert by_name[f"{TOP}/share/empty"].isdir()

    raw = info.path.read_bytes()
    assert raw[:6] == b"\xfd7zXZ\x00"
    assert raw[6:8] == b"\x00\x04"  # xz stream flags: CRC64 check


def test_every_member_gets_the_same_mtime(layer: Path, tmp_path: Path) -> None:
    """Newer and older files alike: the archive is a function of the content alone."""
    future = CLAMP + 10**6
    os.utime(layer / "bin" / "tool", (future, future))
    found = members(publish(layer, tmp_path / "a.tar.xz").path)
    assert found[f"{TOP}/bin/tool"].mtime == CLAMP
    assert found[f"{TOP}/bin/private"].mtime == CLAMP
    assert {m.mtime for m in found.values()} == {CLAMP}


def test_hardlinked_files_are_stored_as_regular_files(layer: Path, tmp_path: Path) -> None:
    linked = publish(layer, tmp_path / "linked.tar.xz")
    found = members(linked.path)
    pair = [f"{TOP}/{SITE}/pkg/_native.so", f"{TOP}/{SITE}/pkg/_native_alias.so"]
    assert all(found[name].isreg() for name in pair)
    assert member_bytes(linked.path, pair[0]) == member_bytes(linked.path, pair[1])

    # The same content without the shared inode (uv copying instead of linking) archives the
    # same: the archive depends on the content, not on how the files were placed.
    alias = layer / SITE / "pkg" / "_native_alias.so"
    data = alias.read_bytes()
    alias.unlink()
    alias.write_bytes(data)
    os.utime(alias, (OLD, OLD))
    os.utime(alias.parent, (OLD, OLD))
    assert publish(layer, tmp_path / "copied.tar.xz").sha256 == linked.sha256


def test_replace_changes_one_member(layer: Path, tmp_path: Path) -> None:
    plain = publish(layer, tmp_path / "plain.tar.xz")
    new = b'{"python": "bin/python", "deployed": true}\n'
    replaced = publish(layer, tmp_path / "replaced.tar.xz", replace={METADATA: new})

    assert member_bytes(replaced.path, f"{TOP}/{METADATA}") == new
    assert (layer / METADATA).read_text() == '{"python": "bin/python"}\n'  # source untouched
    assert replaced.sha256 != plain.sha256
    before, after = members(plain.path), members(replaced.path)
    assert list(before) == list(after)
    changed = [n for n in before if before[n].get_info() != after[n].get_info()]
    assert changed == [f"{TOP}/{METADATA}"]


@pytest.mark.parametrize("key", ["no/such/file", f"{TOP}/{METADATA}", "bin/python", "bin"])
def test_replace_must_name_a_regular_file(layer: Path, tmp_path: Path, key: str) -> None:
    with pytest.raises(ArchiveError) as err:
        publish(layer, tmp_path / "a.tar.xz", replace={key: b"x"})
    assert key.split("/")[-1] in str(err.value)
    assert not (tmp_path / "a.tar.xz").exists()


def test_add_puts_new_files_at_the_root_with_the_clamped_mtime(layer: Path, tmp_path: Path) -> None:
    info = publish(layer, tmp_path / "a.tar.xz", add={"postinstall.py": b"print('hi')\n"})
    added = members(info.path)[f"{TOP}/postinstall.py"]
    assert added.isreg() and added.mtime == CLAMP and added.mode == 0o644
    assert member_bytes(info.path, f"{TOP}/postinstall.py") == b"print('hi')\n"
    assert not (layer / "postinstall.py").exists()


@pytest.mark.parametrize("key", ["bin", "sub/dir.py"])
def test_add_refuses_what_the_layer_has_or_a_subdirectory(
    layer: Path, tmp_path: Path, key: str
) -> None:
    with pytest.raises(ArchiveError):
        publish(layer, tmp_path / "a.tar.xz", add={key: b"x"})
    assert not (tmp_path / "a.tar.xz").exists()


def test_top_renames_the_root(layer: Path, tmp_path: Path) -> None:
    info = publish(layer, tmp_path / "a.tar.xz", top="app-notebook@7")
    names = list(members(info.path))
    assert layer.name != "app-notebook@7"
    assert all(n == "app-notebook@7" or n.startswith("app-notebook@7/") for n in names)


def test_writer_refuses_what_deploy_would_refuse(layer: Path, tmp_path: Path) -> None:
    archive = tmp_path / "out" / "a.tar.xz"
    archive.parent.mkdir()
    archive.write_bytes(b"previous archive")

    with pytest.raises(ArchiveError) as err:  # absolute link left as it is
        publish(layer, archive, symlinks=None)
    assert err.value.member == f"{TOP}/lib64"
    assert "absolute" in str(err.value)

    os.mkfifo(layer / "bin" / "pipe")
    with pytest.raises(ArchiveError) as err:
        publish(layer, archive)
    assert err.value.member == f"{TOP}/bin/pipe"

    # Failed writes leave an existing archive alone and no temporary files behind.
    assert archive.read_bytes() == b"previous archive"
    assert os.listdir(archive.parent) == ["a.tar.xz"]


@pytest.mark.parametrize("top", ["", "a/b", "..", ".", "/abs"])
def test_writer_refuses_bad_top(layer: Path, tmp_path: Path, top: str) -> None:
    with pytest.raises(ArchiveError):
        publish(layer, tmp_path / "a.tar.xz", top=top)


def test_writer_refuses_archive_inside_the_layer(layer: Path) -> None:
    with pytest.raises(ArchiveError, match="inside the layer"):
        publish(layer, layer / "out" / "a.tar.xz")


def test_archive_error_is_user_facing_and_picklable() -> None:
    import pickle

    error = ArchiveError(Path("/x/a.tar.xz"), "bad", "top/m")
    assert isinstance(error, KernelstacksError)
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.member) == (str(error), "top/m")


# --------------------------------------------------------------------------------------------
# reading: round trip
# --------------------------------------------------------------------------------------------


def test_round_trip_preserves_content_modes_links(
    layer: Path, tmp_path: Path, deployment: tuple[Path, Path]
) -> None:
    dest_root, staging = deployment
    info = publish(layer, tmp_path / "a.tar.xz")

    root = safe_extract(
        info.path, dest_root, staging, expected_sha256=info.sha256, expected_top=TOP
    )
    assert root == staging / TOP
    for path in walk(layer):
        rel = path.relative_to(layer)
        if leave_out(str(rel)) or "__pycache__" in rel.parts:
            assert not os.path.lexists(root / rel)
            continue
        got = root / rel
        if path.is_symlink():
            assert got.is_symlink()
            assert os.readlink(got) == relativize(layer)(str(rel), os.readlink(path))
        elif path.is_dir():
            assert got.is_dir() and stat.S_IMODE(got.stat().st_mode) == 0o755
        else:
            assert got.read_bytes() == path.read_bytes()
            exec_bit = path.stat().st_mode & 0o111
            assert stat.S_IMODE(got.stat().st_mode) == (0o755 if exec_bit else 0o644)
        assert got.lstat().st_mtime == CLAMP
    assert (root / "share" / "empty").is_dir() and not any((root / "share" / "empty").iterdir())
    pkg = root / SITE / "pkg"
    assert (pkg / "_native.so").stat().st_ino != (pkg / "_native_alias.so").stat().st_ino

    # The caller moves the layer into place: the sibling link now reaches the runtime layer.
    final = dest_root / TOP
    root.rename(final)
    assert (final / "bin" / "python").resolve() == dest_root / "cpython-3.12" / "bin" / "python3"
    assert (final / "lib64" / "python3.12" / "site-packages" / "pkg" / "__init__.py").exists()
    assert list(staging.iterdir()) == []


def test_extraction_strips_special_bits_and_applies_readonly_dirs_last(
    tmp_path: Path, deployment: tuple[Path, Path]
) -> None:
    dest_root, staging = deployment
    archive = craft(
        tmp_path / "a.tar.xz",
        [
            entry("layer", "dir"),
            entry("layer/ro", "dir", mode=0o555),
            entry("layer/ro/file", mode=0o444),
            entry("layer/suid", mode=0o4755),
            entry("layer/tmp", "dir", mode=0o1777),
        ],
    )
    root = safe_extract(archive, dest_root, staging)
    assert stat.S_IMODE((root / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o777
    assert stat.S_IMODE((root / "ro").stat().st_mode) == 0o555
    assert (root / "ro" / "file").read_bytes() == b"payload\n"
    (root / "ro").chmod(0o755)  # let pytest clean up as a non-root user


def test_extraction_keeps_hardlink_members(tmp_path: Path, deployment: tuple[Path, Path]) -> None:
    dest_root, staging = deployment
    archive = craft(
        tmp_path / "a.tar.xz",
        [entry("layer", "dir"), entry("layer/a"), entry("layer/b", "lnk", link="layer/a")],
    )
    root = safe_extract(archive, dest_root, staging)
    assert (root / "a").stat().st_ino == (root / "b").stat().st_ino


def test_implicit_parent_directories_are_created(
    tmp_path: Path, deployment: tuple[Path, Path]
) -> None:
    dest_root, staging = deployment
    archive = craft(tmp_path / "a.tar.xz", [entry("layer/deep/er/file")])
    root = safe_extract(archive, dest_root, staging, expected_top="layer")
    assert (root / "deep" / "er" / "file").read_bytes() == b"payload\n"


def test_links_through_links_are_resolved_like_the_os(
    tmp_path: Path, deployment: tuple[Path, Path]
) -> None:
    # layer/d -> sub/deeper; layer/e -> d/../../x: lexically dest_root/x, really .../layer/x
    dest_root, staging = deployment
    archive = craft(
        tmp_path / "a.tar.xz",
        [
            entry("layer/sub/deeper/f"),
            entry("layer/d", "sym", link="sub/deeper"),
            entry("layer/x"),
            entry("layer/e", "sym", link="d/../../x"),
        ],
    )
    root = safe_extract(archive, dest_root, staging)
    root.rename(dest_root / "layer")
    assert (dest_root / "layer" / "e").read_bytes() == b"payload\n"


# --------------------------------------------------------------------------------------------
# reading: refused archives
# --------------------------------------------------------------------------------------------


def malicious_cases(outside: Path) -> dict[str, tuple[list, str]]:
    """name -> (members, the member the error must name). Good members come first on purpose:
    nothing may be written before every member has been checked."""
    good = [entry("layer", "dir"), entry("layer/ok")]
    return {
        "absolute": ([*good, entry(str(outside / "evil"))], str(outside / "evil")),
        "dotdot": ([*good, entry("layer/../../evil")], "layer/../../evil"),
        "dotdot-first": ([*good, entry("../evil")], "../evil"),
        "symlink-etc": ([*good, entry("layer/etc", "sym", link="/etc")], "layer/etc"),
        "symlink-escape": (
            [*good, entry("layer/a", "dir"), entry("layer/a/up", "sym", link="../../..")],
            "layer/a/up",
        ),
        "symlink-to-outside-abs": (
            [*good, entry("layer/o", "sym", link=str(outside))],
            "layer/o",
        ),
        # lexically dest_root/layer/x, but d is dest_root, so the OS lands beside dest_root
        "symlink-chain": (
            [*good, entry("layer/d", "sym", link=".."), entry("layer/e", "sym", link="d/../x")],
            "layer/e",
        ),
        # '..' out of another layer's entry, which we cannot see: refused, not guessed. Here
        # lexically dest_root/x, really dest_root/../x (alias -> .).
        "symlink-through-sibling": (
            [*good, entry("layer/s", "sym", link="../alias/../x")],
            "layer/s",
        ),
        "symlink-loop": (
            [*good, entry("layer/p", "sym", link="q"), entry("layer/q", "sym", link="p")],
            "layer/p",
        ),
        "write-through-symlink": (
            [
                *good,
                entry("layer/sub", "dir"),
                entry("layer/l", "sym", link="sub"),
                entry("layer/l/x"),
            ],
            "layer/l/x",
        ),
        "hardlink-escape": ([*good, entry("layer/h", "lnk", link="../outside")], "layer/h"),
        "hardlink-absolute": ([*good, entry("layer/h", "lnk", link="/etc/passwd")], "layer/h"),
        "hardlink-to-later": (
            [*good, entry("layer/h", "lnk", link="layer/z"), entry("layer/z")],
            "layer/h",
        ),
        "hardlink-to-symlink": (
            [*good, entry("layer/s", "sym", link="ok"), entry("layer/h", "lnk", link="layer/s")],
            "layer/h",
        ),
        "two-tops": ([*good, entry("other", "dir"), entry("other/f")], "other"),
        "device": ([*good, entry("layer/null", "chr")], "layer/null"),
        "fifo": ([*good, entry("layer/pipe", "fifo")], "layer/pipe"),
        "duplicate": ([*good, entry("layer/ok", "sym", link="/etc/passwd")], "layer/ok"),
        "top-is-file": ([entry("layer"), entry("layer/x")], "layer/x"),
        "not-normalised": ([*good, entry("layer/./x")], "layer/./x"),
    }


@pytest.mark.parametrize("case", sorted(malicious_cases(Path("/x"))))
def test_malicious_archive_is_refused_untouched(
    tmp_path: Path, deployment: tuple[Path, Path], case: str
) -> None:
    dest_root, staging = deployment
    member_list, culprit = malicious_cases(tmp_path)[case]
    archive = craft(tmp_path / "evil.tar.xz", member_list)
    before = snapshot(tmp_path)

    with pytest.raises(ArchiveError) as err:
        safe_extract(archive, dest_root, staging, expected_sha256=sha256_file(archive))

    assert err.value.member == culprit
    assert repr(culprit) in str(err.value) and str(archive) in str(err.value)
    assert snapshot(tmp_path) == before
    assert list(staging.iterdir()) == []


def test_wrong_expected_top(layer: Path, tmp_path: Path, deployment: tuple[Path, Path]) -> None:
    dest_root, staging = deployment
    info = publish(layer, tmp_path / "a.tar.xz")
    before = snapshot(tmp_path)
    with pytest.raises(ArchiveError) as err:
        safe_extract(info.path, dest_root, staging, expected_top="framework-scipy@4")
    assert err.value.member == TOP
    assert "framework-scipy@4" in str(err.value)
    assert snapshot(tmp_path) == before


def test_sha256_mismatch_writes_nothing(
    layer: Path, tmp_path: Path, deployment: tuple[Path, Path]
) -> None:
    dest_root, staging = deployment
    info = publish(layer, tmp_path / "a.tar.xz")
    before = snapshot(tmp_path)
    with pytest.raises(ArchiveError, match="sha256 mismatch") as err:
        safe_extract(info.path, dest_root, staging, expected_sha256="0" * 64)
    assert str(info.path) in str(err.value)
    assert snapshot(tmp_path) == before
    # and the right digest, in upper case, is accepted
    safe_extract(info.path, dest_root, staging, expected_sha256=info.sha256.upper())


def test_corrupt_archive_writes_nothing(
    layer: Path, tmp_path: Path, deployment: tuple[Path, Path]
) -> None:
    dest_root, staging = deployment
    data = publish(layer, tmp_path / "a.tar.xz").path.read_bytes()
    for name, broken in {
        "truncated": data[: len(data) // 2],
        "flipped": data[:-40] + bytes([data[-40] ^ 0xFF]) + data[-39:],
        "not-xz": b"PK\x03\x04 this is a zip",
    }.items():
        path = tmp_path / f"{name}.tar.xz"
        path.write_bytes(broken)
        before = snapshot(tmp_path)
        with pytest.raises(ArchiveError):
            safe_extract(path, dest_root, staging)
        assert snapshot(tmp_path) == before, name


def test_failure_while_writing_empties_staging(
    tmp_path: Path, deployment: tuple[Path, Path]
) -> None:
    # A name the file system refuses (component > 255 bytes): only found out while writing.
    dest_root, staging = deployment
    too_long = "layer/" + "n" * 300
    archive = craft(
        tmp_path / "a.tar.xz", [entry("layer", "dir"), entry("layer/ok"), entry(too_long)]
    )
    with pytest.raises(ArchiveError) as err:
        safe_extract(archive, dest_root, staging)
    assert err.value.member == too_long
    assert list(staging.iterdir()) == []


def test_staging_must_be_an_empty_directory(
    layer: Path, tmp_path: Path, deployment: tuple[Path, Path]
) -> None:
    dest_root, staging = deployment
    info = publish(layer, tmp_path / "a.tar.xz")
    (staging / "keep").write_text("not ours")
    with pytest.raises(ArchiveError, match="not empty"):
        safe_extract(info.path, dest_root, staging)
    assert (staging / "keep").read_text() == "not ours"
    with pytest.raises(ArchiveError, match="does not exist"):
        safe_extract(info.path, dest_root, tmp_path / "missing")


def test_missing_archive(tmp_path: Path, deployment: tuple[Path, Path]) -> None:
    dest_root, staging = deployment
    with pytest.raises(ArchiveError, match="cannot open") as err:
        safe_extract(tmp_path / "nope.tar.xz", dest_root, staging)
    assert "nope.tar.xz" in str(err.value)


# --------------------------------------------------------------------------------------------
# parallel writing
# --------------------------------------------------------------------------------------------


def test_archives_written_in_threads_all_verify(tmp_path: Path) -> None:
    layers = []
    for i in range(3):
        layer = make_layer(tmp_path / f"build{i}")
        (layer / "bin" / "blob").write_bytes(os.urandom(2 << 20) + b"text " * 200_000)
        layers.append(layer)

    def job(i: int) -> ArchiveInfo:
        return publish(layers[i], tmp_path / "out" / f"{i}.tar.xz", top=f"layer{i}")

    with ThreadPoolExecutor(max_workers=3) as pool:
        infos = list(pool.map(job, range(3)))

    for i, info in enumerate(infos):
        assert sha256_file(info.path) == info.sha256
        staging = tmp_path / f"staging{i}"
        staging.mkdir()
        root = safe_extract(
            info.path, tmp_path, staging, expected_sha256=info.sha256, expected_top=f"layer{i}"
        )
        assert (root / "bin" / "blob").read_bytes() == (layers[i] / "bin" / "blob").read_bytes()
    # threads do not change the bytes
    assert publish(layers[0], tmp_path / "again.tar.xz", top="layer0").sha256 == infos[0].sha256


# --------------------------------------------------------------------------------------------
# property: whatever the names, extraction stays inside dest_root or refuses
# --------------------------------------------------------------------------------------------

# Mostly plausible members under one top directory (so extraction gets far enough to matter),
# sometimes one hostile member: absolute, '..', '.', '//', a second top, a fifo.  Link targets
# wander up and through links (b is "." in the deployment) more often than real ones do.
PLAIN = st.sampled_from(["a", "b", "x y", "é"])
ANY = st.sampled_from(["layer", "a", "b", "..", ".", "", "é", "cpython"])
PLAUSIBLE_NAMES = st.lists(PLAIN, max_size=3).map(lambda parts: "/".join(["layer", *parts]))
HOSTILE_NAMES = st.builds(
    lambda absolute, parts: ("/" if absolute else "") + "/".join(parts),
    st.booleans(),
    st.lists(ANY, min_size=1, max_size=5),
)
WANDERING = st.lists(st.sampled_from(["..", "..", "b", "a", "layer", ".", "cpython"]), max_size=6)
SYMLINK_TARGETS = st.one_of(PLAUSIBLE_NAMES, HOSTILE_NAMES, WANDERING.map("/".join))
HARDLINK_TARGETS = st.one_of(PLAUSIBLE_NAMES, PLAUSIBLE_NAMES, HOSTILE_NAMES)


def members_named(names: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str, str]]:
    """(kind, name, link target) with a target that fits the kind."""
    return st.one_of(
        st.tuples(st.just("file"), names, st.just("")),
        st.tuples(st.just("dir"), names, st.just("")),
        st.tuples(st.just("sym"), names, SYMLINK_TARGETS),
        st.tuples(st.just("sym"), names, SYMLINK_TARGETS),
        st.tuples(st.just("lnk"), names, HARDLINK_TARGETS),
    )


PLAUSIBLE = members_named(PLAUSIBLE_NAMES)
HOSTILE = members_named(HOSTILE_NAMES) | st.tuples(st.just("fifo"), PLAUSIBLE_NAMES, st.just(""))


def tidy(plain: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Make plausible members mostly consistent (parents are dirs or symlinks, hardlinks alias an
    earlier file), so that many archives are accepted and their links really get tested."""
    names = {name for _, name, _ in plain}
    parents = {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}
    tidied, files = [], []
    for kind, name, target in plain:
        if name in parents and kind != "sym":  # a symlinked parent stays: write-through attack
            kind, target = "dir", ""
        elif kind == "lnk" and target.startswith("layer/"):  # hostile targets stay hostile
            kind, target = ("lnk", files[len(target) % len(files)]) if files else ("file", "")
        if kind == "file":
            files.append(name)
        tidied.append((kind, name, target))
    return tidied


MEMBERS = st.builds(
    lambda plain, hostile, at: [*plain[:at], *hostile, *plain[at:]],
    st.lists(PLAUSIBLE, min_size=1, max_size=8, unique_by=lambda m: m[1]).map(tidy),
    st.lists(HOSTILE, max_size=1),
    st.integers(0, 8),
)


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MEMBERS)
def test_random_members_stay_inside_or_are_refused(spec: list[tuple[str, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        dest_root = base / "deploy"
        (dest_root / "cpython" / "bin").mkdir(parents=True)
        (dest_root / "cpython" / "bin" / "python3").write_text("runtime")
        (dest_root / "b").symlink_to(".")  # another layer's entry we cannot see from the archive
        (base / "outside").write_text("do not touch")
        staging = dest_root / ".staging"
        staging.mkdir()
        archive = base / "random.tar.xz"
        try:
            craft(archive, [entry(name, kind, link) for kind, name, link in spec])
        except (ValueError, UnicodeError):
            assume(False)
        before = snapshot(base)

        try:
            root = safe_extract(archive, dest_root, staging)
        except ArchiveError as err:
            named = {n for _, n, _ in spec} | {n.rstrip("/") for _, n, _ in spec}
            assert err.member is None or err.member in named | {n.split("/")[0] for n in named}
            assert snapshot(base) == before
            assert list(staging.iterdir()) == []
            return

        assert root.parent == staging
        after = snapshot(base)
        changed = {k for k in after.keys() | before.keys() if after.get(k) != before.get(k)}
        assert all(inside(k, f"deploy{os.sep}.staging") for k in changed), changed
        if root.name in {"cpython", ".staging", "b"}:
            return  # cannot move it beside a layer of the same name; contents checked above
        final = dest_root / root.name
        root.rename(final)
        real_root = os.path.realpath(dest_root)
        for path in [final, *walk(final)]:
            assert inside(os.path.realpath(path), real_root), path
        shutil.rmtree(final)
