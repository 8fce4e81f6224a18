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


def build_stack(root: Path, spec_text: str, *extra: str, modules: tuple[str, ...] = ()) -> Path:
    """Write, lock and build a stack (``extra``: more ``build`` options such as --kernels)."""
    spec = write_spec(root, spec_text)
    for name in modules:
        (root / name).write_text(f"print({name!r})\n")
    ks("build", spec, "--lock-if-needed", *python_options(), *extra)
    return spec


def run_in_kernel(
    kernels_dir: Path, name: str, code: str, timeout: float = 120
) -> tuple[dict, list]:
    """Start kernel ``name`` from one kernels directory, run ``code``; (reply, iopub outputs)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    ksm = KernelSpecManager(kernel_dirs=[str(kernels_dir)])
    km = KernelManager(kernel_name=name, kernel_spec_manager=ksm)
    km.start_kernel()
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        outputs: list = []
        reply = kc.execute_interactive(code, timeout=timeout, output_hook=outputs.append)
        return reply["content"], [m for m in outputs if m["msg_type"] != "status"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def ghost_kernel(kernel_dir: Path, name: str, gone: Path) -> Path:
    """A copy of a registered kernel whose stack has been deleted (its layers are in ``gone``).

    Every file of a kernelspec names its own directory and the build directory; both are
    rewritten, as if the stack had been built at ``gone`` and then removed.
    """
    import shutil

    build_dir = json.loads((kernel_dir / "kernel.json").read_text())["env"][
        "KERNELSTACKS_BUILD_DIR"
    ]
    ghost = kernel_dir.with_name(name)
    shutil.copytree(kernel_dir, ghost)
    for path in [ghost / "kernel.json", ghost / "kernelstacks-launch", ghost / "kernelstacks.json"]:
        text = path.read_text().replace(str(kernel_dir), str(ghost)).replace(build_dir, str(gone))
        path.write_text(text.replace(kernel_dir.name, name))
    return ghost
