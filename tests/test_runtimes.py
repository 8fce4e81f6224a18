"""Runtime layers: choosing interpreters and building relocatable runtimes from real ones.

Everything here uses this machine's real interpreters (``local_python``) and real uv; nothing is
mocked. Runtimes are expensive-ish (a few seconds each), so each is built once per module and the
tests that need one are marked ``slow``. The managed source is exercised offline through uv's own
``UV_PYTHON_DOWNLOADS_JSON_URL`` pointing at a python-build-standalone-style archive made from a
runtime we built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import ks
from helpers import write_spec
from kernelstacks._support.uv import run_uv
from kernelstacks.build.runtimes import build_runtime
from kernelstacks.build.state import LAYER_METADATA, read_state
from kernelstacks.interpreters.discovery import (
    MANAGED_ORIGIN,
    InterpreterChoice,
    RuntimeProvisionError,
    _without_pyenv_shims,
    choose_interpreter,
    parse_implementation,
    version_matches,
)

DEBIAN_PYTHON = Path("/usr/bin/python3.11")

IMPORT_CHECK = r"""
import json, sys, ssl, sqlite3, ctypes, sysconfig
maps = sorted({line.split(None, 5)[5].strip() for line in open("/proc/self/maps")
               if len(line.split(None, 5)) == 6 and line.split(None, 5)[5].startswith("/")})
print(json.dumps({"base_prefix": sys.base_prefix, "prefix": sys.prefix, "maps": maps,
                  "paths": sysconfig.get_paths(), "libdir": sysconfig.get_config_var("LIBDIR"),
                  "executable": sys.executable}))
