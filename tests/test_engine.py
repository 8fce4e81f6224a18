"""End-to-end: lock and build a real stack (two runtimes, a diamond, versioned layers) and run it.

Everything goes through the CLI with real uv, real PyPI packages and runtimes copied from this
machine's 3.11 and 3.12 interpreters.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import EXCLUDE_NEWER, json_events, ks, probe, python_options, run_py
from helpers import write_spec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        local_python("3.11") is None or local_python("3.12") is None,
        reason="needs local CPython 3.11 and 3.12",
    ),
]

STACK = f"""
[[runtimes]]
name = "cpython-3.12"
python_implementation = "cpython@3.12"
requirements = ["six"]

[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []

[[frameworks]]
name = "base"
runtime = "cpython-3.12"
requirements = ["attrs"]

[[frameworks]]
name = "left"
frameworks = ["base"]
requirements = ["idna==3.7"]
versioned = true

[[frameworks]]
name = "right"
frameworks = ["base"]
requirements = ["certifi"]

[[frameworks]]
name = "old"
runtime = "cpython-3.11"
requirements = ["sniffio"]

[[applications]]
name = "diamond"
launch_module = "apps/diamond.py"
frameworks = ["left", "right"]
requirements = ["idna", "sniffio"]

[[applications]]
name = "packaged"
launch_module = "apps/packaged"
support_modules = ["apps/helper.py"]
runtime = "cpython-3.12"
requirements = []

[[applications]]
name = "legacy"
launch_module = "apps/legacy.py"
frameworks = ["old"]
requirements = []

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""

DIAMOND = """
import sys
import attrs, certifi, idna, six, sniffio
print("args:", sys.argv[1:])
for mod in (attrs, certifi, idna, six, sniffio):
    print(mod.__name__, mod.__file__)
"""


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack, locked and built once per session."""
    root = tmp_path_factory.mktemp("engine") / "stack"
    spec = write_spec(root, STACK)
    (root / "apps").mkdir()
    (root / "apps" / "diamond.py").write_text(DIAMOND)
    (root / "apps" / "legacy.py").write_text("import sys, sniffio; print(sys.version_info[:2])\n")
    (root / "apps" / "helper.py").write_text("GREETING = 'hello from a support module'\n")
    pkg = root / "apps" / "packaged"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import helper\nprint(helper.GREETING)\n")
    ks("lock", spec, *python_options())
    ks("build", spec, *python_options(), "-j", "2")
    return spec


def layer(spec: Path, name: str) -> Path:
    return spec.parent / "_build" / name


def test_sys_path_order_and_base_prefix(built: Path) -> None:
    seen = probe(layer(built, "app-diamond") / "bin" / "python")
    sites = [p for p in seen["path"] if p.endswith("site-packages")]
    names = [Path(p).parents[2].name for p in sites]
    assert names == [
        "app-diamond",
        "framework-left",
        "framework-right",
        "framework-base",
        "cpython-3.12",
    ]
    assert seen["base_prefix"] == str(layer(built, "cpython-3.12"))
    assert seen["prefix"] == str(layer(built, "app-diamond"))
    assert seen["version"].startswith("3.12.")


def test_isolated_mode_keeps_the_chain(built: Path) -> None:
    seen = probe(layer(built, "app-diamond") / "bin" / "python", "-I")
    assert any("framework-base" in p for p in seen["path"])


def test_runtime_loads_nothing_from_its_origin(built: Path) -> None:
    python = layer(built, "cpython-3.12") / "bin" / "python3"
    code = "import ssl, sqlite3, ctypes; print(open('/proc/self/maps').read())"
    proc = run_py(python, code)
    assert proc.returncode == 0, proc.stderr
    origin = str(local_python("3.12").resolve().parents[1])
    libs = {line.split()[-1] for line in proc.stdout.splitlines() if ".so" in line}
    assert not [lib for lib in libs if lib.startswith(origin)]
    assert any(str(layer(built, "cpython-3.12")) in lib for lib in libs)


def test_nothing_installed_twice(built: Path) -> None:
    lock = tomllib.loads(
        (built.parent / "requirements" / "app-diamond" / "pylock.app-diamond.toml").read_text()
    )
    entries = {p["name"]: p for p in lock["packages"]}
    assert "wheels" in entries["sniffio"]
    # listed as venvstacks lists it (disabled: provided by a lower layer), not installed
    assert entries["idna"]["marker"] == "sys_platform == 'from_lower_layer'"
    assert "wheels" not in entries["idna"]
    site = layer(built, "app-diamond") / "lib" / "python3.12" / "site-packages"
    assert not list(site.glob("idna*"))
    assert list(site.glob("sniffio*"))
    proc = ks("run", built, "diamond", "--flag", "x")
    assert "args: ['--flag', 'x']" in proc.stdout
    assert "framework-left" in proc.stdout.split("idna ")[1].splitlines()[0]
    assert "cpython-3.12" in proc.stdout.split("six ")[1].splitlines()[0]


def test_shared_package_gets_lower_version(built: Path) -> None:
    record = json.loads((built.parent / ".kernelstacks" / "locks" / "app-diamond.json").read_text())
    assert record["provided_by_lower"]["idna"] == {"version": "3.7", "layer": "framework-left"}


def test_siblings_are_invisible(built: Path) -> None:
    python = layer(built, "app-packaged") / "bin" / "python"
    proc = run_py(python, "import attrs")
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr
    proc = run_py(layer(built, "framework-right") / "bin" / "python", "import idna")
    assert proc.returncode != 0


def test_launch_package_and_support_module(built: Path) -> None:
    proc = ks("run", built, "packaged")
    assert "hello from a support module" in proc.stdout


def test_second_runtime(built: Path) -> None:
    proc = ks("run", built, "legacy")
    assert "(3, 11)" in proc.stdout
    seen = probe(layer(built, "app-legacy") / "bin" / "python")
    assert seen["base_prefix"] == str(layer(built, "cpython-3.11"))


def test_layer_metadata(built: Path) -> None:
    meta_file = "share/venv/metadata/venvstacks_layer.json"
    meta = json.loads((layer(built, "app-diamond") / meta_file).read_text())
    assert meta["python"] == "bin/python"
    assert meta["launch_module"] == "diamond"
    assert meta["base_python"] == "../cpython-3.12/bin/python3"
    assert meta["site_dir"] == "lib/python3.12/site-packages"
    assert meta["pylib_dirs"][0] == "../framework-left/lib/python3.12/site-packages"
    assert meta["py_version"].startswith("3.12.")
    runtime = json.loads((layer(built, "cpython-3.12") / meta_file).read_text())
    assert runtime["python"] == runtime["base_python"]
    assert runtime["kernelstacks"]["runtime"]["source"] == "local"


def test_versioned_layer_deploy_name(built: Path) -> None:
    data = json.loads(ks("show", built, "--json").stdout)
    left = next(x for x in data["kernelstacks"]["layers"] if x["build_name"] == "framework-left")
    assert left["deploy_name"] == "framework-left@1"
    assert left["lock"]["state"] == "valid"


def test_rebuild_is_a_no_op(built: Path) -> None:
    locks = {p: p.read_bytes() for p in (built.parent / "requirements").rglob("*") if p.is_file()}
    proc = ks("lock", built, "--if-needed", "--progress-json", *python_options())
    states = {e["layer"]: e["status"] for e in json_events(proc.stdout) if "status" in e}
    assert set(states.values()) == {"valid"}
    assert {p: p.read_bytes() for p in locks} == locks
    proc = ks("build", built, "--progress-json", *python_options())
    events = json_events(proc.stdout)
    done = [e for e in events if e["event"] == "layer_finished"]
    assert {e["status"] for e in done} == {"unchanged"}
    assert events[-1]["event"] == "done" and events[-1]["ok"] is True


def test_moved_stack_fails_loudly(built: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(built.parent / "_build", moved, symlinks=True)
    proc = run_py(moved / "app-diamond" / "bin" / "python", "print('ran')")
    assert proc.returncode != 0
    assert "ran" not in proc.stdout
    assert "without redeploying" in proc.stderr


def test_conflicting_requirement_names_both_layers(built: Path, tmp_path: Path) -> None:
    root = tmp_path / "conflict"
    shutil.copytree(built.parent / "requirements", root / "requirements")
    shutil.copytree(built.parent / "apps", root / "apps")
    spec = write_spec(
        root, STACK.replace('requirements = ["idna", "sniffio"]', 'requirements = ["idna==3.6"]')
    )
    proc = ks("lock", spec, "--if-needed", *python_options(), check=False)
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    assert "app-diamond" in text and "idna" in text and "framework-left" in text
    assert "Traceback" not in text
