"""Lock trees move between venvstacks 0.8 and kernelstacks unchanged, checked against venvstacks.

One stack (a dotted runtime name, a versioned framework on another framework with a linux_target,
a versioned app with a package launch module and a support module, Windows-only dependencies,
packages shared with lower layers) is locked once by venvstacks and once by kernelstacks:

* venvstacks' tree is read as it is: ``show`` calls every lock valid, ``lock --if-needed`` and
  even a full ``lock`` change no file under ``requirements/``, and ``build`` installs from it;
* kernelstacks' tree is venvstacks' tree: the same files, byte for byte except the two header
  lines naming the tool, and venvstacks' ``show`` calls every lock valid.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import json_events, ks, run_py
from kernelstacks_kernel.contract import SHARED_PACKAGE_MARKER
from venvstacks_peer import (
    contents,
    layer_validity,
    make_peer,
    peer_python,
    seed_runtime,
    snapshot,
    venvstacks,
)

pytestmark = pytest.mark.slow

STACK = """\
[tool.uv]
exclude-newer = "2025-06-01T00:00:00Z"

[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@{version}"
requirements = ["idna"]

[[frameworks]]
name = "http"
runtime = "cpython-3.11"
macosx_target = "11.0"
requirements = ["httpx"]

[[frameworks]]
name = "util"
frameworks = ["http"]
versioned = true
linux_target = "glibc@2.17"
requirements = ["attrs", "six; sys_platform == 'win32'"]

[[applications]]
name = "demo"
launch_module = "demo"
support_modules = ["helper.py"]
frameworks = ["util", "http"]
versioned = true
requirements = ["tabulate", "idna", "attrs", "colorama; sys_platform == 'win32'"]

[[applications]]
name = "plain"
launch_module = "plain.py"
runtime = "cpython-3.11"
platforms = ["linux_x86_64", "win_amd64"]
requirements = ["six"]
"""

LAYERS = ["cpython-3.11", "framework-http", "framework-util", "app-demo", "app-plain"]


@pytest.fixture(scope="module")
def python311() -> tuple[Path, str]:
    """A local CPython 3.11 and its full version."""
    python = local_python("3.11")
    if python is None:
        pytest.skip("no CPython 3.11 on this machine")
    proc = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return python, proc.stdout.strip()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory, python311: tuple[Path, str]) -> Path:
    """venvstacks 0.8.0b2 in its own venv."""
    return make_peer(tmp_path_factory.mktemp("peer"), python311[0])


def write_stack(folder: Path, version: str) -> Path:
    """The stack file and its modules (a package launch module with a stray ``__pycache__``)."""
    folder.mkdir(parents=True, exist_ok=True)
    package = folder / "demo"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import helper, tabulate, httpx, attrs\nhelper.hi()\n")
    (package / "__pycache__" / "junk.pyc").write_bytes(b"ignored by both tools")
    (folder / "helper.py").write_text("def hi():\n    print('demo ok')\n")
    (folder / "plain.py").write_text("import six\nprint('plain ok')\n")
    spec = folder / "venvstacks.toml"
    spec.write_text(STACK.format(version=version), encoding="utf-8")
    return spec


def python_option(python311: tuple[Path, str]) -> list[str]:
    return ["--python", f"cpython@3.11={python311[0]}"]


@pytest.fixture(scope="module")
def vs_tree(
    tmp_path_factory: pytest.TempPathFactory, peer: Path, python311: tuple[Path, str]
) -> Path:
    """The stack as venvstacks locks it (its runtime seeded from the local 3.11)."""
    spec = write_stack(tmp_path_factory.mktemp("venvstacks") / "stack", python311[1])
    build = spec.parent / "_vsbuild"
    seed_runtime(build, "cpython-3.11", python311[0])
    venvstacks(peer, "lock", "--build-dir", build, spec)
    return spec


@pytest.fixture(scope="module")
def ks_tree(tmp_path_factory: pytest.TempPathFactory, python311: tuple[Path, str]) -> Path:
    """The same stack as kernelstacks locks it."""
    spec = write_stack(tmp_path_factory.mktemp("kernelstacks") / "stack", python311[1])
    ks("lock", spec, *python_option(python311))
    return spec


def meta_of(requirements: Path, layer: str) -> dict:
    """A layer's lock metadata."""
    return json.loads(next((requirements / layer).glob("pylock.*.meta.json")).read_text())


def finished(stdout: str) -> dict[str, str]:
    return {e["layer"]: e["status"] for e in json_events(stdout) if e["event"] == "layer_finished"}


def without_tool_lines(files: dict[str, bytes]) -> dict[str, bytes]:
    """Lock files without header lines 2-3 (they name the tool that wrote the file)."""
    result = {}
    for name, data in files.items():
        if name.endswith(".toml"):
            lines = data.decode().splitlines(keepends=True)
            assert lines[0].startswith("# Locked requirements for ")
            data = "".join([lines[0], *lines[3:]]).encode()
        result[name] = data
    return result


def test_venvstacks_tree_is_used_as_it_is(
    vs_tree: Path, python311: tuple[Path, str], tmp_path: Path
) -> None:
    requirements = vs_tree.parent / "requirements"
    before = snapshot(requirements)
    assert "cpython-3.11/pylock.cpython-3_11.toml" in before

    shown = json.loads(ks("show", vs_tree, "--json").stdout)
    states = {layer["build_name"]: layer["lock"] for layer in shown["kernelstacks"]["layers"]}
    assert {name: lock["state"] for name, lock in states.items()} == dict.fromkeys(LAYERS, "valid")
    for name in LAYERS:
        meta = json.loads(next((requirements / name).glob("pylock.*.meta.json")).read_text())
        assert states[name]["lock_version"] == meta["lock_version"]
        assert states[name]["locked_at"] == meta["locked_at"] == "2025-06-01T00:00:00+00:00"

    proc = ks("lock", vs_tree, "--if-needed", "--progress-json", *python_option(python311))
    assert finished(proc.stdout) == dict.fromkeys(LAYERS, "valid")
    assert snapshot(requirements) == before

    proc = ks("lock", vs_tree, "--progress-json", *python_option(python311))  # a full relock, too
    assert finished(proc.stdout) == dict.fromkeys(LAYERS, "unchanged")
    assert snapshot(requirements) == before

    build = tmp_path / "build"
    ks("build", vs_tree, "--build-dir", build, *python_option(python311))
    assert snapshot(requirements) == before
    app = build / "app-demo"
    proc = run_py(app / "bin" / "python", "import runpy; runpy.run_module('demo', {}, '__main__')")
    assert "demo ok" in proc.stdout, proc.stderr
    site = app / "lib" / "python3.11" / "site-packages"
    assert list(site.glob("tabulate*"))
    assert not list(site.glob("idna*")) and not list(site.glob("attrs*"))  # lower layers' own
    assert "plain ok" in run_py(build / "app-plain" / "bin" / "python", "import plain").stdout


def test_kernelstacks_tree_is_venvstacks_tree(
    ks_tree: Path, vs_tree: Path, peer: Path, python311: tuple[Path, str]
) -> None:
    ours = contents(ks_tree.parent / "requirements")
    theirs = contents(vs_tree.parent / "requirements")
    assert sorted(ours) == sorted(theirs)  # the same files, none of ours
    assert without_tool_lines(ours) == without_tool_lines(theirs)
    assert (ks_tree.parent / ".kernelstacks" / "locks" / "app-demo.json").is_file()

    build = ks_tree.parent / "_vsbuild"
    seed_runtime(build, "cpython-3.11", python311[0])
    status = json.loads(venvstacks(peer, "show", "--json", "--build-dir", build, ks_tree).stdout)
    validity = layer_validity(status)
    assert sorted(validity) == sorted(LAYERS)
    assert all(valid for valid, _ in validity.values()), validity
    assert validity["app-demo"][1] == "app-demo@1"

    venvstacks(peer, "lock", "--if-needed", "--build-dir", build, ks_tree)
    assert contents(ks_tree.parent / "requirements") == ours


def test_changes_relock_as_venvstacks_expects(
    vs_tree: Path, peer: Path, python311: tuple[Path, str], tmp_path: Path
) -> None:
    copy = tmp_path / "stack"
    shutil.copytree(vs_tree.parent, copy, ignore=shutil.ignore_patterns("_vsbuild"))
    spec = copy / "venvstacks.toml"
    requirements = copy / "requirements"
    before = contents(requirements)

    # The unversioned app's module is not part of its lock's validity (venvstacks' rule); the
    # versioned app's is: it gets a new lock version although its packages stay the same.
    (copy / "plain.py").write_text("import six\nprint('plain changed')\n")
    (copy / "helper.py").write_text("def hi():\n    print('demo changed')\n")
    proc = ks("lock", spec, "--if-needed", "--progress-json", *python_option(python311))
    states = finished(proc.stdout)
    assert states["app-plain"] == "valid"
    assert states["app-demo"] == "locked"
    after = contents(requirements)
    assert after["app-demo/pylock.app-demo.toml"] == before["app-demo/pylock.app-demo.toml"]
    assert (
        after["app-demo/pylock.app-demo.meta.json"] != before["app-demo/pylock.app-demo.meta.json"]
    )
    assert meta_of(requirements, "app-demo")["lock_version"] == 2

    # A new requirement of the versioned framework: its lock and version change, and the layers
    # above it are relocked against it; nothing else changes.
    spec.write_text(spec.read_text().replace('"attrs", "six;', '"attrs", "tabulate", "six;'))
    proc = ks("lock", spec, "--if-needed", "--progress-json", *python_option(python311))
    states = finished(proc.stdout)
    assert states["framework-util"] == "locked"
    assert states["framework-http"] == states["cpython-3.11"] == states["app-plain"] == "valid"
    assert states["app-demo"] == "locked"  # its lower layer changed: relocked against it
    assert meta_of(requirements, "framework-util")["lock_version"] == 2
    demo = tomllib.loads((requirements / "app-demo" / "pylock.app-demo.toml").read_text())
    tabulate = next(p for p in demo["packages"] if p["name"] == "tabulate")
    assert tabulate["marker"] == SHARED_PACKAGE_MARKER  # now provided by framework-util
    assert meta_of(requirements, "app-demo")["lock_version"] == 3
    for name in ("cpython-3.11", "framework-http", "app-plain"):
        unchanged = {k: v for k, v in contents(requirements).items() if k.startswith(name + "/")}
        assert unchanged == {k: v for k, v in after.items() if k.startswith(name + "/")}

    build = copy / "_vsbuild"
    seed_runtime(build, "cpython-3.11", python311[0])
    status = json.loads(venvstacks(peer, "show", "--json", "--build-dir", build, spec).stdout)
    validity = layer_validity(status)
    assert all(valid for valid, _ in validity.values()), validity
    assert validity["app-demo"][1] == "app-demo@3"
    assert validity["framework-util"][1] == "framework-util@2"


HASH_MODULES = """
import json, sys
from pathlib import Path
from venvstacks._hash_content import hash_module
from venvstacks._source_tree import get_default_source_filter
root = Path(sys.argv[1])
walk = get_default_source_filter(root).walk
print(json.dumps({name: hash_module(root / name, walk_iter=walk) for name in sys.argv[2:]}))
"""


@pytest.mark.parametrize("in_git", [False, True])
def test_module_hashes_are_venvstacks_hashes(peer: Path, tmp_path: Path, in_git: bool) -> None:
    from kernelstacks.lock.source_tree import module_hash

    root = tmp_path / "project"
    package = root / "pkg"
    (package / "sub" / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    (package / "sub" / "mod.py").write_text("y = 2\n")
    (package / "sub" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"cache")
    (package / "notes.log").write_text("ignored in git\n")
    (package / "build").mkdir()
    (package / "build" / "out.txt").write_text("ignored in git\n")
    (package / ".gitkeep").write_text("")
    (root / "single.py").write_text("print('one file')\n")
    if in_git:
        subprocess.run(["git", "init", "-q", root], check=True)
        (root / ".gitignore").write_text("*.log\nbuild/\n")
    names = ["pkg", "single.py", "pkg/sub"]
    expected = peer_python(peer, HASH_MODULES, str(root), *names)
    assert {name: module_hash(root / name, root) for name in names} == expected
    ours = module_hash(package, root)
    (package / "notes.log").write_text("changed")
    assert (module_hash(package, root) == ours) is in_git  # git-ignored files do not count


HASH_LOCK = """
import json, sys
from pathlib import Path
from packaging.requirements import Requirement
from venvstacks.stacks import _hash_pylock_file, _hash_flat_reqs
declared = [str(Requirement(line)) for line in json.loads(sys.argv[2])]
print(json.dumps([_hash_pylock_file(Path(sys.argv[1])), _hash_flat_reqs(declared)]))
"""

LOCK_TEXT = """\
lock-version = "1.0"
created-by = "test"
requires-python = "==3.11.*"

[[packages]]
name = "a-pkg"
version = "1.0.0"
marker = 'sys_platform == "win32" and python_version >= "3.8"'
index = "https://example.invalid/simple"

[[packages.wheels]]
name = "a_pkg-1.0.0-py3-none-any.whl"
url = "https://x.invalid/a.whl"
hashes = { sha256 = "aa", md5 = "bb" }

[[packages.wheels]]
path = "../wheels/a_pkg-1.0.0-cp311-cp311-win_amd64.whl"
hashes = { sha256 = "cc" }

[[packages]]
name = "b"
version = "2.0"
marker = "(sys_platform == 'linux') and sys_platform == 'from_lower_layer'"

[[packages]]
name = "c"
version = "3"
marker = "sys_platform == 'from_lower_layer'"

[[packages]]
name = "d"
version = "4.0.post1"
wheels = [{ url = "file:///opt/wheels/d-4.0.post1-py3-none-any.whl", hashes = { sha256 = "dd" } }]
"""


def test_lock_hashes_are_venvstacks_hashes(peer: Path, tmp_path: Path) -> None:
    from kernelstacks.lock.fingerprints import lock_input_hash, requirements_hash

    lock = tmp_path / "pylock.x.toml"
    lock.write_text(LOCK_TEXT)
    declared = [
        "zeta>=1",
        "Alpha[extra] ; python_version<'3.12'",
        "beta == 1.0",
        "g @ https://x/g.whl",
    ]
    expected = peer_python(peer, HASH_LOCK, str(lock), json.dumps(declared))
    assert [requirements_hash(lock), lock_input_hash(declared)] == expected
