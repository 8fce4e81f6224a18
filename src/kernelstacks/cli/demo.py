"""The embedded demo stack (``kernelstacks demo``).

The demo's runtime uses the Python version running kernelstacks, so the demo works offline on a
machine that has only that Python (the local runtime source) as well as online.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError


def default_demo_dir() -> Path:
    """Per-user data directory for the demo."""
    from platformdirs import user_data_path

    return user_data_path("kernelstacks") / "demo"


def demo_spec_text() -> str:
    """The demo venvstacks.toml, with the runtime set to this interpreter's X.Y."""
    text = resources.files("kernelstacks.demo").joinpath("venvstacks.toml").read_text("utf-8")
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    return text.replace("cpython-3.11", f"cpython-{ver}").replace("cpython@3.11", f"cpython@{ver}")


def write_demo(directory: Path | None) -> Path:
    """Copy the demo stack into ``directory``; keeps existing locks so reruns are fast."""
    target = Path(directory) if directory else default_demo_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
        source = resources.files("kernelstacks.demo")
        modules = target / "launch_modules"
        modules.mkdir(exist_ok=True)
        for item in source.joinpath("launch_modules").iterdir():
            if item.name.endswith(".py"):
                with resources.as_file(item) as src:
                    shutil.copyfile(src, modules / item.name)
        spec_path = target / "venvstacks.toml"
        spec_path.write_text(demo_spec_text(), encoding="utf-8")
    except OSError as exc:
        raise KernelstacksError(f"cannot write the demo stack to {target}: {exc}") from exc
    return spec_path
