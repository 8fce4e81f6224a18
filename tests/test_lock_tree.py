"""The lock tree without uv: names, venvstacks' amendments, validity rules, metadata updates.

Locks here are written by hand (or amended from a hand-written "uv export"), then committed into a
stack's ``requirements/`` tree with the same code ``kernelstacks lock`` uses, so every rule about
validity, lock versions and lock times is checked without resolving anything. The comparison
with venvstacks itself is in ``test_venvstacks_compat.py``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from helpers import write_spec
from kernelstacks.lock.amend import HEADER, Targets, amend, render
from kernelstacks.lock.errors import LockError
from kernelstacks.lock.metadata import META_KEYS, lock_path, lock_status, meta_path
from kernelstacks.lock.pylock import (
    LowerLock,
    Pin,
    lower_pins,
    normal_marker,
    read_entries,
    read_pylock,
    shared_marker,
)
from kernelstacks.lock.records import record_path
from kernelstacks.lock.resolve import LockResult
from kernelstacks.lock.summaries import summary_text
from kernelstacks.lock.tree import commit_lock
from kernelstacks.spec import load_spec
from kernelstacks.spec.model import StackSpec
from kernelstacks_kernel import chain, contract, inventory
from kernelstacks_kernel.contract import SHARED_PACKAGE_MARKER

# -- names --------------------------------------------------------------------------------------


def test_lock_tree_names_are_venvstacks_names() -> None:
    assert (
        contract.lock_file_rel("cpython-3.11")
        == "requirements/cpython-3.11/pylock.cpython-3_11.toml"
    )
    assert contract.lock_meta_file_name("cpython-3.11") == "pylock.cpython-3_11.meta.json"
    assert contract.lock_input_file_name("cpython-3.11") == "requirements-cpython-3_11.in"
    assert contract.package_summary_file_name("cpython-3.11") == "packages-cpython-3.11.txt"
    assert contract.lock_file_name("app-x") == "pylock.app-x.toml"
    assert not contract.lock_record_rel("app-x").startswith(contract.REQUIREMENTS_DIR)


# -- markers and entries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal", "shared"),
    [
        ("", "", False),
        ('sys_platform == "win32"', "sys_platform == 'win32'", False),
        (SHARED_PACKAGE_MARKER, "", True),
        (shared_marker("sys_platform == 'win32'"), "sys_platform == 'win32'", True),
        (
            shared_marker("sys_platform == 'win32' or sys_platform == 'linux'"),
            "sys_platform == 'win32' or sys_platform == 'linux'",
            True,
        ),
    ],
)
def test_shared_marker_round_trip(raw: str, normal: str, shared: bool) -> None:
    assert normal_marker(raw) == (normal, shared)


def write_lock(path: Path, packages: list[dict], layer: str = "x") -> Path:
    """A lock file with the given entries, as kernelstacks renders one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render({"lock-version": "1.0", "packages": packages}, layer))
    return path


def test_unreadable_entries_name_the_file(tmp_path: Path) -> None:
    bad = write_lock(tmp_path / "pylock.bad.toml", [{"name": "a"}])
    with pytest.raises(LockError, match=r"pylock\.bad\.toml: package 'a' has no version"):
        read_entries(bad)
    bad = write_lock(tmp_path / "pylock.bad.toml", [{"name": "a", "version": "1", "marker": "=="}])
    with pytest.raises(LockError, match=r"pylock\.bad\.toml: package 'a' cannot be read"):
        read_entries(bad)


def test_lower_pins_follow_venvstacks_order(tmp_path: Path) -> None:
    runtime = write_lock(
        tmp_path / "rt.toml",
        [
            {"name": "six", "version": "1.16.0"},
            {"name": "colorama", "version": "0.4.6", "marker": "sys_platform == 'win32'"},
            {"name": "idna", "version": "3.6", "marker": SHARED_PACKAGE_MARKER},  # not its own
        ],
    )
    framework = write_lock(
        tmp_path / "fw.toml",
        [
            {"name": "six", "version": "1.17.0"},  # shadowed: the runtime's comes first
            {"name": "colorama", "version": "0.4.5"},
            {"name": "attrs", "version": "25.3.0"},
        ],
    )
    pins = lower_pins([LowerLock("rt", runtime), LowerLock("framework-fw", framework)])
    assert [(p.entry.requirement, p.layer) for p in pins] == [
        ("attrs==25.3.0", "framework-fw"),
        ("colorama==0.4.6 ; sys_platform == 'win32'", "rt"),
        ("colorama==0.4.5", "framework-fw"),
        ("six==1.16.0", "rt"),
    ]


