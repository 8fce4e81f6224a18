"""Editing a layer's requirements in the stack file (``kernelstacks add|remove``)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from helpers import write_spec
from kernelstacks._support.errors import KernelstacksError, SpecError
from kernelstacks.spec import StackSpec, edit, load_spec
from kernelstacks.spec.edit import edit_requirements

BODY = """
# The stack, with comments the edit must keep.
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.11"
requirements = [
    "numpy>=1.26",  # pinned for the demo
    "six",
]

[[applications]]
name = "app"
launch_module = "app.py"
runtime = "rt"
requirements = []
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    return write_spec(tmp_path, BODY, modules=("app.py",))


def test_add_replace_and_remove_keep_comments(spec: Path) -> None:
    layer, changes = edit_requirements(spec, "rt", add=["idna", "six==1.16.0"], remove=["numpy"])
    assert layer.build_name == "rt"
    assert changes == ["+ idna", "six -> six==1.16.0", "- numpy>=1.26"]
    assert load_spec(spec).layer("rt").requirements == ("six==1.16.0", "idna")
    text = spec.read_text(encoding="utf-8")
    assert "# The stack, with comments the edit must keep." in text
    assert [p.name for p in spec.parent.iterdir() if p.name.startswith(".")] == []


def test_layer_by_build_name_and_no_change_leaves_the_file_alone(spec: Path) -> None:
    before = spec.read_bytes()
    layer, changes = edit_requirements(spec, "app-app", add=[])
    assert (layer.name, changes) == ("app", [])
    _, changes = edit_requirements(spec, "rt", add=["six"])
    assert changes == []
    assert spec.read_bytes() == before


def test_unknown_layer_and_requirement_are_explained(spec: Path) -> None:
    with pytest.raises(KernelstacksError, match="no layer named 'rtt'; did you mean 'rt'"):
        edit_requirements(spec, "rtt", add=["six"])
    with pytest.raises(KernelstacksError, match="has no requirement named 'idna'"):
        edit_requirements(spec, "rt", remove=["idna"])
    with pytest.raises(KernelstacksError, match="invalid requirement 'six>=>1'"):
        edit_requirements(spec, "rt", add=["six>=>1"])


def test_edit_keeps_the_file_mode(spec: Path) -> None:
    spec.chmod(0o664)
    edit_requirements(spec, "rt", add=["idna"])
    assert stat.S_IMODE(spec.stat().st_mode) == 0o664


def test_edit_that_fails_validation_leaves_the_original(
    spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = spec.read_bytes()
    checked: list[Path] = []

    def refuse_new_text(path: str | Path) -> StackSpec:
        checked.append(Path(path))
        if Path(path) != spec:
            raise SpecError([])
        return load_spec(path)

    monkeypatch.setattr(edit, "load_spec", refuse_new_text)
    with pytest.raises(SpecError):
        edit_requirements(spec, "rt", add=["idna"])
    assert spec.read_bytes() == before
    assert checked[-1].parent == spec.parent  # validated beside the original (relative paths)
    assert [p.name for p in spec.parent.iterdir() if p.name.startswith(".")] == []
