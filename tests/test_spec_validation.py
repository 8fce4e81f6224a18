"""Table-driven validation tests: each bad stack file gives one clear, located problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import BASE_RUNTIME, write_spec
from kernelstacks._support.errors import SpecError
from kernelstacks.spec import load_spec

FW = """
[[frameworks]]
name = "fw"
runtime = "rt"
requirements = []
"""

# (id, spec body, expected substrings in ONE problem, expected key, expected line or None)
CASES = [
    (
        "toml-syntax",
        '[[runtimes]]\nname = "rt"\nrequirements = [1,\n',
        ["TOML syntax error"],
        None,
        None,
    ),
    (
        "toml-syntax-line-col",
        '[[runtimes]]\nname = "rt" "x"\n',
        ["TOML syntax error"],
        None,
        2,
    ),
    (
        "unknown-key-did-you-mean",
        BASE_RUNTIME + FW.replace("requirements = []", "requirements = []\nplatfroms = []"),
        ["unknown key 'platfroms'", "did you mean 'platforms'"],
        "platfroms",
        11,
    ),
    (
        "unknown-top-level",
        "[[runtime]]\nname='x'\n" + BASE_RUNTIME,
        ["unknown top-level key 'runtime'", "did you mean 'runtimes'"],
        "runtime",
        None,
    ),
    (
        "missing-requirements",
        '[[runtimes]]\nname = "rt"\npython_implementation = "cpython@3.11"\n',
        ["missing required key 'requirements'"],
        "requirements",
        1,
    ),
    (
        "missing-python-implementation",
        '[[runtimes]]\nname = "rt"\nrequirements = []\n',
        ["missing required key 'python_implementation'"],
        "python_implementation",
        None,
    ),
    (
        "missing-name",
        '[[runtimes]]\npython_implementation = "cpython@3.11"\nrequirements = []\n',
        ["missing required key 'name'", "runtimes[0]"],
        "name",
        None,
    ),
    (
        "string-instead-of-list",
        BASE_RUNTIME.replace("requirements = []", 'requirements = "numpy"'),
        ["must be a list of strings, not a string", '["numpy"]'],
        "requirements",
        5,
    ),
    (
        "versioned-yes",
        BASE_RUNTIME + 'versioned = "yes"\n',
        ["must be true or false", "'yes'"],
        "versioned",
        6,
    ),
    (
        "list-item-wrong-type",
        BASE_RUNTIME.replace("requirements = []", 'requirements = ["six", 3]'),
        ["item 2 must be a string"],
        "requirements",
        None,
    ),
    (
        "invalid-pep508",
        BASE_RUNTIME.replace("requirements = []", 'requirements = ["numpy>=>1"]'),
        ["invalid requirement 'numpy>=>1'"],
        "requirements",
        None,
    ),
    (
        "invalid-implementation",
        BASE_RUNTIME.replace("cpython@3.11", "python3.11"),
        ["invalid python_implementation 'python3.11'", "cpython@X.Y"],
        "python_implementation",
        4,
    ),
    (
        "duplicate-names",
        BASE_RUNTIME + BASE_RUNTIME,
        ["duplicate layer name 'rt'"],
        "name",
        8,
    ),
    (
        "unknown-runtime-ref",
        BASE_RUNTIME + FW.replace('runtime = "rt"', 'runtime = "rtt"'),
        ["unknown runtime 'rtt'", "did you mean 'rt'"],
        "runtime",
        None,
    ),
    (
        "runtime-ref-is-framework",
        BASE_RUNTIME
        + FW
        + FW.replace('name = "fw"', 'name = "fw2"').replace('runtime = "rt"', 'runtime = "fw"'),
        ["'fw' is a framework layer, not a runtime layer"],
        "runtime",
        None,
    ),
    (
        "unknown-framework-ref",
        BASE_RUNTIME
        + FW
        + '[[applications]]\nname = "app"\nlaunch_module = "app.py"\nframeworks = ["fx"]\n'
        "requirements = []\n",
        ["unknown framework 'fx'", "did you mean 'fw'"],
        "frameworks",
        None,
    ),
    (
        "runtime-and-frameworks",
        BASE_RUNTIME + FW + FW.replace('name = "fw"', 'name = "g"') + 'frameworks = ["fw"]\n',
        ["either 'runtime' or 'frameworks', not both"],
        "frameworks",
        None,
    ),
    (
        "neither-runtime-nor-frameworks",
        BASE_RUNTIME + '[[frameworks]]\nname = "fw"\nrequirements = []\n',
        ["missing 'runtime' or 'frameworks'"],
        None,
        None,
    ),
    (
        "cycle",
        BASE_RUNTIME
        + '[[frameworks]]\nname = "a"\nframeworks = ["b"]\nrequirements = []\n'
        + '[[frameworks]]\nname = "b"\nframeworks = ["a"]\nrequirements = []\n',
        ["dependency cycle", "'a' -> 'b' -> 'a'"],
        "frameworks",
        None,
    ),
    (
        "self-cycle",
        BASE_RUNTIME + '[[frameworks]]\nname = "a"\nframeworks = ["a"]\nrequirements = []\n',
        ["dependency cycle", "'a' -> 'a'"],
        "frameworks",
        None,
    ),
    (
        "c3-conflict",
        BASE_RUNTIME
        + FW.replace('"fw"', '"x"')
        + FW.replace('"fw"', '"y"')
        + '[[frameworks]]\nname = "xy"\nframeworks = ["x", "y"]\nrequirements = []\n'
        + '[[frameworks]]\nname = "yx"\nframeworks = ["y", "x"]\nrequirements = []\n'
        + '[[frameworks]]\nname = "bad"\nframeworks = ["xy", "yx"]\nrequirements = []\n',
        ["C3 conflict", "[x, y", "[y, x"],
        "frameworks",
        None,
    ),
    (
        "different-runtimes",
        BASE_RUNTIME
        + BASE_RUNTIME.replace('"rt"', '"rt2"')
        + FW.replace('"fw"', '"x"')
        + FW.replace('"fw"', '"y"').replace('runtime = "rt"', 'runtime = "rt2"')
        + '[[frameworks]]\nname = "both"\nframeworks = ["x", "y"]\nrequirements = []\n',
        ["different runtimes", "'x' uses 'rt'", "'y' uses 'rt2'"],
        "frameworks",
        None,
    ),
    (
        "unknown-platform",
        BASE_RUNTIME + 'platforms = ["linux_x86_65"]\n',
        ["unknown platform 'linux_x86_65'", "did you mean 'linux_x86_64'"],
        "platforms",
        None,
    ),
    (
        "platform-missing-in-lower",
        BASE_RUNTIME + 'platforms = ["linux_x86_64"]\n' + FW + 'platforms = ["win_amd64"]\n',
        ["platform 'win_amd64' is not built by lower layer 'rt'"],
        "platforms",
        None,
    ),
    (
        "launch-module-missing",
        BASE_RUNTIME + '[[applications]]\nname = "app"\nlaunch_module = "nope.py"\nruntime = "rt"\n'
        "requirements = []\n",
        ["module 'nope.py' not found"],
        "launch_module",
        None,
    ),
    (
        "launch-module-required",
        BASE_RUNTIME + '[[applications]]\nname = "app"\nruntime = "rt"\nrequirements = []\n',
        ["missing required key 'launch_module'"],
        "launch_module",
        None,
    ),
    (
        "module-clash",
        BASE_RUNTIME + '[[applications]]\nname = "app"\nlaunch_module = "app.py"\nruntime = "rt"\n'
        'support_modules = ["lib/app.py"]\nrequirements = []\n',
        ["module name 'app'", "clashes"],
        "support_modules",
        None,
    ),
    (
        "launch-module-not-importable",
        BASE_RUNTIME
        + '[[applications]]\nname = "app"\nlaunch_module = "my-app.py"\nruntime = "rt"\n'
        "requirements = []\n",
        ["Python cannot import"],
        "launch_module",
        None,
    ),
    (
        "launch-package-without-main",
        BASE_RUNTIME + '[[applications]]\nname = "app"\nlaunch_module = "nomain"\nruntime = "rt"\n'
        "requirements = []\n",
        ["no __main__.py"],
        "launch_module",
        None,
    ),
    (
        "launch-module-on-framework",
        BASE_RUNTIME + FW + 'launch_module = "app.py"\n',
        ["'launch_module' is not valid in [[frameworks]]"],
        "launch_module",
        None,
    ),
    (
        "bad-name",
        BASE_RUNTIME.replace('name = "rt"', 'name = "rt/1"'),
        ["invalid name 'rt/1'"],
        "name",
        None,
    ),
    (
        "unknown-tool-key",
        BASE_RUNTIME + "[tool.kernelstacks]\nkernal = []\n",
        ["unknown key 'kernal'", "did you mean 'kernels'"],
        "kernal",
        None,
    ),
    (
        "unknown-index",
        BASE_RUNTIME + 'priority_indexes = ["pytorch-cu"]\n'
        "[[tool.uv.index]]\nname = 'pytorch-cpu'\nurl = 'https://example.invalid/simple'\n",
        ["unknown index 'pytorch-cu'", "did you mean 'pytorch-cpu'"],
        "priority_indexes",
        None,
    ),
    (
        "linux-target",
        BASE_RUNTIME + 'linux_target = "glib2.17"\n',
        ["invalid linux_target"],
        "linux_target",
        None,
    ),
    (
        "empty-frameworks",
        BASE_RUNTIME + '[[frameworks]]\nname = "fw"\nframeworks = []\nrequirements = []\n',
        ["'frameworks' is empty"],
        "frameworks",
        None,
    ),
    (
        "sections-not-array",
        BASE_RUNTIME + "[frameworks]\nname = 'x'\n",
        ["must be an array of tables"],
        "frameworks",
        None,
    ),
    (
        "no-layers",
        "[tool.kernelstacks]\nname = 'x'\n",
        ["no layers"],
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("body", "needles", "key", "line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_validation_case(
    tmp_path: Path, body: str, needles: list[str], key: str | None, line: int | None
) -> None:
    spec = write_spec(tmp_path, body, modules=("app.py", "lib/app.py", "my-app.py"))
    (tmp_path / "nomain").mkdir()
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    matching = [p for p in info.value.problems if all(n in str(p) for n in needles)]
    assert matching, f"no problem contains {needles}: {[str(p) for p in info.value.problems]}"
    problem = matching[0]
    assert problem.file == str(spec)
    if key is not None:
        assert problem.key == key
    if line is not None:
        assert problem.line == line, str(problem)
    assert "Traceback" not in str(info.value)


def test_every_problem_reported_in_one_run(tmp_path: Path) -> None:
    body = """
    [[runtimes]]
    name = "rt"
    python_implementation = "cpython@3"
    requirements = "numpy"
    versioned = "yes"

    [[frameworks]]
    name = "scipy"
    runtime = "rtt"
    requirements = ["scipy>=>1"]
    platfroms = []

    [[applications]]
    name = "app"
    launch_module = "missing.py"
    frameworks = ["scipyy"]
    requirements = []
    """
    spec = write_spec(tmp_path, body)
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    keys = [p.key for p in info.value.problems]
    for expected in [
        "python_implementation",
        "requirements",
        "versioned",
        "runtime",
        "platfroms",
        "launch_module",
        "frameworks",
    ]:
        assert expected in keys, keys
    layers = {p.layer for p in info.value.problems}
    assert {"runtime 'rt'", "framework 'scipy'", "application 'app'"} <= layers
    lines = [p.line for p in info.value.problems]
    assert lines == sorted(lines)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.toml")


def test_deprecated_fully_versioned_name_is_accepted(tmp_path: Path) -> None:
    body = BASE_RUNTIME.replace("python_implementation", "fully_versioned_name")
    stack = load_spec(write_spec(tmp_path, body))
    assert stack.layer("rt").python_implementation == "cpython@3.11"
    assert any("fully_versioned_name" in w for w in stack.warnings)