EXPORT = """\
lock-version = "1.0"
created-by = "uv"
requires-python = "==3.11.*"

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
index = "https://pypi.org/simple"
sdist = { url = "https://x.invalid/colorama-0.4.6.tar.gz", hashes = { sha256 = "11" } }
wheels = [{ url = "https://x.invalid/colorama-0.4.6-py3-none-any.whl", hashes = { sha256 = "22" } }]

[[packages]]
name = "exceptiongroup"
version = "1.2.0"
marker = "sys_platform == 'darwin'"
index = "https://pypi.org/simple"
wheels = [{ url = "https://x.invalid/eg-1.2.0-py3-none-any.whl", hashes = { sha256 = "33" } }]

[[packages]]
name = "idna"
version = "3.6"
marker = "sys_platform == 'linux' or sys_platform == 'win32'"
index = "https://pypi.org/simple"
wheels = [{ url = "https://x.invalid/idna-3.6-py3-none-any.whl", hashes = { sha256 = "44" } }]

[[packages]]
name = "local"
version = "1.0"
index = "https://pypi.org/simple"
wheels = [{ url = "file://{wheels}/local-1.0-py3-none-any.whl", hashes = { sha256 = "55" } }]
"""


def test_export_is_amended_as_venvstacks_amends_it(tmp_path: Path) -> None:
    lower = write_lock(tmp_path / "rt.toml", [{"name": "idna", "version": "3.6"}])
    pins = lower_pins([LowerLock("rt", lower)])
    lock_dir = tmp_path / "stack" / "requirements" / "app-x"
    export = EXPORT.replace("{wheels}", str(tmp_path / "wheels"))
    data = amend(export, pins, Targets("app-x", ["linux_x86_64", "win_amd64"], "3.11.7"), lock_dir)
    colorama, idna, local = data["packages"]  # exceptiongroup: for no target platform
    assert colorama["marker"] == "sys_platform == 'win32'"
    assert "sdist" not in colorama and colorama["wheels"]
    assert idna == {"name": "idna", "version": "3.6", "marker": SHARED_PACKAGE_MARKER}
    assert local["wheels"][0] == {
        "hashes": {"sha256": "55"},
        "path": "../../../wheels/local-1.0-py3-none-any.whl",
    }
    text = render(data, "app-x")
    assert text.startswith(HEADER[0].format(layer="app-x") + "\n")
    assert tomllib.loads(text)["packages"][1]["marker"] == SHARED_PACKAGE_MARKER


def test_summary_lists_own_then_shared_packages(tmp_path: Path) -> None:
    lock = write_lock(
        tmp_path / "pylock.app-x.toml",
        [
            {"name": "attrs", "version": "25.3.0", "marker": SHARED_PACKAGE_MARKER},
            {"name": "colorama", "version": "0.4.6", "marker": "sys_platform == 'win32'"},
            {"name": "idna", "version": "3.10", "marker": SHARED_PACKAGE_MARKER},
            {"name": "tabulate", "version": "0.9.0"},
        ],
    )
    assert summary_text("app-x", read_entries(lock)) == (
        "# Package summary for app-x\n"
        "#     Auto-generated by venvstacks (DO NOT EDIT)\n"
        "colorama==0.4.6 ; sys_platform == 'win32'\n"
        "tabulate==0.9.0\n"
        "\n"
        "# Shared packages inherited from other layers\n"
        "attrs==25.3.0\n"
        "idna==3.10\n"
    )


# -- a stack's tree: validity and metadata ------------------------------------------------------

