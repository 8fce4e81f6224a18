"""Spec parity with venvstacks 0.8: what it accepts loads here, what it rejects is rejected here.

Each case is a stack file of our own, modelled on a case venvstacks 0.8.0b2 tests (its
``tests/stack_specs``) or documents. Our side is checked in the fast tier; the ``network`` test
loads every case with the real venvstacks 0.8.0b2 from PyPI, so the table's claim about what
venvstacks does is itself tested. Where we differ on purpose the case says why (``DIFFERENCES``):
forward references load here, and a few mistakes venvstacks only finds at build time (or never)
are rejected here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import write_spec
from kernelstacks._support.errors import SpecError
from kernelstacks._support.uv import run_uv
from kernelstacks.lock.engine import lock_stack
from kernelstacks.lock.wheels import WheelTargets, check_wheels
from kernelstacks.spec import load_spec

RT = """
[[runtimes]]
name = "cpython-3.13"
python_implementation = "cpython@3.13.7"
requirements = []
"""

INDEXES = """
[[tool.uv.index]]
name = "torch-cpu"
url = "https://example.invalid/whl/cpu"
explicit = true

[[tool.uv.index]]
name = "torch-cu128"
url = "https://example.invalid/whl/cu128"
explicit = true
"""


def fw(name: str, on: str = 'runtime = "cpython-3.13"', extra: str = "") -> str:
    return f'\n[[frameworks]]\nname = "{name}"\n{on}\nrequirements = []\n{extra}\n'


def app(name: str, on: str = 'runtime = "cpython-3.13"', extra: str = "") -> str:
    return (
        f'\n[[applications]]\nname = "{name}"\nlaunch_module = "empty.py"\n{on}\n'
        f"requirements = []\n{extra}\n"
    )


@dataclass(frozen=True)
class Case:
    """One stack file; ``loads`` is what venvstacks 0.8 does with it (and, by default, we do)."""

    id: str
    body: str
    loads: bool
    needles: tuple[str, ...] = ()  # in one of our problems (rejected) or warnings (loaded)
    ours: bool | None = None  # set where we differ on purpose (see DIFFERENCES)


CASES = [
    # -- accepted by venvstacks ------------------------------------------------------------------
    Case(
        "at-sign-in-names",
        RT.replace('"cpython-3.13"', '"cpython@3.13"')
        + fw("layerF@1", 'runtime = "cpython@3.13"', "versioned = true")
        + app("app@2", 'frameworks = ["layerF@1"]'),
        True,
        ("'@' also separates a versioned layer's name",),
    ),
    Case("name-with-space", RT + fw("my layer"), True, ("contains ' '",)),
    Case("runtime-named-like-a-framework", RT.replace('"cpython-3.13"', '"framework-py"'), True),
    Case(
        "runtime-and-framework-build-names-clash",
        RT.replace('"cpython-3.13"', '"framework-py"') + fw("py", 'runtime = "framework-py"'),
        True,
        ("duplicate layer name 'py'",),
        ours=False,
    ),
    Case("linux-target-glibc", RT + 'linux_target = "glibc"\n', True),
    Case("linux-target-glibc-version", RT + 'linux_target = "glibc@2.28"\n', True),
    Case("macosx-target-major-only", RT + 'macosx_target = "14"\n', True),
    Case(
        "platforms-empty-disables",
        RT + fw("off", extra="platforms = []") + app("above", 'frameworks = ["off"]'),
        True,
    ),
    Case(
        "runtime-indexes-overridden",
        RT
        + 'package_indexes = { torcH = "torch-cpu" }\n'
        + app(
            "cuda",
            extra='package_indexes = { Torch = "torch-cu128" }\n'
            'index_overrides = { torch-cpu = "torch-cu128" }',
        )
        + INDEXES,
        True,
    ),
    Case(
        "framework-indexes-overridden",
        RT
        + fw("cpu", extra='package_indexes = { torcH = "torch-cpu" }')
        + fw("cuda", extra='package_indexes = { Torch = "torch-cu128" }')
        + app(
            "both",
            'frameworks = ["cuda", "cpu"]',
            'index_overrides = { torch-cpu = "torch-cu128" }',
        )
        + INDEXES,
        True,
    ),
    Case(
        "app-indexes-overridden",
        RT
        + fw("cpu", extra='package_indexes = { torch = "torch-cpu" }')
        + app(
            "cuda",
            'frameworks = ["cpu"]',
            'package_indexes = { torch = "torch-cu128" }\n'
            'index_overrides = { torch-cpu = "torch-cu128" }',
        )
        + INDEXES,
        True,
    ),
    Case(
        "same-index-inherited-twice",
        RT
        + 'package_indexes = { torch = "torch-cpu" }\n'
        + fw("a")
        + fw("b")
        + app("ab", 'frameworks = ["a", "b"]', 'package_indexes = { torch = "torch-cpu" }')
        + INDEXES,
        True,
    ),
    Case(
        "index-overrides-on-runtime",
        RT + 'index_overrides = { torch-cpu = "torch-cu128" }\n' + INDEXES,
        True,
        ("'index_overrides' has no effect on a runtime",),
    ),
    Case(
        "legacy-fields",
        RT.replace("python_implementation", "fully_versioned_name")
        + "build_requirements = []\n"
        + fw("fw", extra="build_requirements = []"),
        True,
        ("fully_versioned_name",),
    ),
    Case(
        "common-index-sources",
        RT + INDEXES + '[tool.uv.sources]\ntorch = { index = "torch-cpu" }\n',
        True,
    ),
    # -- rejected by venvstacks -------------------------------------------------------------------
    Case(
        "inconsistent-runtime-indexes",
        RT
        + 'package_indexes = { torcH = "torch-cpu" }\n'
        + app("cuda", extra='package_indexes = { Torch = "torch-cu128" }')
        + INDEXES,
        False,
        ("'cpython-3.13' takes it from index 'torch-cpu'", 'index_overrides = { torch-cpu = "'),
    ),
    Case(
        "inconsistent-framework-indexes",
        RT
        + fw("cpu", extra='package_indexes = { torcH = "torch-cpu" }')
        + fw("cuda", extra='package_indexes = { Torch = "torch-cu128" }')
        + app("both", 'frameworks = ["cuda", "cpu"]')
        + INDEXES,
        False,
        (
            "'framework-cuda' takes it from index 'torch-cu128'",
            "'framework-cpu' from index 'torch-cpu'",
            'index_overrides = { torch-cpu = "torch-cu128" }',
        ),
    ),
    Case(
        "inconsistent-app-indexes",
        RT
        + fw("cpu", extra='package_indexes = { torcH = "torch-cpu" }')
        + app("cuda", 'frameworks = ["cpu"]', 'package_indexes = { Torch = "torch-cu128" }')
        + INDEXES,
        False,
        ("lower layer 'framework-cpu'", 'index_overrides = { torch-cpu = "torch-cu128" }'),
    ),
    Case(
        "inherited-conflict-through-a-framework",
        RT
        + fw("cpu", extra='package_indexes = { torch = "torch-cpu" }')
        + fw("on-cpu", 'frameworks = ["cpu"]')
        + fw("cuda", extra='package_indexes = { torch = "torch-cu128" }')
        + app("both", 'frameworks = ["cuda", "on-cpu"]')
        + INDEXES,
        False,
        ("'framework-cpu' from index 'torch-cpu'",),
    ),
    Case(
        "package-index-listed-twice",
        RT + 'package_indexes = { torch = "torch-cpu", Torch = "torch-cu128" }\n' + INDEXES,
        False,
        ("'torch' and 'Torch' are the same package",),
    ),
    Case(
        "unknown-package-index",
        RT + 'package_indexes = { torch = "torch-cpu" }\n',
        False,
        ("unknown index 'torch-cpu'",),
    ),
    Case(
        "unknown-priority-index",
        RT + 'priority_indexes = ["torch-cu"]\n' + INDEXES,
        False,
        ("unknown index 'torch-cu'", "did you mean"),
    ),
    Case(
        "common-source-not-an-index",
        RT + '[tool.uv.sources]\nsix = { git = "https://example.invalid/six.git" }\n',
        False,
        ("source of 'six' must name an index",),
    ),
    Case(
        "common-source-unknown-index",
        RT + INDEXES + '[tool.uv.sources]\ntorch = { index = "torch-gpu" }\n',
        False,
        ("unknown index 'torch-gpu'",),
    ),
    Case(
        "linux-target-bare-version",
        RT + 'linux_target = "2.28"\n',
        False,
        ('write "glibc@2.28"',),
    ),
    Case("linux-target-musl", RT + 'linux_target = "musl"\n', False, ("must be 'glibc'",)),
    Case(
        "linux-target-bad-version",
        RT + 'linux_target = "glibc@235"\n',
        False,
        ("glibc version must be X.Y",),
    ),
    Case(
        "launch-support-clash-missing-files",
        RT + '[[applications]]\nname = "layer"\nruntime = "cpython-3.13"\nrequirements = []\n'
        'launch_module = "name.py"\nsupport_modules = ["conflicting/name"]\n',
        False,
        ("module name 'name' from 'conflicting/name' clashes with 'name.py'",),
    ),
    Case(
        "support-clash-missing-files",
        RT + app("layer", extra='support_modules = ["name.py", "conflicting/name"]'),
        False,
        ("clashes with 'name.py'",),
    ),
    Case(
        "missing-support-module",
        RT + app("layer", extra='support_modules = ["no_such_module.py"]'),
        False,
        ("module 'no_such_module.py' not found",),
    ),
    Case(
        "missing-launch-module",
        RT + app("layer").replace("empty.py", "no_such_module.py"),
        False,
        ("module 'no_such_module.py' not found",),
    ),
    Case(
        "inconsistent-platforms",
        RT + 'platforms = ["linux_x86_64"]\n' + app("x", extra='platforms = ["win_amd64"]'),
        False,
        ("platform 'win_amd64' is not built by lower layer 'cpython-3.13'",),
    ),
    Case(
        "unknown-platform",
        RT + 'platforms = ["win32_x86_64"]\n',
        False,
        ("unknown platform 'win32_x86_64'",),
    ),
    Case(
        "different-runtimes",
        RT
        + RT.replace("3.13", "3.12")
        + fw("a")
        + fw("b", 'runtime = "cpython-3.12"')
        + app("ab", 'frameworks = ["a", "b"]'),
        False,
        ("frameworks use different runtimes",),
    ),
    Case(
        "c3-conflict",
        RT
        + fw("A")
        + fw("B")
        + fw("C", 'frameworks = ["A", "B"]')
        + fw("D", 'frameworks = ["B", "A"]')
        + app("x", 'frameworks = ["C", "D"]'),
        False,
        ("C3 conflict",),
    ),
    Case(
        "dependency-cycle",
        RT
        + fw("A")
        + fw("B", 'frameworks = ["A", "D"]')
        + fw("C", 'frameworks = ["B"]')
        + fw("D", 'frameworks = ["C"]'),
        False,
        ("dependency cycle",),
    ),
    Case("unknown-runtime", fw("layer", 'runtime = "cpython-3.11"'), False, ("unknown runtime",)),
    Case("unknown-framework", RT + app("x", 'frameworks = ["fw"]'), False, ("unknown framework",)),
    Case(
        "missing-name",
        '[[runtimes]]\npython_implementation = "cpython@3.11.11"\nrequirements = []\n',
        False,
        ("missing required key 'name'",),
    ),
    Case(
        "invalid-requirement",
        RT.replace("requirements = []", 'requirements = ["name<>"]'),
        False,
        ("invalid requirement 'name<>'",),
    ),
    # -- where we differ on purpose ---------------------------------------------------------------
    Case(
        "forward-reference",
        RT + fw("A") + fw("C", 'frameworks = ["B"]') + fw("B", 'frameworks = ["A"]'),
        False,
        ours=True,
    ),
    Case(
        "unknown-index-in-index-overrides",
        RT + app("x", extra='index_overrides = { torch-gpu = "torch-cpu" }') + INDEXES,
        True,
        ("unknown index 'torch-gpu'",),
        ours=False,
    ),
    Case(
        "index-defined-twice",
        RT + INDEXES + INDEXES.split("\n\n")[0] + "\n",
        True,
        ("index name 'torch-cpu' is defined twice",),
        ours=False,
    ),
    Case(
        "name-with-slash",
        RT + fw("a/b"),
        True,
        ("invalid name 'a/b'",),
        ours=False,
    ),
]

#: Why we differ from venvstacks where a case sets ``ours`` (checked: every such case is here).
DIFFERENCES = {
    "forward-reference": "layers may name layers defined further down the file",
    "unknown-index-in-index-overrides": "a misspelt index name would make the override do nothing",
    "index-defined-twice": "the second definition would silently replace the first",
    "name-with-slash": "a layer name is a directory name; venvstacks fails when it builds it",
    "runtime-and-framework-build-names-clash": "both layers would be built in one directory",
}

MODULES = ("empty.py",)


def _write(tmp_path: Path, case: Case) -> Path:
    return write_spec(tmp_path / case.id, case.body, modules=MODULES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_we_load_what_venvstacks_loads(tmp_path: Path, case: Case) -> None:
    spec = _write(tmp_path, case)
    loads = case.loads if case.ours is None else case.ours
    if loads:
        stack = load_spec(spec)
        for needle in case.needles:
            assert any(needle in w for w in stack.warnings), (needle, stack.warnings)
        return
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    problems = [str(p) for p in info.value.problems]
    for needle in case.needles:
        assert any(needle in p for p in problems), (needle, problems)
    assert all(p.file == str(spec) and p.layer for p in info.value.problems)


def test_every_difference_is_explained() -> None:
    assert {c.id for c in CASES if c.ours is not None} == set(DIFFERENCES)
    assert all(c.ours != c.loads for c in CASES if c.ours is not None)


# -- the model of the accepted cases ---------------------------------------------------------


def _load(tmp_path: Path, case_id: str):
    case = next(c for c in CASES if c.id == case_id)
    return load_spec(_write(tmp_path, case))


def test_at_sign_names_keep_venvstacks_build_and_deploy_names(tmp_path: Path) -> None:
    stack = _load(tmp_path, "at-sign-in-names")
    assert list(stack.layers) == ["cpython@3.13", "framework-layerF@1", "app-app@2"]
    layer = stack.layer("framework-layerF@1")
    assert layer.deploy_name(3) == "framework-layerF@1@3"
    assert stack.layer("app-app@2").lower == ("framework-layerF@1", "cpython@3.13")


def test_linux_target_glibc_means_uvs_default(tmp_path: Path) -> None:
    assert _load(tmp_path / "a", "linux-target-glibc").layer("cpython-3.13").glibc_target is None
    stack = _load(tmp_path / "b", "linux-target-glibc-version")
    assert stack.layer("cpython-3.13").glibc_target == "2.28"


def test_empty_platforms_disable_the_layer_and_those_above(tmp_path: Path) -> None:
    stack = _load(tmp_path, "platforms-empty-disables")
    assert stack.layer("framework-off").disabled
    assert stack.layer("app-above").disabled
    assert not stack.layer("cpython-3.13").disabled
    assert [layer.build_name for layer in stack.with_lower(None)] == ["cpython-3.13"]
    assert [layer.build_name for layer in stack.with_lower(["above"])] == ["cpython-3.13"]


def test_disabled_layers_are_not_locked_and_that_is_no_error(tmp_path: Path) -> None:
    body = (
        RT.replace("cpython@3.13.7", f"cpython@{sys.version_info.major}.{sys.version_info.minor}")
        + fw("off", extra="platforms = []")
        + app("above", 'frameworks = ["off"]')
    )
    stack = load_spec(write_spec(tmp_path, body, modules=MODULES))
    summary = lock_stack(stack)
    assert summary.ok and summary.states == {"cpython-3.13": "locked"}
    locked = [p.name for p in (tmp_path / "requirements").iterdir() if not p.name.startswith(".")]
    assert locked == ["cpython-3.13"]


def test_effective_package_indexes_follow_venvstacks_merge(tmp_path: Path) -> None:
    stack = _load(tmp_path / "a", "framework-indexes-overridden")
    assert stack.layer("app-both").package_indexes == {"torch": "torch-cu128"}
    assert stack.layer("framework-cpu").package_indexes == {"torch": "torch-cpu"}
    stack = _load(tmp_path / "b", "runtime-indexes-overridden")
    assert stack.layer("app-cuda").package_indexes == {"torch": "torch-cu128"}
    stack = _load(tmp_path / "c", "same-index-inherited-twice")
    assert stack.layer("framework-a").package_indexes == {"torch": "torch-cpu"}


def test_forward_references_load(tmp_path: Path) -> None:
    stack = _load(tmp_path, "forward-reference")
    assert stack.layer("framework-C").lower == ("framework-B", "framework-A", "cpython-3.13")


def test_macosx_target_major_only_admits_that_macos_wheels() -> None:
    """``macosx_target = "14"`` means 14.0: a macOS 14 wheel fits, a macOS 15-only one does not."""

    def package(*wheels: str) -> dict:
        return {"name": "demo", "version": "1.0", "wheels": [{"name": w} for w in wheels]}

    targets = WheelTargets(["macosx_arm64"], "3.13", macosx_target="14")
    assert check_wheels([package("demo-1.0-cp313-cp313-macosx_14_0_arm64.whl")], targets) == []
    stranded = check_wheels([package("demo-1.0-cp313-cp313-macosx_15_0_arm64.whl")], targets)
    assert [(s.name, s.platforms) for s in stranded] == [("demo", ["macosx_arm64"])]


# -- the claims about venvstacks, checked with venvstacks ------------------------------------

_ORACLE = r"""
import json, sys, warnings
warnings.simplefilter("ignore", FutureWarning)
from venvstacks.stacks import StackSpec
results = {}
for path in sys.argv[1:]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            StackSpec.load(path)
            results[path] = {"loads": True, "warnings": [str(w.message) for w in caught]}
        except Exception as exc:
            results[path] = {"loads": False, "error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def venvstacks_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with venvstacks 0.8.0b2 from PyPI (the release our compatibility is defined by)."""
    venv = tmp_path_factory.mktemp("venvstacks") / "venv"
    run_uv(["venv", "--python", sys.executable, venv])
    python = venv / "bin" / "python"
    run_uv(["pip", "install", "--python", python, "venvstacks==0.8.0b2"])
    return python


@pytest.mark.network
def test_venvstacks_agrees_with_the_table(tmp_path: Path, venvstacks_python: Path) -> None:
    paths = {str(_write(tmp_path, case)): case for case in CASES}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run(
        [venvstacks_python, "-c", _ORACLE, *paths],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    wrong = {
        paths[p].id: result for p, result in results.items() if result["loads"] != paths[p].loads
    }
    assert wrong == {}
