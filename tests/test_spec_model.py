"""The stack model: build/deploy names, C3 order, platforms, --include, show --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import BASE_RUNTIME, write_spec
from kernelstacks._support.errors import KernelstacksError
from kernelstacks.spec import load_spec
from kernelstacks.spec.c3 import C3Conflict, c3_merge, linearize
from kernelstacks.spec.fields import PLATFORMS

DIAMOND = (
    BASE_RUNTIME
    + """
[[frameworks]]
name = "base"
runtime = "rt"
requirements = []

[[frameworks]]
name = "left"
frameworks = ["base"]
requirements = []
versioned = true

[[frameworks]]
name = "right"
frameworks = ["base"]
requirements = []
platforms = ["linux_x86_64", "macosx_arm64"]

[[applications]]
name = "top"
launch_module = "top.py"
frameworks = ["left", "right"]
requirements = ["six"]

[[applications]]
name = "solo"
launch_module = "pkg/"
runtime = "rt"
requirements = []

[[frameworks]]
name = "other"
runtime = "rt"
requirements = []
"""
)


@pytest.fixture
def diamond(tmp_path: Path) -> Path:
    return write_spec(tmp_path, DIAMOND, modules=("top.py", "pkg/"))


def test_c3_matches_python_mro() -> None:
    class Base: ...

    class Left(Base): ...

    class Right(Base): ...

    class Top(Left, Right): ...

    parents = {"Top": ["Left", "Right"], "Left": ["Base"], "Right": ["Base"], "Base": []}
    assert linearize("Top", parents.__getitem__) == [c.__name__ for c in Top.__mro__[:-1]]


def test_c3_conflict_shows_orders() -> None:
    with pytest.raises(C3Conflict) as info:
        c3_merge([["x", "y"], ["y", "x"]])
    assert ["x", "y"] in info.value.orders
    assert "x -> y" in str(info.value)


def test_diamond_order_and_names(diamond: Path) -> None:
    stack = load_spec(diamond)
    top = stack.layer("app-top")
    assert top.lower == ("framework-left", "framework-right", "framework-base", "rt")
    assert top.runtime == "rt"
    assert stack.layer("framework-left").deploy_name(3) == "framework-left@3"
    assert stack.layer("framework-left").deploy_name() == "framework-left@1"
    assert stack.layer("framework-base").deploy_name(3) == "framework-base"
    assert stack.layer("app-solo").lower == ("rt",)
    assert stack.layer("app-solo").launch_module_name == "pkg"
    assert stack.layer("rt").platforms == PLATFORMS


def test_platforms_narrowed_to_lower_layers(diamond: Path) -> None:
    stack = load_spec(diamond)
    assert stack.layer("app-top").platforms == ("linux_x86_64", "macosx_arm64")
    assert stack.layer("framework-left").platforms == PLATFORMS


def test_include_keeps_dependencies_and_dependents(diamond: Path) -> None:
    stack = load_spec(diamond)
    names = [layer.build_name for layer in stack.select(["right"])]
    assert names == ["rt", "framework-base", "framework-right", "app-top"]
    names = [layer.build_name for layer in stack.select(["app-s*"])]
    assert names == ["rt", "app-solo"]
    with pytest.raises(KernelstacksError, match="matches no layer"):
        stack.select(["nothing-like-this"])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernelstacks", *args], capture_output=True, text=True
    )


def test_show_json(diamond: Path) -> None:
    result = run_cli("show", str(diamond), "--json", "--include", "top")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    layers = {layer["build_name"]: layer for layer in data["kernelstacks"]["layers"]}
    assert set(layers) == {"rt", "framework-base", "framework-left", "framework-right", "app-top"}
    top = layers["app-top"]
    assert top["kind"] == "application"
    assert top["lower_layers"] == ["framework-left", "framework-right", "framework-base", "rt"]
    assert top["runtime"] == "rt"
    assert top["python_implementation"] == "cpython@3.11"
    assert top["platforms"] == ["linux_x86_64", "macosx_arm64"]
    assert layers["framework-left"]["deploy_name"] == "framework-left@1"
    assert top["lock"]["state"] == "missing"


def test_show_tree(diamond: Path) -> None:
    result = run_cli("show", str(diamond))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("Runtimes", "Frameworks", "Applications"):
        assert title in out
    assert "framework-left -> framework-left@1" in out
    top = out[out.index("app-top") :]
    assert top.index("framework-left") < top.index("framework-right") < top.index("framework-base")
    assert top.index("framework-base") < top.index("rt")


def test_show_errors_are_readable(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, BASE_RUNTIME + 'versioned = "yes"\n')
    result = run_cli("show", str(spec))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "versioned" in result.stderr and "rt" in result.stderr
    result = run_cli("show", str(spec), "--json")
    assert result.returncode == 1
    problem = json.loads(result.stdout)["problems"][0]
    assert problem["key"] == "versioned" and problem["layer"] == "runtime 'rt'"
    result = run_cli("show", str(diamond_missing := tmp_path / "nope.toml"))
    assert result.returncode == 1 and str(diamond_missing) in result.stderr


def test_include_no_match_is_an_error(diamond: Path) -> None:
    result = run_cli("show", str(diamond), "--include", "nothing")
    assert result.returncode == 1
    assert "matches no layer" in result.stderr


def test_kernels_setting_adds_kernel_packages(diamond: Path) -> None:
    text = diamond.read_text() + '\n[tool.kernelstacks]\nkernels = ["top"]\n'
    diamond.write_text(text)
    stack = load_spec(diamond)
    assert stack.layer("app-top").requirements == ("six", "ipykernel", "ipywidgets")
    assert stack.layer("app-solo").requirements == ()


def test_kernels_pattern_must_match_an_app(diamond: Path) -> None:
    from kernelstacks._support.errors import SpecError

    diamond.write_text(diamond.read_text() + '\n[tool.kernelstacks]\nkernels = ["tpo"]\n')
    with pytest.raises(SpecError, match="pattern 'tpo' matches no application; did you mean 'top'"):
        load_spec(diamond)
