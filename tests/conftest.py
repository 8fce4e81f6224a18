"""Shared fixtures: every test runs with uv and Jupyter pointed at temporary directories.

uv's cache is shared per session (it is safe to share and makes the suite fast); uv-managed
Pythons and every ``JUPYTER_*`` directory live in the session's temporary area so the real user's
kernels and interpreters are never touched. ``UV_PYTHON_DOWNLOADS=never`` keeps tests offline.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def local_python(version: str) -> Path | None:
    """Find an interpreter of ``version`` (X.Y) on this machine for tests, or None."""
    candidates = sorted((PYENV_ROOT / "versions").glob(f"{version}*/bin/python{version}"))
    candidates.append(Path(f"/usr/bin/python{version}"))
    for c in candidates:
        if c.exists():
            return c
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return Path(sys.executable)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests build layers with uv from PyPI: they need the network too."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.network)


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point uv and Jupyter at session-temporary directories for the whole run."""
    base = tmp_path_factory.mktemp("isolated")
    mp = pytest.MonkeyPatch()
    cache = os.environ.get("KERNELSTACKS_TEST_UV_CACHE") or str(base / "uv-cache")
    settings = {
        "UV_CACHE_DIR": cache,
        "UV_PYTHON_INSTALL_DIR": str(base / "uv-python"),
        "UV_PYTHON_BIN_DIR": str(base / "uv-bin"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_CONFIG": "1",
        "JUPYTER_PATH": str(base / "jupyter-path"),
        "JUPYTER_DATA_DIR": str(base / "jupyter-data"),
        "JUPYTER_CONFIG_DIR": str(base / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(base / "jupyter-runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(base / "ipython"),
        "XDG_DATA_HOME": str(base / "xdg-data"),
        "XDG_CONFIG_HOME": str(base / "xdg-config"),
        "XDG_CACHE_HOME": str(base / "xdg-cache"),
    }
    for key, value in settings.items():
        mp.setenv(key, value)
    for key in ("VIRTUAL_ENV", "PIP_FIND_LINKS"):
        mp.delenv(key, raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def kernel_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built stack (jupyter + data frameworks, two apps) with its kernels registered."""
    from kernel_helpers import build_kernel_stack

    return build_kernel_stack(tmp_path_factory.mktemp("kernels") / "stack")


@pytest.fixture(scope="session")
def tour_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second kernel stack ("tour") that notebooks may change (add/remove/build)."""
    from kernel_helpers import build_kernel_stack

    return build_kernel_stack(tmp_path_factory.mktemp("tour") / "stack", stack_name="tour")