"""


def _require(version: str) -> Path:
    """The machine interpreter for ``version`` or skip the test."""
    python = local_python(version)
    if python is None:
        pytest.skip(f"no local Python {version} on this machine")
    return python


def _real_prefix(python: Path) -> Path:
    """``sys.base_prefix`` of an interpreter, resolved."""
    out = subprocess.run(
        [python, "-I", "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(os.path.realpath(out.stdout.strip()))


def _path_first(python: Path) -> dict[str, str]:
    """Environment overrides that put ``python``'s directory first on PATH for discovery."""
    return {"PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _probe(python: Path) -> dict:
    """Run the import/maps probe in ``python`` with a clean environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    proc = subprocess.run(
        [python, "-I", "-c", IMPORT_CHECK], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _under(path: str | Path, root: Path) -> bool:
    """``path`` is inside ``root``."""
    path, root_s = os.fspath(path), os.fspath(root)
    return path == root_s or path.startswith(root_s.rstrip("/") + "/")


def test_an_activated_venv_is_never_taken_for_a_managed_python(tmp_path: Path) -> None:
    """kernelstacks pip-installed in an active venv: that venv is not a uv-managed Python."""
    python = _require("3.12")
    venv = tmp_path / "active-venv"
    subprocess.run([os.fspath(python), "-m", "venv", "--without-pip", venv], check=True)
    env = {
        **_path_first(python),
        "VIRTUAL_ENV": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-py"),
    }
    with pytest.raises(RuntimeProvisionError, match="downloads are disabled"):
        choose_interpreter("cpython@3.12", "managed", env=env)
    choice = choose_interpreter("cpython@3.12", "auto", env=env)
    assert choice.source == "local"


# ---------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("impl", "expected"),
    [
        ("cpython@3.11", ("cpython", "3.11")),
        ("cpython@3.12.1", ("cpython", "3.12.1")),
        ("CPython@3.13", ("cpython", "3.13")),
        (" cpython@3.10 ", ("cpython", "3.10")),
    ],
)
def test_parse_implementation(impl: str, expected: tuple[str, str]) -> None:
    assert parse_implementation(impl) == expected


@pytest.mark.parametrize(
    ("impl", "message"),
    [
        ("3.11", "expected 'cpython@X.Y'"),
        ("cpython", "expected 'cpython@X.Y'"),
        ("pypy@3.10", "only 'cpython'"),
        ("cpython@3", "expected X.Y or X.Y.Z"),
        ("cpython@3.12.1.4", "expected X.Y or X.Y.Z"),
        ("cpython@3.13t", "expected X.Y or X.Y.Z"),
        ("cpython@", "expected X.Y or X.Y.Z"),
    ],
)
def test_parse_implementation_errors(impl: str, message: str) -> None:
    with pytest.raises(RuntimeProvisionError, match=message):
        parse_implementation(impl)


@pytest.mark.parametrize(
    ("requested", "actual", "ok"),
    [
        ("3.12", "3.12.1", True),
        ("3.12", "3.12.0", True),
        ("3.12", "3.11.9", False),
        ("3.12.1", "3.12.1", True),
        ("3.12.1", "3.12.10", False),
        ("3.13.0", "3.13.0rc2", False),
        ("3.1", "3.12.1", False),
    ],
)
def test_version_matches(requested: str, actual: str, ok: bool) -> None:
    assert version_matches(requested, actual) is ok


def test_pyenv_shims_are_replaced_by_version_bins(tmp_path: Path) -> None:
    """uv aborts discovery on a failing pyenv shim; discovery uses the versions' bins instead."""
    root = tmp_path / "pyenv"
    for version in ("3.10.13", "3.12.1", "3.9.18"):
        (root / "versions" / version / "bin").mkdir(parents=True)
    (root / "versions" / "myenv").symlink_to(root / "versions" / "3.12.1")
    (root / "shims").mkdir()
    path = os.pathsep.join(["/usr/local/bin", str(root / "shims"), "/usr/bin"])
    assert _without_pyenv_shims(path).split(os.pathsep) == [
        "/usr/local/bin",
        str(root / "versions" / "3.12.1" / "bin"),
        str(root / "versions" / "3.10.13" / "bin"),
        str(root / "versions" / "3.9.18" / "bin"),
        "/usr/bin",
    ]
    assert _without_pyenv_shims("/a:/b") == "/a:/b"


# ---------------------------------------------------------------------------------------------
# Choosing interpreters


@pytest.mark.parametrize("xy", ["3.11", "3.12"])
def test_choose_local_discovers_interpreter(xy: str) -> None:
    python = _require(xy)
    choice = choose_interpreter(f"cpython@{xy}", "local", env=_path_first(python))
    assert choice.source == "local"
    assert version_matches(xy, choice.version)
    assert choice.version.count(".") == 2
    assert choice.path is not None and choice.path.is_file()
    assert _under(os.path.realpath(choice.path), _real_prefix(python))
    assert choice.origin == os.fspath(_real_prefix(python))


def test_choose_exact_version() -> None:
    python = _require("3.12")
    found = choose_interpreter("cpython@3.12", "local", env=_path_first(python))
    exact = choose_interpreter(f"cpython@{found.version}", "local", env=_path_first(python))
    assert exact.version == found.version


def _missing_patch_release() -> tuple[Path, str, str]:
    """(python, its X.Y.Z, a 3.12.Z this machine does not have) for the pinned-version tests."""
    python = _require("3.12")
    version = choose_interpreter("cpython@3.12", "local", env=_path_first(python)).version
    return python, version, f"3.12.{int(version.split('.')[2]) + 57}"


def test_exact_pin_missing_here_says_what_differs_and_how_to_use_what_is_here() -> None:
    python, version, pinned = _missing_patch_release()
    with pytest.raises(RuntimeProvisionError) as info:
        choose_interpreter(f"cpython@{pinned}", "local", env=_path_first(python))
    message = str(info.value)
    assert f"the patch release differs ({version} instead of {pinned})" in message
    offered = re.search(rf"--python cpython@{re.escape(pinned)}=(\S+)", message)
    assert offered is not None, message
    assert _real_prefix(Path(offered[1])) == _real_prefix(python)
    assert 'python_implementation = "cpython@3.12"' in message
    with pytest.raises(RuntimeProvisionError, match="patch release differs"):
        choose_interpreter(f"cpython@{pinned}", "auto", env=_path_first(python))


def test_naming_the_exact_pin_accepts_another_patch_release_with_a_warning() -> None:
    python, version, pinned = _missing_patch_release()
    choice = choose_interpreter(
        f"cpython@{pinned}", "local", overrides={f"cpython@{pinned}": python}
    )
    assert (choice.version, choice.requested) == (version, f"cpython@{pinned}")
    assert choice.warning is not None and pinned in choice.warning and version in choice.warning
    # an X.Y key does not acknowledge the pin: the error shows the option that does
    with pytest.raises(RuntimeProvisionError, match=f"--python cpython@{re.escape(pinned)}="):
        choose_interpreter(f"cpython@{pinned}", "local", overrides={"cpython@3.12": python})
    # another X.Y never stands in for a pin
    python311 = _require("3.11")
    with pytest.raises(RuntimeProvisionError, match=f"but cpython@{re.escape(pinned)} was"):
        choose_interpreter(f"cpython@{pinned}", "auto", overrides={f"cpython@{pinned}": python311})
    # a matching interpreter carries no warning
    exact = choose_interpreter(
        f"cpython@{version}", "local", overrides={f"cpython@{version}": python}
    )
    assert exact.warning is None and exact.requested is None


def test_choose_override_path() -> None:
    python = _require("3.12")
    choice = choose_interpreter("cpython@3.12", "local", overrides={"cpython@3.12": python})
    assert choice.source == "local"
    assert choice.version.startswith("3.12.")
    assert _under(os.path.realpath(choice.path), _real_prefix(python))
    # an X.Y override also serves an exact request for a matching X.Y.Z
    exact = choose_interpreter(
        f"cpython@{choice.version}", "auto", overrides={"cpython@3.12": python}
    )
    assert exact == choice


def test_choose_override_venv_python_means_its_base(tmp_path: Path) -> None:
    python = _require("3.12")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", venv], check=True)
    overrides = {"cpython@3.12": venv / "bin" / "python"}
    choice = choose_interpreter("cpython@3.12", "local", overrides=overrides)
    assert choice.origin == os.fspath(_real_prefix(python))
    assert _under(choice.path, _real_prefix(python))


def test_choose_override_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "python3"
    with pytest.raises(RuntimeProvisionError, match="does not exist"):
        choose_interpreter("cpython@3.12", "local", overrides={"cpython@3.12": missing})
    python311 = _require("3.11")
    with pytest.raises(RuntimeProvisionError, match=r"but cpython@3\.12 was requested"):
        choose_interpreter("cpython@3.12", "local", overrides={"cpython@3.12": python311})
    with pytest.raises(RuntimeProvisionError, match="not executable"):
        choose_interpreter("cpython@3.12", "local", overrides={"cpython@3.12": tmp_path})


def test_choose_missing_local_interpreter_explains_the_fix(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "UV_PYTHON_DOWNLOADS": "never"}
    with pytest.raises(RuntimeProvisionError) as info:
        choose_interpreter("cpython@3.9", "local", env=env)
    message = str(info.value)
    assert "cpython@3.9" in message
    assert "--python cpython@3.9=/path/to/python3.9" in message
    assert "download" in message
    with pytest.raises(RuntimeProvisionError, match=re.escape("cpython@3.9")):
        choose_interpreter("cpython@3.9", "auto", env=env)


def test_choose_managed_without_downloads_is_an_error(tmp_path: Path) -> None:
    env = {"UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-py")}
    with pytest.raises(RuntimeProvisionError, match="downloads are disabled"):
        choose_interpreter("cpython@3.12", "managed", env=env)


