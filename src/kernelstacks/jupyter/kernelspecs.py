"""What a layered kernel's ``kernel.json`` says: the plan for one app layer and its spec file.

We write plain kernelspec directories (never a custom KernelSpecManager, which nbconvert,
papermill and VS Code would not see). ``argv`` execs the layer's interpreter directly (no wrapper
process), the shape VS Code requires; ``metadata.kernelstacks`` records the stack, the layer and
its chain, which is how ``list``, ``remove`` and ``prune`` recognise specs we wrote.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.lock.metadata import read_meta
from kernelstacks.spec.model import LayerSpec, StackSpec
from kernelstacks_kernel import contract

KERNEL_SIDE_PACKAGE = "kernelstacks_kernel"
PROVISIONER = "kernelstacks-provisioner"


def kernel_name(stack: StackSpec, app: LayerSpec) -> str:
    """Stable, namespaced kernel name: ``kernelstacks-<stack>-<app>`` (Jupyter wants lowercase)."""
    return contract.kernel_name(stack.name, app.name)


def kernels_dir(scope: str, prefix: Path | None = None) -> Path:
    """The ``kernels`` directory for ``--user``, ``--sys-prefix`` or ``--prefix DIR``."""
    if scope == "prefix":
        if prefix is None:
            raise KernelstacksError("--prefix needs a directory")
        return Path(prefix).absolute() / "share" / "jupyter" / "kernels"
    if scope == "sys-prefix":
        return Path(sys.prefix) / "share" / "jupyter" / "kernels"
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "kernels"


def kernelspecs_dir() -> Path:
    """The ``kernelspecs/`` folder (template and logos): in the wheel, or in a source checkout."""
    with resources.as_file(resources.files("kernelstacks")) as package:
        for candidate in (Path(package) / "kernelspecs", Path(package).parents[1] / "kernelspecs"):
            if (candidate / "kernel.json.in").is_file():
                return candidate
    raise KernelstacksError("kernelstacks is installed without its kernelspecs/ folder")


def _template() -> dict[str, Any]:
    return json.loads((kernelspecs_dir() / "kernel.json.in").read_text(encoding="utf-8"))


def _tool_command() -> list[str]:
    """How the kernel side runs this kernelstacks installation (for lock/build from a notebook)."""
    return [sys.executable, "-m", "kernelstacks"]


def provisioner_available() -> bool:
    """Whether Jupyter in *this* environment can load our provisioner.

    A kernelspec naming a provisioner that its reader cannot load is hidden by jupyter_client,
    so we only name ours when jupyter_client lives beside kernelstacks (see docs/kernels.md).
    """
    from importlib.metadata import entry_points

    return bool(entry_points(group="jupyter_client.kernel_provisioners", name=PROVISIONER))


@dataclass
class KernelPlan:
    """Everything a kernelspec says about one application layer, built or deployed."""

    name: str
    stack: str
    app: str
    layer: str
    deploy_name: str
    layers_dir: Path
    chain: list[str]
    lock_versions: dict[str, Any]
    spec_path: Path | None = None

    @property
    def layer_dirs(self) -> list[Path]:
        """The app layer, its frameworks, the runtime: directories on disk."""
        return [self.layers_dir / name for name in self.chain]


def plan_for_app(stack: StackSpec, app: LayerSpec, build_dir: Path) -> KernelPlan:
    """The kernel of an app layer in a build directory."""
    lock_versions = {}
    for layer in [app, *stack.lower_layers(app)]:
        lock_versions[layer.build_name] = (read_meta(stack, layer) or {}).get("lock_version")
    return KernelPlan(
        name=kernel_name(stack, app),
        stack=stack.name,
        app=app.name,
        layer=app.build_name,
        deploy_name=app.deploy_name(lock_versions.get(app.build_name)),
        layers_dir=build_dir,
        chain=[app.build_name, *app.lower],
        lock_versions=lock_versions,
        spec_path=stack.path.absolute(),
    )


def build_kernel_json(
    plan: KernelPlan, spec_dir: Path, provisioner: bool | None = None
) -> dict[str, Any]:
    """The kernel.json content for one app layer."""
    layer_dirs = plan.layer_dirs
    python = layer_dirs[0] / "bin" / "python"
    py_version = _layer_py_version(layer_dirs[0]) or "3"
    jupyter_dirs = [str(d / "share" / "jupyter") for d in layer_dirs[1:]]
    jupyter_dirs = [d for d in jupyter_dirs if Path(d).is_dir()]
    spec = _template()
    spec["argv"] = [str(python), *spec["argv"][1:], "--ext", KERNEL_SIDE_PACKAGE]
    spec["display_name"] = f"{plan.stack}: {plan.app} (Python {py_version})"
    env = {
        "PATH": os.pathsep.join([*(str(d / "bin") for d in layer_dirs), "${PATH}"]),
        "PYTHONPATH": str(spec_dir / contract.KERNEL_PYLIB),
        contract.ENV_STACK: plan.stack,
        contract.ENV_LAYER: plan.layer,
        contract.ENV_BUILD_DIR: str(plan.layers_dir),
        contract.ENV_KERNEL: spec_dir.name,
        contract.ENV_TOOL: json.dumps(_tool_command()),
    }
    if plan.spec_path is not None:
        env[contract.ENV_SPEC] = str(plan.spec_path)
    if jupyter_dirs:
        env["JUPYTER_PATH"] = os.pathsep.join(jupyter_dirs)
    spec["env"] = env
    spec.setdefault("metadata", {})
    spec["metadata"]["kernelstacks"] = {
        "stack": plan.stack,
        "spec": str(plan.spec_path) if plan.spec_path else None,
        "layer": plan.layer,
        "deploy_name": plan.deploy_name,
        "build_dir": str(plan.layers_dir),
        "lock_versions": plan.lock_versions,
        "chain": plan.chain,
        "python_version": py_version,
    }
    if provisioner_available() if provisioner is None else provisioner:
        spec["metadata"]["kernel_provisioner"] = {"provisioner_name": PROVISIONER, "config": {}}
    return spec


def _layer_py_version(layer_dir: Path) -> str | None:
    try:
        meta = json.loads((layer_dir / contract.LAYER_METADATA).read_text())
    except (OSError, ValueError):
        return None
    return meta.get("py_version")