STACK = """
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = ["idna"]

[[frameworks]]
name = "fw"
runtime = "cpython-3.11"
versioned = true
requirements = ["attrs"]

[[applications]]
name = "app"
launch_module = "app.py"
frameworks = ["fw"]
requirements = ["six", "idna"]

[[applications]]
name = "vapp"
launch_module = "vapp.py"
frameworks = ["fw"]
versioned = true
requirements = ["six"]
"""

PACKAGES = {
    "cpython-3.11": [{"name": "idna", "version": "3.6"}],
    "framework-fw": [
        {"name": "attrs", "version": "25.3.0"},
        {"name": "idna", "version": "3.6", "marker": SHARED_PACKAGE_MARKER},
    ],
    "app-app": [
        {"name": "idna", "version": "3.6", "marker": SHARED_PACKAGE_MARKER},
        {"name": "six", "version": "1.17.0"},
    ],
    "app-vapp": [{"name": "six", "version": "1.17.0"}],
}


def commit(spec: StackSpec, build: str, packages: list[dict]) -> str:
    """Commit a lock with these entries for layer ``build``, as ``kernelstacks lock`` does."""
    layer = spec.layer(build)
    scratch = write_lock(spec.root / "scratch" / "pylock.toml", packages, build)
    return commit_lock(spec, layer, scratch, LockResult({}, {}))


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackSpec:
    """A locked stack (locks committed without uv), locked at the ``exclude-newer`` date."""
    monkeypatch.setenv("UV_EXCLUDE_NEWER", "2025-06-01T00:00:00Z")
    spec = load_spec(write_spec(tmp_path / "stack", STACK, modules=("app.py", "vapp.py")))
    for build, packages in PACKAGES.items():
        assert commit(spec, build, packages) == "locked"
    return spec


def states(spec: StackSpec) -> dict[str, str]:
    return {name: lock_status(spec, layer).state for name, layer in spec.layers.items()}


def test_committed_tree_is_valid_and_venvstacks_shaped(stack: StackSpec) -> None:
    assert set(states(stack).values()) == {"valid"}
    meta = json.loads(meta_path(stack, stack.layer("framework-fw")).read_text())
    assert sorted(meta) == sorted(META_KEYS)  # venvstacks' six keys, nothing else
    assert meta["locked_at"] == "2025-06-01T00:00:00+00:00"  # clamped to exclude-newer
    folder = lock_path(stack, stack.layer("cpython-3.11")).parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "packages-cpython-3.11.txt",
        "pylock.cpython-3_11.meta.json",
        "pylock.cpython-3_11.toml",
        "requirements-cpython-3_11.in",
    ]
    assert (folder / "requirements-cpython-3_11.in").read_text().endswith("idna\n")
    assert record_path(stack, stack.layer("app-app")).is_file()


def test_relock_with_same_packages_changes_nothing(stack: StackSpec) -> None:
    folder = stack.root / "requirements"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
    for build, packages in PACKAGES.items():
        assert commit(stack, build, packages) == "unchanged"
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
    assert after == before

    lock = lock_path(stack, stack.layer("app-app"))
    lock.write_text(lock.read_text().replace("kernelstacks lock", "python -Im venvstacks lock"))
    edited = lock.read_bytes()
    assert commit(stack, "app-app", PACKAGES["app-app"]) == "unchanged"
    assert lock.read_bytes() == edited  # only the header differs: the file is kept


def test_lock_version_goes_up_only_when_packages_change(stack: StackSpec) -> None:
    def version(build: str) -> int:
        return json.loads(meta_path(stack, stack.layer(build)).read_text())["lock_version"]

    newer = [{"name": "attrs", "version": "25.4.0"}, PACKAGES["framework-fw"][1]]
    assert commit(stack, "framework-fw", newer) == "locked"
    assert version("framework-fw") == 2
    assert commit(stack, "framework-fw", newer) == "unchanged"
    assert version("framework-fw") == 2
    assert commit(stack, "app-app", [{"name": "six", "version": "1.16.0"}]) == "locked"
    assert version("app-app") == 1  # unversioned layers always record 1


