"""A built stack with kernels, shared by the kernel tests (built once per session)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine_helpers import EXCLUDE_NEWER, ks, python_options
from helpers import write_spec

KERNEL_STACK = f"""
[[runtimes]]
name = "cpython-3.12"
python_implementation = "cpython@3.12"
requirements = []

[[frameworks]]
name = "jupyter"
runtime = "cpython-3.12"
requirements = ["ipykernel", "ipywidgets"]

[[frameworks]]
name = "data"
runtime = "cpython-3.12"
requirements = ["attrs"]

[[applications]]
name = "lab"
launch_module = "lab.py"
frameworks = ["data", "jupyter"]
requirements = ["tabulate"]

[[applications]]
name = "plain"
launch_module = "plain.py"
runtime = "cpython-3.12"
requirements = ["idna"]

[tool.kernelstacks]
name = "STACK_NAME"

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""

LAB_KERNEL = "kernelstacks-kst-lab"


def build_kernel_stack(root: Path, stack_name: str = "kst") -> Path:
    """Write, lock and build the stack and register its kernels (user scope)."""
    spec = write_spec(root, KERNEL_STACK.replace("STACK_NAME", stack_name))
    (root / "lab.py").write_text("print('lab')\n")
    (root / "plain.py").write_text("print('plain')\n")
    ks("build", spec, "--lock-if-needed", "--kernels", *python_options())
    return spec


def user_kernels_dir() -> Path:
    """The isolated per-user kernels dir of the test session."""
    return Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels"


def kernel_json(name: str, base: Path | None = None) -> dict:
    """Read a kernelspec we wrote."""
    return json.loads(((base or user_kernels_dir()) / name / "kernel.json").read_text())
