"""Layer locking against real uv and real PyPI (small packages, ``exclude-newer`` pinned).

The network tests share one runtime-like lower lock (``idna==3.6``) per module; the pure
helpers (wheel tags, markers) are tested without the network.
"""

from __future__ import annotations

import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomlkit
from packaging.markers import Marker

from conftest import local_python
from kernelstacks._support.uv import run_uv
from kernelstacks.build.install import InstallError, install_lock
from kernelstacks.lock.resolve import (
    LockError,
    LockRequest,
    LockResult,
    _explain_failure,
    _filter_wheels,
    _unwrapped,
    lock_layer,
    read_pylock,
)
from kernelstacks.lock.wheels import WheelTargets, filter_wheels
from kernelstacks.lock.wheels import marker_env as _marker_env

pytestmark = pytest.mark.network  # uv resolves against PyPI

SETTINGS = {"exclude-newer": "2025-06-01T00:00:00Z"}
LINUX = ["linux_x86_64"]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def request(layer: str, requirements: list[str], lower: list[Path] = (), **kw) -> LockRequest:
    """A request for this interpreter's X.Y on Linux x86_64 with the pinned index date."""
    kw.setdefault("platforms", LINUX)
    kw.setdefault("uv_settings", SETTINGS)
    return LockRequest(
        layer=layer,
        requirements=requirements,
        python_version=PY,
        lower_locks=list(lower),
        **kw,
    )


def load(path: Path) -> dict:
    """Parsed pylock file."""
    return tomllib.loads(path.read_text(encoding="utf-8"))