def test_validity_follows_venvstacks_rules(stack: StackSpec) -> None:
    spec_file = stack.path
    (stack.root / "app.py").write_text("print('changed')\n")
    assert states(stack)["app-app"] == "valid"  # an unversioned app's module is no lock input
    (stack.root / "vapp.py").write_text("print('changed')\n")
    status = lock_status(stack, stack.layer("app-vapp"))
    assert (status.state, status.reason) == (
        "stale",
        "layer name, versioning or launch/support modules changed since the lock",
    )

    spec_file.write_text(spec_file.read_text().replace('["attrs"]', '["attrs", "six"]'))
    changed = load_spec(spec_file)
    assert lock_status(changed, changed.layer("framework-fw")).reason == (
        "requirements changed since the lock"
    )
    assert lock_status(changed, changed.layer("app-app")).reason == (
        "lower layer framework-fw has no valid lock"
    )

    lock = lock_path(stack, stack.layer("cpython-3.11"))
    lock.write_text(lock.read_text().replace("3.6", "3.7"))
    assert lock_status(stack, stack.layer("cpython-3.11")).reason == (
        "lock file changed since its metadata was written"
    )
    meta_path(stack, stack.layer("app-app")).unlink()
    assert lock_status(stack, stack.layer("app-app")).reason.startswith("no lock metadata")


def test_our_record_catches_a_lower_layer_relocked_alone(stack: StackSpec) -> None:
    newer = [{"name": "attrs", "version": "25.4.0"}, PACKAGES["framework-fw"][1]]
    commit(stack, "framework-fw", newer)  # the apps above are not relocked with it
    status = lock_status(stack, stack.layer("app-app"))
    assert (status.state, status.reason) == (
        "stale",
        "lower layer framework-fw was relocked since this lock",
    )
    record_path(stack, stack.layer("app-app")).unlink()  # e.g. a tree venvstacks wrote
    assert lock_status(stack, stack.layer("app-app")).valid  # venvstacks' rules alone

    spec_file = stack.path
    spec_file.write_text(spec_file.read_text() + '\n[tool.uv]\nindex-strategy = "first-index"\n')
    changed = load_spec(spec_file)
    status = lock_status(changed, changed.layer("framework-fw"))
    assert status.valid and "uv settings changed" in status.note


def test_kernel_side_skips_what_lower_layers_provide(
    stack: StackSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(contract.ENV_SPEC, str(stack.path))
    assert inventory.locked_packages("app-app") == {"six": "1.17.0"}
    assert inventory.locked_packages("cpython-3.11") == {"idna": "3.6"}  # pylock.cpython-3_11
    assert chain.lock_info("cpython-3.11")["locked_at"] == "2025-06-01T00:00:00+00:00"
    assert chain.lock_info("framework-fw")["lock_version"] == 1
    assert read_pylock(lock_path(stack, stack.layer("app-app"))) == {"six": "1.17.0"}


def test_pins_compare_like_venvstacks_packages(tmp_path: Path) -> None:
    lock = write_lock(tmp_path / "a.toml", [{"name": "a", "version": "1.0"}])
    (pin,) = lower_pins([LowerLock("rt", lock)])
    assert isinstance(pin, Pin)
    other = write_lock(tmp_path / "b.toml", [{"name": "a", "version": "1.0.0"}])
    assert read_entries(other)[0].key == pin.entry.key  # 1.0 and 1.0.0 are the same version


def test_if_needed_keeps_valid_locks_and_clamps_their_time(
    stack: StackSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kernelstacks._support.progress import Reporter
    from kernelstacks.lock.engine import lock_stack

    locks = {p: p.read_bytes() for p in (stack.root / "requirements").rglob("pylock.*.toml")}
    monkeypatch.setenv("UV_EXCLUDE_NEWER", "2025-01-01T00:00:00Z")  # earlier than the locks
    summary = lock_stack(stack, if_needed=True, reporter=Reporter())  # no uv: all are valid
    assert summary.states == dict.fromkeys(PACKAGES, "valid")
    assert {p: p.read_bytes() for p in locks} == locks
    meta = json.loads(meta_path(stack, stack.layer("framework-fw")).read_text())
    assert (meta["locked_at"], meta["lock_version"]) == ("2025-01-01T00:00:00+00:00", 1)
    assert set(states(stack).values()) == {"valid"}