def test_choose_rejects_unknown_source() -> None:
    with pytest.raises(RuntimeProvisionError, match="unknown Python source"):
        choose_interpreter("cpython@3.12", "conda")


def test_auto_without_downloads_picks_local(tmp_path: Path) -> None:
    python = _require("3.12")
    env = {
        **_path_first(python),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-py"),
    }
    choice = choose_interpreter("cpython@3.12", "auto", env=env)
    assert choice.source == "local"
    assert choice.origin == os.fspath(_real_prefix(python))


# ---------------------------------------------------------------------------------------------
# Building runtimes


def _build(
    tmp_path_factory: pytest.TempPathFactory, choice: InterpreterChoice, name: str
) -> tuple[Path, dict, list[str]]:
    """Build ``choice`` into a fresh directory; returns (dest, metadata, log lines)."""
    dest = tmp_path_factory.mktemp("runtimes") / name
    lines: list[str] = []
    meta = build_runtime(choice, dest, log=lines.append)
    return dest, meta, lines


_BUILT: dict[str, tuple[Path, dict, Path]] = {}


def _pyenv_runtime(xy: str, factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """Build (once per module) a runtime from the machine's non-system Python ``xy``."""
    if xy not in _BUILT:
        python = _require(xy)
        source = _real_prefix(python)
        if os.fspath(source) in ("/usr", "/usr/local", "/"):
            pytest.skip(f"the local Python {xy} lives in a system prefix")
        impl = f"cpython@{xy}"
        choice = choose_interpreter(impl, "local", overrides={impl: python})
        dest, meta, _lines = _build(factory, choice, f"py{xy}")
        _BUILT[xy] = (dest, meta, source)
    return _BUILT[xy]


@pytest.fixture(scope="module", autouse=True)
def _forget_built_runtimes() -> Iterator[None]:
    """Runtimes live in per-session temp dirs; do not leak the cache into another module run."""
    yield
    _BUILT.clear()


@pytest.fixture(scope="module", params=["3.12", "3.11"])
def pyenv_runtime(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict, Path]:
    """A runtime built from the machine's (non-system) interpreter: (dest, metadata, source)."""
    return _pyenv_runtime(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def debian_runtime(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A runtime copied from Debian's /usr/bin/python3.11 (minimal copy of a shared prefix)."""
    if not DEBIAN_PYTHON.exists():
        pytest.skip("no Debian system Python 3.11 here")
    choice = choose_interpreter("cpython@3.11", "local", overrides={"cpython@3.11": DEBIAN_PYTHON})
    dest, meta, _lines = _build(tmp_path_factory, choice, "deb311")
    return dest, meta


@pytest.mark.slow
def test_runtime_metadata_and_layout(pyenv_runtime: tuple[Path, dict, Path]) -> None:
    dest, meta, source = pyenv_runtime
    xy = ".".join(meta["version"].split(".")[:2])
    assert meta["source"] == "local"
    assert meta["implementation"] == "cpython"
    assert meta["origin"] == os.fspath(source)
    assert meta["python"] == "bin/python3"
    assert meta["version"].startswith(xy + ".") and meta["version"].count(".") == 2
    assert meta["missing_modules"] == []
    assert sorted(p.name for p in (dest / "bin").iterdir()) == sorted(
        ["python", "python3", f"python{xy}"]
    )
    assert (dest / "bin" / "python3").is_symlink()
    assert not os.path.isabs(os.readlink(dest / "bin" / "python3"))
    # a clean runtime: nothing from the source's site-packages, no test suite
    assert list((dest / meta["purelib"]).iterdir()) == []
    assert not (dest / meta["stdlib"] / "test").exists()
    assert (dest / meta["stdlib"] / "os.py").is_file()


@pytest.mark.slow
def test_runtime_loads_nothing_from_its_source(pyenv_runtime: tuple[Path, dict, Path]) -> None:
    dest, meta, source = pyenv_runtime
    probe = _probe(dest / meta["python"])
    assert probe["base_prefix"] == os.fspath(dest)
    assert [m for m in probe["maps"] if _under(m, source)] == []
    libpython = [m for m in probe["maps"] if "/libpython" in m]
    assert libpython and all(_under(m, dest) for m in libpython)
    assert all(_under(p, dest) for p in probe["paths"].values())
    assert probe["libdir"] == os.fspath(dest / "lib")


@pytest.mark.slow
def test_runtime_elf_runpaths_are_relative(pyenv_runtime: tuple[Path, dict, Path]) -> None:
    dest, _meta, source = pyenv_runtime
    from kernelstacks.build.elf import read_elf_dynamic
    from kernelstacks.build.runtime_relocate import iter_elf_files

    checked = 0
    for elf in iter_elf_files(dest):
        info = read_elf_dynamic(elf)
        rpath = ":".join([*(info.rpath or ()), *(info.runpath or ())]) if info else ""
        assert os.fspath(source) not in rpath, (elf, rpath)
        checked += 1
    assert checked > 20


@pytest.mark.slow
def test_runtime_sysconfig_mentions_no_source_path(pyenv_runtime: tuple[Path, dict, Path]) -> None:
    dest, meta, source = pyenv_runtime
    (data,) = (dest / meta["stdlib"]).glob("_sysconfigdata_*.py")
    assert os.fspath(source) not in data.read_text()


@pytest.mark.slow
def test_runtime_stdlib_is_precompiled(pyenv_runtime: tuple[Path, dict, Path]) -> None:
    dest, meta, _source = pyenv_runtime
    cache = dest / meta["stdlib"] / "__pycache__"
    (pyc,) = cache.glob("os.cpython-*.pyc")
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, unchecked (PEP 552)
    (sysconfigdata,) = cache.glob("_sysconfigdata_*.pyc")
    assert int.from_bytes(sysconfigdata.read_bytes()[4:8], "little") == 0b11  # checked


@pytest.mark.slow
def test_runtime_is_relocatable(pyenv_runtime: tuple[Path, dict, Path], tmp_path: Path) -> None:
    dest, meta, source = pyenv_runtime
    moved = tmp_path / "elsewhere" / "runtime"
    shutil.copytree(dest, moved, symlinks=True)
    probe = _probe(moved / meta["python"])
    assert probe["base_prefix"] == os.fspath(moved)
    assert [m for m in probe["maps"] if _under(m, source) or _under(m, dest)] == []
    assert all(_under(p, moved) for p in probe["paths"].values())
    assert probe["libdir"] == os.fspath(moved / "lib")


@pytest.mark.slow
def test_venv_on_moved_runtime(pyenv_runtime: tuple[Path, dict, Path], tmp_path: Path) -> None:
    dest, meta, _source = pyenv_runtime
    moved = tmp_path / "runtime"
    shutil.copytree(dest, moved, symlinks=True)
    venv = tmp_path / "venv"
    subprocess.run([moved / meta["python"], "-m", "venv", "--without-pip", venv], check=True)
    probe = _probe(venv / "bin" / "python")
    assert probe["prefix"] == os.fspath(venv)
    assert probe["base_prefix"] == os.fspath(moved)
    assert all(not _under(m, dest) for m in probe["maps"])


@pytest.mark.slow
def test_uv_installs_into_venv_on_runtime(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dest, meta, _source = _pyenv_runtime("3.12", tmp_path_factory)
    venv = tmp_path / "venv"
    subprocess.run([dest / meta["python"], "-m", "venv", "--without-pip", venv], check=True)
    run_uv(["pip", "install", "--python", venv / "bin" / "python", "six"])
    out = subprocess.run(
        [venv / "bin" / "python", "-c", "import six, sys; print(six.__file__, sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert _under(out[0], venv)
    assert out[1] == os.fspath(dest)


@pytest.mark.slow
def test_debian_system_python_minimal_copy(
    debian_runtime: tuple[Path, dict], tmp_path: Path
) -> None:
    dest, meta = debian_runtime
    assert meta["layout"] == "system-minimal"
    assert meta["origin"] == "/usr"
    assert sorted(p.name for p in dest.iterdir()) == ["bin", "include", "lib", "local"]
    moved = tmp_path / "moved"
    shutil.copytree(dest, moved, symlinks=True)
    for runtime in (dest, moved):
        probe = _probe(runtime / "bin" / "python3")
        assert probe["base_prefix"] == os.fspath(runtime)
        owned = [Path("/usr/lib/python3.11"), DEBIAN_PYTHON]
        assert [m for m in probe["maps"] if any(_under(m, o) for o in owned)] == []
        assert _under(probe["paths"]["purelib"], runtime)
        assert _under(probe["paths"]["include"], runtime)
    venv = tmp_path / "venv"
    subprocess.run([moved / "bin" / "python3", "-m", "venv", "--without-pip", venv], check=True)
    assert _probe(venv / "bin" / "python")["base_prefix"] == os.fspath(moved)


@pytest.mark.slow
def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    python = _require("3.12")
    choice = choose_interpreter("cpython@3.12", "local", overrides={"cpython@3.12": python})

    def cancel(message: str) -> None:
        if message.startswith("runtime copy"):
            raise KeyboardInterrupt  # e.g. the user pressed Ctrl-C after the copy

    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        build_runtime(choice, fresh, compile_bytecode=False, log=cancel)
    assert not fresh.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(KeyboardInterrupt):
        build_runtime(choice, existing, compile_bytecode=False, log=cancel)
    assert existing.is_dir() and list(existing.iterdir()) == []
    (existing / "file").write_text("x")
    with pytest.raises(RuntimeProvisionError, match="not empty"):
        build_runtime(choice, existing)
    assert (existing / "file").read_text() == "x"


def test_build_rejects_stale_choice(tmp_path: Path) -> None:
    python = _require("3.12")
    stale = InterpreterChoice(source="local", version="3.12.999", path=python, origin="x")
    with pytest.raises(RuntimeProvisionError, match="choose the interpreter again"):
        build_runtime(stale, tmp_path / "rt")
    assert not (tmp_path / "rt").exists()


# ---------------------------------------------------------------------------------------------
# Managed source, offline: a python-build-standalone-style archive served by a downloads JSON


@pytest.fixture(scope="module")
def downloads_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A uv downloads JSON offering our 3.12 runtime as an ``install_only`` archive."""
    dest, meta, _source = _pyenv_runtime("3.12", tmp_path_factory)
    major, minor, patch = (int(p) for p in meta["version"].split("."))
    base = tmp_path_factory.mktemp("mirror")
    archive = base / f"cpython-{meta['version']}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(dest, arcname="python")
    key = f"cpython-{meta['version']}-linux-x86_64-gnu"
    entry = {
        "name": "cpython",
        "arch": {"family": "x86_64", "variant": None},
        "os": "linux",
        "libc": "gnu",
        "major": major,
        "minor": minor,
        "patch": patch,
        "prerelease": "",
        "url": archive.as_uri(),
        "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "variant": None,
    }
    path = base / "downloads.json"
    path.write_text(json.dumps({key: entry}))
    return path, meta["version"]


def _managed_env(json_path: Path, install_dir: Path, downloads: str) -> dict[str, str]:
    """uv settings for the offline managed source."""
    return {
        "UV_PYTHON_DOWNLOADS": downloads,
        "UV_PYTHON_DOWNLOADS_JSON_URL": os.fspath(json_path),
        "UV_PYTHON_INSTALL_DIR": os.fspath(install_dir),
    }


@pytest.mark.slow
def test_auto_never_does_not_install_even_with_a_mirror(
    downloads_json: tuple[Path, str], tmp_path: Path
) -> None:
    json_path, version = downloads_json
    xy = ".".join(version.split(".")[:2])
    python = _require(xy)
    install_dir = tmp_path / "uv-py"
    env = {**_managed_env(json_path, install_dir, "never"), **_path_first(python)}
    choice = choose_interpreter(f"cpython@{xy}", "auto", env=env)
    assert choice.source == "local"
    assert not install_dir.exists() or not any(install_dir.iterdir())


@pytest.mark.slow
def test_managed_runtime_from_downloads_json(
    downloads_json: tuple[Path, str],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    json_path, version = downloads_json
    xy = ".".join(version.split(".")[:2])
    install_dir = tmp_path / "uv-py"
    env = _managed_env(json_path, install_dir, "automatic")
    choice = choose_interpreter(f"cpython@{xy}", "auto", env=env)
    assert choice.source == "managed"
    assert choice.origin == MANAGED_ORIGIN
    assert choice.version == version
    assert _under(os.path.realpath(choice.path), Path(os.path.realpath(install_dir)))
    # installed now: an explicit managed request finds it without downloading
    again = choose_interpreter(
        f"cpython@{version}", "managed", env={**env, "UV_PYTHON_DOWNLOADS": "never"}
    )
    assert again.version == version

    dest, meta, _lines = _build(tmp_path_factory, choice, "managed")
    assert meta["source"] == "managed" and meta["origin"] == MANAGED_ORIGIN
    moved = tmp_path / "moved"
    shutil.copytree(dest, moved, symlinks=True)
    probe = _probe(moved / "bin" / "python3")
    assert probe["base_prefix"] == os.fspath(moved)
    assert [m for m in probe["maps"] if _under(m, Path(os.path.realpath(install_dir)))] == []
    assert probe["libdir"] == os.fspath(moved / "lib")
    (data,) = (dest / meta["stdlib"]).glob("_sysconfigdata_*.py")
    assert os.fspath(install_dir) not in data.read_text()


@pytest.mark.slow
def test_pinned_runtime_builds_offline_from_another_patch_release_when_named(
    tmp_path: Path,
) -> None:
    """The machine has 3.12.Z, the stack pins another 3.12 patch release: the error says how to
    point at the interpreter; naming it for the pin builds, with the warning printed and recorded
    in the runtime's venvstacks_layer.json and build state."""
    python, version, pinned = _missing_patch_release()
    body = f"""
    [[runtimes]]
    name = "cpython-3.12"
    python_implementation = "cpython@{pinned}"
    requirements = []

    [[applications]]
    name = "app"
    launch_module = "app.py"
    runtime = "cpython-3.12"
    requirements = []
    """
    spec = write_spec(tmp_path / "stack", body, modules=("app.py",))
    refused = ks("build", spec, "--lock-if-needed", check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"patch release differs ({version} instead of {pinned})" in said, said
    assert f"--python cpython@{pinned}=" in said

    built = ks("build", spec, "--lock-if-needed", "--python", f"cpython@{pinned}={python}")
    said = built.stdout + built.stderr
    assert re.search(rf"warning: cpython-3\.12: cpython@{re.escape(pinned)} is pinned", said), said
    runtime = tmp_path / "stack" / "_build" / "cpython-3.12"
    metadata = json.loads((runtime / LAYER_METADATA).read_text(encoding="utf-8"))
    recorded = metadata["kernelstacks"]["runtime"]
    assert metadata["py_version"] == version
    assert recorded["requested"] == f"cpython@{pinned}"
    assert len(recorded["warnings"]) == 1 and version in recorded["warnings"][0]
    assert read_state(runtime)["runtime"]["warnings"] == recorded["warnings"]
    app_python = tmp_path / "stack" / "_build" / "app-app" / "bin" / "python"
    assert _probe(app_python)["base_prefix"] == os.fspath(runtime)
