"""Incremental and fault behaviour of lock/build: one app changes, builds are killed or race."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import EXCLUDE_NEWER, json_events, ks, python_options, run_py
from helpers import write_spec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]

SMALL = f"""
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.12"
requirements = []

[[frameworks]]
name = "fw"
runtime = "rt"
requirements = ["attrs"]

[[applications]]
name = "a"
launch_module = "a.py"
frameworks = ["fw"]
requirements = ["six"]

[[applications]]
name = "b"
launch_module = "b.py"
frameworks = ["fw"]
requirements = ["idna"]

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    spec = write_spec(tmp_path / "small", SMALL)
    (spec.parent / "a.py").write_text("import attrs, six; print('a ok')\n")
    (spec.parent / "b.py").write_text("import attrs, idna; print('b ok')\n")
    ks("build", spec, "--lock-if-needed", *python_options())
    return spec


def statuses(stdout: str) -> dict[str, str]:
    return {e["layer"]: e["status"] for e in json_events(stdout) if e["event"] == "layer_finished"}


def test_changing_one_app_relocks_and_rebuilds_only_it(small: Path) -> None:
    other_lock = small.parent / "requirements" / "app-b" / "pylock.app-b.toml"
    before = other_lock.read_bytes()
    small.write_text(
        small.read_text().replace('requirements = ["six"]', 'requirements = ["six", "sniffio"]')
    )
    proc = ks("lock", small, "--if-needed", "--progress-json", *python_options())
    assert statuses(proc.stdout) == {
        "rt": "valid",
        "framework-fw": "valid",
        "app-a": "locked",
        "app-b": "valid",
    }
    assert other_lock.read_bytes() == before
    proc = ks("build", small, "--progress-json", *python_options())
    assert statuses(proc.stdout) == {
        "rt": "unchanged",
        "framework-fw": "unchanged",
        "app-a": "built",
        "app-b": "unchanged",
    }
    proc = run_py(small.parent / "_build" / "app-a" / "bin" / "python", "import sniffio")
    assert proc.returncode == 0, proc.stderr


def test_build_without_lock_says_what_to_do(small: Path) -> None:
    small.write_text(small.read_text().replace('["idna"]', '["idna", "certifi"]'))
    proc = ks("build", small, *python_options(), check=False)
    assert proc.returncode == 1
    assert "app-b" in proc.stderr and "--lock-if-needed" in proc.stderr


def test_unknown_requirement_is_named(small: Path) -> None:
    small.write_text(small.read_text().replace('["idna"]', '["no-such-package-kst-123"]'))
    proc = ks("lock", small, *python_options(), check=False)
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    assert "app-b" in text and "no-such-package-kst-123" in text
    assert "Traceback" not in text


def _start_build(spec: Path) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "kernelstacks",
        "build",
        str(spec),
        "--lock-if-needed",
        "--progress-json",
    ]
    return subprocess.Popen(
        [*cmd, *python_options()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_sigkill_mid_install_keeps_old_layer(small: Path) -> None:
    small.write_text(small.read_text().replace('["idna"]', '["idna", "numpy"]'))
    build_dir = small.parent / "_build"
    proc = _start_build(small)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if list(build_dir.glob(".app-b~new-*/lib/python3.12/site-packages/numpy*")):
            break
        if proc.poll() is not None:
            pytest.fail(f"build ended before it could be killed: {proc.communicate()}")
        time.sleep(0.02)
    else:
        pytest.fail("the build never reached the install step")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    result = run_py(build_dir / "app-b" / "bin" / "python", "import idna, attrs; print('old ok')")
    assert result.returncode == 0 and "old ok" in result.stdout, result.stderr
    result = run_py(build_dir / "app-b" / "bin" / "python", "import numpy")
    assert result.returncode != 0  # the old layer, not a half-built new one
    ks("build", small, *python_options())
    result = run_py(build_dir / "app-b" / "bin" / "python", "import numpy; print('new ok')")
    assert "new ok" in result.stdout, result.stderr
    assert not [p.name for p in build_dir.iterdir() if p.name.startswith(".app-b")]


def test_ctrl_c_discards_the_unfinished_layer(small: Path) -> None:
    """Ctrl-C while a layer builds: it is finished off the record, never swapped in."""
    small.write_text(small.read_text().replace('["idna"]', '["idna", "numpy"]'))
    build_dir = small.parent / "_build"
    proc = _start_build(small)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if list(build_dir.glob(".app-b~new-*/lib/python3.12/site-packages/numpy*")):
            break
        if proc.poll() is not None:
            pytest.fail(f"build ended before it could be interrupted: {proc.communicate()}")
        time.sleep(0.02)
    else:
        pytest.fail("the build never reached the install step")
    os.kill(proc.pid, signal.SIGINT)  # the tool only: uv finishes, the engine must still stop
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    result = run_py(build_dir / "app-b" / "bin" / "python", "import numpy")
    assert result.returncode != 0  # the old layer, not the new one
    assert not [p.name for p in build_dir.iterdir() if p.name.startswith(".app-b")]


def test_two_concurrent_builds(small: Path) -> None:
    small.write_text(small.read_text().replace('["six"]', '["six", "certifi"]'))
    first, second = _start_build(small), _start_build(small)
    out1, err1 = first.communicate(timeout=600)
    out2, err2 = second.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    built = [statuses(out1).get("app-a"), statuses(out2).get("app-a")]
    assert sorted(built) == ["built", "unchanged"]
    result = run_py(small.parent / "_build" / "app-a" / "bin" / "python", "import certifi, six")
    assert result.returncode == 0, result.stderr
    leftovers = [p.name for p in (small.parent / "_build").iterdir() if p.name.startswith(".app")]
    assert leftovers == []


def test_layers_for_other_platforms_are_skipped_with_a_note(small: Path) -> None:
    (small.parent / "mac.py").write_text("print('mac')\n")
    small.write_text(
        small.read_text()
        + '\n[[applications]]\nname = "mac"\nlaunch_module = "mac.py"\nframeworks = ["fw"]\n'
        'requirements = ["six"]\nplatforms = ["macosx_arm64"]\n'
    )
    proc = ks("build", small, "--lock-if-needed", "--progress-json", *python_options())
    events = json_events(proc.stdout)
    notes = [e["message"] for e in events if e["event"] == "note"]
    assert any("app-mac" in n and "not built for" in n for n in notes)
    assert events[-1]["layers"]["app-mac"] == "skipped"
    assert not (small.parent / "_build" / "app-mac").exists()
    lock = small.parent / "requirements" / "app-mac" / "pylock.app-mac.toml"
    assert lock.is_file()  # locked for its platform all the same
