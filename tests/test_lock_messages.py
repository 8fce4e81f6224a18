"""Lock errors say one thing once, with the fix that applies in a stack (issue 13, messages).

uv resolves every layer for all six platforms at once (as for venvstacks). When a platform other
than this machine's fails, uv suggests limiting ``tool.uv.environments``; in a stack the fix is
the layer's ``platforms``, and the message names only platforms the layer builds for. A layer
whose requirements fail only on platforms it does not build for is resolved for its own
platforms (venvstacks cannot lock such a layer at all). Real uv, real PyPI.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import EXCLUDE_NEWER, ks, python_options
from helpers import write_spec

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(local_python("3.11") is None, reason="needs a local CPython 3.11"),
]

# numpy has no CPython 3.11 wheels below 1.20: the Windows fork cannot be resolved.
STACK = f"""
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.11"
requirements = []

[[frameworks]]
name = "np"
runtime = "rt"
requirements = ["numpy<1.20 ; sys_platform == 'win32'", "numpy>=2 ; sys_platform != 'win32'"]
platforms = PLATFORMS

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""


def _lock(tmp_path: Path, platforms: str) -> tuple[int, str]:
    path = write_spec(tmp_path, STACK.replace("PLATFORMS", platforms))
    proc = ks("lock", path, *python_options(), check=False, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_failure_on_a_targeted_platform_advises_platforms_not_uv_environments(
    tmp_path: Path,
) -> None:
    status, out = _lock(tmp_path, '["linux_x86_64", "win_amd64"]')
    assert status == 1
    assert "tool.uv.environments" not in out and "consider limiting" not in out
    assert (
        "the requirements cannot be met on win_amd64, which this layer builds for; if the "
        'layer need not run there, leave it out of its platforms (platforms = ["linux_x86_64"])'
    ) in out
    assert "win_arm64" not in out  # failed too, but the layer does not build for it
    assert out.count("Cannot lock layer 'framework-np'") == 1


def test_failure_only_on_untargeted_platforms_locks_for_the_layer_platforms(
    tmp_path: Path,
) -> None:
    status, out = _lock(tmp_path, '["linux_x86_64"]')
    assert status == 0, out
    assert "resolved for its platforms only (linux_x86_64)" in out
    lock = tmp_path / "requirements" / "framework-np" / "pylock.framework-np.toml"
    packages = tomllib.loads(lock.read_text())["packages"]
    assert [(p["name"], p["version"][0]) for p in packages] == [("numpy", "2")]
