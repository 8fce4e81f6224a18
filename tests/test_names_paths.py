"""Layer names and the paths made from them can never leave the build directory.

Issue 15, item 1: a runtime named ``.`` deleted the whole build directory (a user's file in it
too), ``..`` wrote a lock into the stack root, ``"app\\n"`` made ``app-app\\n`` and a 300-character
name failed halfway with ENAMETOOLONG. Names are now refused at load time, and every path the
build writes goes through :func:`kernelstacks._support.paths.inside`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import ks
from helpers import BASE_RUNTIME, write_spec
from kernelstacks._support.errors import SpecError
from kernelstacks._support.paths import OutsideError, inside, max_name_bytes
from kernelstacks.spec import load_spec

FW = '[[frameworks]]\nname = "{name}"\nruntime = "rt"\nrequirements = []\n'


def _spec_with_framework(directory: Path, name: str) -> Path:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return write_spec(directory, BASE_RUNTIME + FW.format(name=escaped))


@pytest.mark.parametrize(
    "name", [".", "..", "app\n", "a/b", "a\\b", "\x00x", "x\x7f", " x", "x ", "", "a" * 300]
)
def test_unsafe_names_are_spec_errors_naming_layer_and_key(tmp_path: Path, name: str) -> None:
    path = _spec_with_framework(tmp_path, name)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem.file == str(path) and problem.key == "name"
    assert problem.layer and problem.layer.startswith("framework")
    assert "\n" not in problem.layer


def test_name_length_limit_comes_from_the_file_system(tmp_path: Path) -> None:
    limit = max_name_bytes(tmp_path / "_build")
    assert limit == os.pathconf(tmp_path, "PC_NAME_MAX") - 64
    fits = "f" * (limit - len("framework-"))
    load_spec(_spec_with_framework(tmp_path / "ok", fits))
    with pytest.raises(SpecError, match="too long"):
        load_spec(_spec_with_framework(tmp_path / "long", fits + "x"))


def test_names_differing_only_in_case_collide(tmp_path: Path) -> None:
    body = BASE_RUNTIME + FW.format(name="Data") + FW.format(name="data")
    with pytest.raises(SpecError, match="case-insensitive") as info:
        load_spec(write_spec(tmp_path, body))
    assert info.value.problems[0].layer == "framework 'data'"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=0, max_size=80))
def test_any_accepted_name_stays_one_directory_inside_the_build_dir(
    tmp_path: Path, name: str
) -> None:
    """Whatever the name, it is refused or its build directory is a direct child of _build."""
    work = tmp_path / f"w{abs(hash(name))}"
    try:
        spec = load_spec(_spec_with_framework(work, name))
    except SpecError:
        return
    build_dir = work / "_build"
    for layer in spec.layers.values():
        target = build_dir / layer.build_name
        assert inside(build_dir, target) == target
        assert Path(os.path.normpath(target)).parent == build_dir
        assert len(layer.build_name.encode()) <= max_name_bytes(build_dir)


@given(parts=st.lists(st.sampled_from(["a", "b", ".", "..", "", "/"]), max_size=8))
def test_inside_agrees_with_normalised_paths(parts: list[str]) -> None:
    base = Path("/srv/stack/_build")
    candidate = base.joinpath(*parts) if parts else base
    normal = Path(os.path.normpath(candidate))
    if base in normal.parents:
        assert inside(base, candidate) == normal
    else:
        with pytest.raises(OutsideError, match="not inside"):
            inside(base, candidate)


def test_inside_refuses_a_symlink_leading_out(tmp_path: Path) -> None:
    base = tmp_path / "_build"
    base.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (base / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutsideError, match="leads elsewhere"):
        inside(base, base / "link" / "layer")


@pytest.mark.parametrize("name", [".", ".."])
def test_runtime_named_dot_never_touches_the_build_dir(tmp_path: Path, name: str) -> None:
    """Regression: ``build`` with a runtime named ``.`` deleted ``_build`` and reported success."""
    path = write_spec(tmp_path, BASE_RUNTIME.replace('"rt"', f'"{name}"'))
    keep = tmp_path / "_build" / "notes.txt"
    keep.parent.mkdir()
    keep.write_text("mine")
    proc = ks("build", path, check=False, timeout=120)
    assert proc.returncode != 0
    assert "key 'name'" in proc.stdout + proc.stderr
    assert keep.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_build", "venvstacks.toml"]


APP = """
[[applications]]
name = "app"
runtime = "rt"
requirements = []
launch_module = "{launch}"
support_modules = [{support}]
"""


def _app_spec(stack: Path, launch: str = "main.py", support: str = "", tool: str = "") -> Path:
    (stack / "main.py").parent.mkdir(parents=True, exist_ok=True)
    (stack / "main.py").write_text("print('main')\n")
    return write_spec(stack, BASE_RUNTIME + APP.format(launch=launch, support=support) + tool)


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink", "symlink-in-package"])
@pytest.mark.parametrize("key", ["launch_module", "support_modules"])
def test_modules_outside_the_stack_are_refused(tmp_path: Path, how: str, key: str) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    outside = tmp_path / "outside_mod.py"
    outside.write_text("SECRET = 1\n")
    if how == "relative":
        rel = "../outside_mod.py"
    elif how == "absolute":
        rel = str(outside)
    elif how == "symlink":
        rel = "linked.py"
        (stack / rel).symlink_to(outside)
    else:
        rel = "pkg"
        (stack / rel).mkdir()
        (stack / rel / "__init__.py").write_text("")
        (stack / rel / "__main__.py").write_text("")
        (stack / rel / "leak.txt").symlink_to("/etc/hostname")
    if key == "launch_module":
        path = _app_spec(stack, launch=rel)
    else:
        path = _app_spec(stack, support=f'"{rel}"')
    with pytest.raises(SpecError, match="outside the stack folder") as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem.key == key and problem.layer == "application 'app'"
    assert "modules_outside_stack = true" in problem.message
    tool = "[tool.kernelstacks]\nmodules_outside_stack = true\n"
    if key == "launch_module":
        path = _app_spec(stack, launch=rel, tool=tool)
    else:
        path = _app_spec(stack, support=f'"{rel}"', tool=tool)
    spec = load_spec(path)  # the explicit opt-out accepts it
    assert spec.settings["modules_outside_stack"] is True


def test_symlink_within_the_stack_is_fine(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    (stack / "lib").mkdir(parents=True)
    (stack / "lib" / "helper.py").write_text("X = 1\n")
    (stack / "helper.py").symlink_to(stack / "lib" / "helper.py")
    load_spec(_app_spec(stack, support='"helper.py"'))


def test_layer_and_lock_paths_are_checked_even_past_validation(tmp_path: Path) -> None:
    """The one path check guards writers too, not only the spec loader."""
    from dataclasses import replace

    from kernelstacks.build.engine import BuildOptions, layer_dir
    from kernelstacks.lock.metadata import lock_path, meta_path
    from kernelstacks.lock.records import record_path

    spec = load_spec(_spec_with_framework(tmp_path, "fw"))
    good = spec.layer("framework-fw")
    options = BuildOptions(build_dir=tmp_path / "_build")
    assert layer_dir(options, good) == tmp_path / "_build" / "framework-fw"
    assert lock_path(spec, good).parent == tmp_path / "requirements" / "framework-fw"
    runtime = spec.layer("rt")
    for bad in (".", "..", "../../x"):
        forged = replace(runtime, name=bad)
        with pytest.raises(OutsideError):
            layer_dir(options, forged)
        for path_of in (lock_path, meta_path):
            with pytest.raises(OutsideError):
                path_of(spec, forged)
    with pytest.raises(OutsideError):  # "." and ".." only make odd file names in locks/
        record_path(spec, replace(runtime, name="../../x"))