def write_lock(path: Path, layer: str, packages: list[dict]) -> Path:
    """A hand-written lower-layer lock (only what locking reads from lower locks)."""
    doc = {"lock-version": "1.0", "created-by": "test", "packages": packages}
    doc["tool"] = {"kernelstacks": {"layer": layer}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runtime_lock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runtime-like lower layer that pins idna 3.6."""
    out = tmp_path_factory.mktemp("req") / "cpython-3.11" / "pylock.cpython-3.11.toml"
    result = lock_layer(request("cpython-3.11", ["idna==3.6"]), out)
    assert result == LockResult(packages={"idna": "3.6"}, provided_by_lower={})
    return out


# --------------------------------------------------------------------------------------------
# Network: real uv, real PyPI


def test_lock_is_pylock_with_hashes_and_no_header(runtime_lock: Path) -> None:
    text = runtime_lock.read_text(encoding="utf-8")
    assert text.startswith('lock-version = "1.0"\n')
    assert "#" not in text.split("[[packages]]")[0]  # no generated header naming temp paths
    data = load(runtime_lock)
    (idna,) = data["packages"]
    assert (idna["name"], idna["version"]) == ("idna", "3.6")
    assert idna["sdist"]["hashes"]["sha256"]
    assert all(wheel["hashes"]["sha256"] for wheel in idna["wheels"])
    assert Marker(data["environments"][0]).evaluate(_marker_env("linux_x86_64", PY))
    assert data["tool"]["kernelstacks"]["layer"] == "cpython-3.11"
    assert read_pylock(runtime_lock) == {"idna": "3.6"}


def test_upper_layer_omits_packages_of_lower_layers(runtime_lock: Path, tmp_path: Path) -> None:
    out = tmp_path / "pylock.framework-http.toml"
    result = lock_layer(request("framework-http", ["httpx"], [runtime_lock]), out)
    assert result.packages["httpx"] == "0.28.1"
    assert {"anyio", "httpcore", "h11", "certifi", "sniffio"} <= result.packages.keys()
    assert "idna" not in result.packages
    assert "idna" not in read_pylock(out)
    assert result.provided_by_lower == {"idna": "3.6"}
    provided = load(out)["tool"]["kernelstacks"]["provided-by-lower"]
    assert provided == {"idna": {"version": "3.6", "layer": "cpython-3.11"}}
    assert read_pylock(out) == result.packages


def test_shared_requirement_resolves_to_lower_version(runtime_lock: Path, tmp_path: Path) -> None:
    out = tmp_path / "pylock.app-idna.toml"
    result = lock_layer(request("app-idna", ["idna>=3"], [runtime_lock]), out)
    assert result.packages == {}
    assert result.provided_by_lower == {"idna": "3.6"}
    assert load(out)["packages"] == []


def test_conflict_with_lower_pin_names_layer_package_and_lower_lock(
    runtime_lock: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pylock.app-conflict.toml"
    with pytest.raises(LockError) as caught:
        lock_layer(request("app-conflict", ["idna==3.7"], [runtime_lock]), out)
    message = str(caught.value)
    assert "app-conflict" in message
    assert "'idna' is pinned to 3.6 by lower layer 'cpython-3.11'" in message
    assert str(runtime_lock) in message
    assert "unsatisfiable" in message  # uv's own explanation is kept
    assert not out.exists()


def test_unknown_requirement_is_named(tmp_path: Path) -> None:
    with pytest.raises(LockError) as caught:
        lock_layer(request("app-typo", ["this-package-does-not-exist-kst"]), tmp_path / "x.toml")
    message = str(caught.value)
    assert "app-typo" in message
    assert "requirement 'this-package-does-not-exist-kst' was not found" in message
    assert "uv says:" in message


def test_locking_twice_gives_identical_bytes(runtime_lock: Path, tmp_path: Path) -> None:
    req = request("framework-http", ["httpx", "attrs"], [runtime_lock])
    first, second = tmp_path / "a" / "pylock.toml", tmp_path / "b" / "pylock.toml"
    lock_layer(req, first)
    lock_layer(req, second)
    assert first.read_bytes() == second.read_bytes()
    lock_layer(req, first)  # relocking in place replaces the file with the same content
    assert first.read_bytes() == second.read_bytes()
    assert [p.name for p in first.parent.iterdir()] == ["pylock.toml"]  # no temp files left


def test_platform_specific_dependency_is_locked_with_its_marker(tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    result = lock_layer(request("app-cli", ["click"], platforms=["win_amd64", "linux_x86_64"]), out)
    assert {"click", "colorama"} <= result.packages.keys()
    colorama = next(p for p in load(out)["packages"] if p["name"] == "colorama")
    marker = Marker(colorama["marker"])
    assert marker.evaluate(_marker_env("win_amd64", PY))
    assert not marker.evaluate(_marker_env("linux_x86_64", PY))
    assert len(load(out)["environments"]) == 2

    linux_only = lock_layer(request("app-cli", ["click"]), tmp_path / "linux.toml")
    assert "colorama" not in linux_only.packages


def test_wheels_are_limited_to_target_platforms_and_glibc(tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    lock_layer(request("app-ms", ["markupsafe"]), out)
    (entry,) = load(out)["packages"]
    names = [w["url"].rpartition("/")[2] for w in entry["wheels"]]
    assert names, "a linux x86_64 wheel must remain"
    assert all(
        "x86_64" in n and "manylinux" in n and f"cp{PY.replace('.', '')}" in n for n in names
    )

    # No markupsafe wheel runs on glibc 2.5: the lock keeps only the sdist (built on install).
    lock_layer(request("app-ms", ["markupsafe"], linux_target="2.5"), out)
    (entry,) = load(out)["packages"]
    assert "wheels" not in entry
    assert entry["sdist"]["hashes"]["sha256"]


def test_uv_settings_are_passed_through(tmp_path: Path) -> None:
    settings = {
        "exclude-newer": datetime(2024, 1, 1, tzinfo=UTC),  # converted to uv's string form
        "index-strategy": "first-index",
        "constraint-dependencies": ["idna<3.5"],  # merged with the lower-layer constraints
    }
    result = lock_layer(request("app-old", ["idna"], uv_settings=settings), tmp_path / "p.toml")
    assert result.packages == {"idna": "3.4"}

    bad = {"index": [{"name": "nowhere", "url": "https://pypi.org/simple/", "default": True}]}
    bad["index-strategy"] = "no-such-strategy"
    with pytest.raises(LockError, match="app-bad"):
        lock_layer(request("app-bad", ["idna"], uv_settings=bad), tmp_path / "bad.toml")


def test_lower_pin_on_some_platforms_only_restricts_the_upper_entry(tmp_path: Path) -> None:
    lower = write_lock(
        tmp_path / "pylock.framework-win.toml",
        "framework-win",
        [{"name": "colorama", "version": "0.4.6", "marker": "sys_platform == 'win32'"}],
    )
    out = tmp_path / "pylock.app.toml"
    req = request("app", ["colorama"], [lower], platforms=["linux_x86_64", "win_amd64"])
    result = lock_layer(req, out)
    assert result.packages == {"colorama": "0.4.6"}
    assert result.provided_by_lower == {"colorama": "0.4.6"}
    marker = Marker(load(out)["packages"][0]["marker"])
    assert marker.evaluate(_marker_env("linux_x86_64", PY))
    assert not marker.evaluate(_marker_env("win_amd64", PY))


def test_first_lower_layer_wins_between_siblings(tmp_path: Path) -> None:
    first = write_lock(
        tmp_path / "pylock.framework-a.toml", "framework-a", [{"name": "six", "version": "1.16.0"}]
    )
    second = write_lock(
        tmp_path / "pylock.framework-b.toml", "framework-b", [{"name": "six", "version": "1.17.0"}]
    )
    result = lock_layer(request("app", ["six"], [first, second]), tmp_path / "pylock.app.toml")
    assert result.packages == {}
    assert result.provided_by_lower == {"six": "1.16.0"}


def test_empty_requirements_give_an_empty_valid_lock(runtime_lock: Path, tmp_path: Path) -> None:
    out = tmp_path / "pylock.app-empty.toml"
    result = lock_layer(request("app-empty", [], [runtime_lock]), out)
    assert result == LockResult(packages={}, provided_by_lower={})
    data = load(out)
    assert data["lock-version"] == "1.0"
    assert data["packages"] == []


def test_too_old_lock_interpreter_is_explained(tmp_path: Path) -> None:
    older = local_python("3.10")
    if older is None:
        pytest.skip("no Python 3.10 on this machine")
    req = request("app-py", ["six"], python=older)
    with pytest.raises(LockError, match=rf"app-py.*needs a Python >= {PY}.*LockRequest\.python"):
        lock_layer(req, tmp_path / "out.toml")


@pytest.fixture
def venv_python(tmp_path: Path) -> Path:
    """A fresh venv of this interpreter, made by uv."""
    run_uv(["venv", "--quiet", "--python", sys.executable, tmp_path / "venv"])
    return tmp_path / "venv" / "bin" / "python"


def installed(python: Path) -> dict[str, str]:
    """name -> version installed in the environment of ``python``."""
    proc = run_uv(["pip", "freeze", "--python", python])
    return dict(line.split("==") for line in proc.stdout.splitlines() if "==" in line)


def test_install_lock_installs_only_this_layer_with_bytecode(
    runtime_lock: Path, tmp_path: Path, venv_python: Path
) -> None:
    lock = tmp_path / ".pylock.framework-http.toml.new"  # any file name works, even a scratch one
    lock_layer(request("framework-http", ["httpx"], [runtime_lock]), lock)
    install_lock(venv_python, lock)
    packages = installed(venv_python)
    assert packages["httpx"] == "0.28.1"
    assert "idna" not in packages  # provided by the lower layer, not installed twice
    site = next((venv_python.parent.parent / "lib").glob("python*/site-packages"))
    assert list((site / "httpx").glob("__pycache__/*.pyc"))

    empty = tmp_path / "pylock.empty.toml"
    lock_layer(request("app-empty", [], [runtime_lock]), empty)
    install_lock(venv_python, empty, exact=False)  # adding nothing keeps what is there
    assert "httpx" in installed(venv_python)
    install_lock(venv_python, empty)  # a venv is synced: it now matches the (empty) lock
    assert installed(venv_python) == {}


def test_install_lock_accepts_dotted_layer_names(runtime_lock: Path, venv_python: Path) -> None:
    assert runtime_lock.name == "pylock.cpython-3.11.toml"  # uv itself refuses this name
    install_lock(venv_python, runtime_lock, compile_bytecode=False)
    assert installed(venv_python) == {"idna": "3.6"}


def test_install_lock_reports_failure(tmp_path: Path, venv_python: Path) -> None:
    broken = tmp_path / "pylock.broken.toml"
    broken.write_text('lock-version = "1.0"\npackages = "nope"\n', encoding="utf-8")
    with pytest.raises(InstallError, match=r"pylock\.broken\.toml"):
        install_lock(venv_python, broken)


# --------------------------------------------------------------------------------------------
# No network: validation and wheel filtering


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("python_version", "three", "python_version 'three' is not X.Y"),
        ("platforms", ["linux_x86_64", "plan9"], "must be a non-empty list"),
        ("platforms", [], "must be a non-empty list"),
        ("linux_target", "glibc", "linux_target 'glibc' is not a version"),
    ],
)
def test_bad_requests_are_rejected_before_uv_runs(
    tmp_path: Path, field: str, value: object, expected: str
) -> None:
    req = request("app-bad", ["six"])
    setattr(req, field, value)
    with pytest.raises(LockError, match=expected):
        lock_layer(req, tmp_path / "out.toml")


def test_unreadable_lower_lock_is_a_lock_error(tmp_path: Path) -> None:
    bad = tmp_path / "pylock.framework-x.toml"
    bad.write_text("this is = not [ toml", encoding="utf-8")
    with pytest.raises(LockError, match="Cannot read lock file"):
        read_pylock(bad)


def _doc_with_wheels(*wheel_names: str, sdist: bool = False) -> tomlkit.TOMLDocument:
    """A one-package pylock document listing the given wheel file names."""
    entry = {"name": "demo", "version": "1.0"}
    entry["wheels"] = [{"url": f"https://example.invalid/{n}"} for n in wheel_names]
    if sdist:
        entry["sdist"] = {"url": "https://example.invalid/demo-1.0.tar.gz"}
    return tomlkit.parse(tomlkit.dumps({"packages": [entry]}))


WHEELS = [
    "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    "demo-1.0-cp311-cp311-musllinux_1_2_x86_64.whl",
    "demo-1.0-cp311-cp311-manylinux_2_17_aarch64.whl",
    "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
    "demo-1.0-cp39-abi3-manylinux_2_17_x86_64.whl",
    "demo-1.0-cp311-cp311-win_amd64.whl",
    "demo-1.0-cp311-cp311-macosx_10_9_universal2.whl",
    "demo-1.0-cp311-cp311-macosx_14_0_arm64.whl",
]


def _kept(doc: tomlkit.TOMLDocument) -> list[str]:
    return [w["url"].rpartition("/")[2] for w in doc["packages"][0].get("wheels", [])]


@pytest.mark.parametrize(
    ("platforms", "targets", "expected"),
    [
        (["linux_x86_64"], {}, [WHEELS[0], WHEELS[1], WHEELS[5]]),
        (["linux_x86_64"], {"linux_target": "2.17"}, [WHEELS[0], WHEELS[5]]),
        (["linux_aarch64", "win_amd64"], {}, [WHEELS[3], WHEELS[6]]),
        (["macosx_arm64"], {}, [WHEELS[7], WHEELS[8]]),
        (["macosx_arm64", "macosx_x86_64"], {"macosx_target": "11.0"}, [WHEELS[7]]),
    ],
)
def test_wheels_fitting_no_target_are_dropped(
    platforms: list[str], targets: dict, expected: list[str]
) -> None:
    doc = _doc_with_wheels(*WHEELS)
    assert filter_wheels(doc, WheelTargets(platforms, "3.11", **targets)) is None
    assert _kept(doc) == expected


def test_target_left_without_wheel_or_sdist_is_a_lock_error() -> None:
    doc = _doc_with_wheels(WHEELS[1])
    req = LockRequest("app-old-glibc", [], "3.11", LINUX, [], {}, linux_target="2.17")
    with pytest.raises(LockError, match=r"app-old-glibc.*demo==1.0.*linux_target 2.17"):
        _filter_wheels(req, doc, LINUX, "3.11")
    with_sdist = _doc_with_wheels(WHEELS[1], sdist=True)
    _filter_wheels(req, with_sdist, LINUX, "3.11")
    assert "wheels" not in with_sdist["packages"][0]


# --------------------------------------------------------------------------------------------
# No network: reading uv's explanations, wrapped or not (uv >= 0.13 wraps at the terminal width)

WRAPPED = """Using CPython 3.11.7 interpreter at: /usr/bin/python3
error: No solution found when
       resolving dependencies
       for split (markers:
       sys_platform ==
       'linux')
  cause: Because
         this-package-does-not-exist-kst
         was not found
         in the package
         registry and your
         project depends on
         this-package-does-not-exist-kst,
         we can conclude
         that your project's
         requirements are
         unsatisfiable.
  hint: a hint
        on two lines
"""


def test_wrapped_uv_messages_are_joined_message_by_message() -> None:
    joined = _unwrapped(WRAPPED)
    assert joined.splitlines() == [
        "Using CPython 3.11.7 interpreter at: /usr/bin/python3",
        "error: No solution found when resolving dependencies for split (markers: "
        "sys_platform == 'linux')",
        "  cause: Because this-package-does-not-exist-kst was not found in the package registry "
        "and your project depends on this-package-does-not-exist-kst, we can conclude that your "
        "project's requirements are unsatisfiable.",
        "  hint: a hint on two lines",
    ]
    assert _unwrapped(joined) == joined  # unwrapped output (older uv, no terminal) stays as is


def test_explanation_reads_wrapped_uv_output() -> None:
    req = request("app-typo", ["this-package-does-not-exist-kst"])
    message = _explain_failure(req, PY, WRAPPED, [])
    assert "requirement 'this-package-does-not-exist-kst' was not found" in message
    assert "needs a Python" not in message  # "interpreter" and "incompatible" in two messages
    assert "\n  error: No solution found when\n" in message  # uv's own words are quoted as is

    wrapped = "error: The requested interpreter resolved to Python 3.10.13, which is\n"
    wrapped += "       incompatible with the project's Python requirement: `>=3.11`\n"
    assert f"needs a Python >= {PY}" in _explain_failure(req, PY, wrapped, [])
