"""Two frameworks pinning different versions of a package one application uses (issue 15, 5).

Sibling frameworks are locked independently, so ``fa`` may pin ``idna==3.6`` and ``fb``
``idna==3.7``; an application on both used to lock and build, and silently imported 3.6 (``fb``
then runs with a version it was never locked with). Locking the application is now an error
naming both layers and both pins. Real uv, real PyPI (``exclude-newer`` pinned).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import EXCLUDE_NEWER, ks, python_options
from helpers import write_spec

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(local_python("3.11") is None, reason="needs a local CPython 3.11"),
]

STACK = f"""
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.11"
requirements = []

[[frameworks]]
name = "fa"
runtime = "rt"
requirements = ["idna==3.6"]

[[frameworks]]
name = "fb"
runtime = "rt"
requirements = ["idna==3.7"]

[[applications]]
name = "app"
frameworks = [{{apps_frameworks}}]
requirements = []
launch_module = "main.py"

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""


def _stack(tmp_path: Path, frameworks: str, fb_pin: str = "idna==3.7") -> Path:
    body = STACK.replace("{apps_frameworks}", frameworks).replace("idna==3.7", fb_pin)
    return write_spec(tmp_path, body, modules=("main.py",))


def test_sibling_frameworks_pinning_different_versions_is_a_lock_error(tmp_path: Path) -> None:
    path = _stack(tmp_path, '"fa", "fb"')
    proc = ks("lock", path, *python_options(), check=False, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Cannot lock layer 'app-app'" in out
    assert "'framework-fa' pins idna==3.6" in out and "'framework-fb' pins idna==3.7" in out
    assert "add \"idna==3.6\" to the requirements of 'framework-fb'" in out
    assert out.count("pin different versions") == 1  # said once
    assert "Traceback" not in out
    assert not (tmp_path / "requirements" / "app-app").exists() or not list(
        (tmp_path / "requirements" / "app-app").glob("pylock.*.toml")
    )
    # the frameworks themselves are fine and locked
    assert list((tmp_path / "requirements" / "framework-fa").glob("pylock.*.toml"))


def test_agreeing_pins_lock_fine(tmp_path: Path) -> None:
    path = _stack(tmp_path, '"fa", "fb"', fb_pin="idna==3.6")
    ks("lock", path, *python_options(), timeout=600)
    assert list((tmp_path / "requirements" / "app-app").glob("pylock.*.toml"))
