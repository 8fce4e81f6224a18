"""What a layered kernel's ``kernel.json`` says: the plan for one app layer and its spec file.

We write plain kernelspec directories (never a custom KernelSpecManager, which nbconvert,
papermill and VS Code would not see) that any Jupyter can start, with or without kernelstacks
installed: ``argv`` is the kernelspec's own launcher (:mod:`kernelstacks.jupyter.launcher`), which
execs the layer's interpreter, and no provisioner is named unless asked for (jupyter_client hides
specs whose provisioner it cannot load). ``metadata.kernelstacks`` records the stack, the layer and
its chain, which is how ``list``, ``remove`` and ``prune`` recognise specs we wrote.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.versions import PythonVersion
from kernelstacks.lock.metadata import read_meta
from kernelstacks.spec.model import LayerSpec, StackSpec
from kernelstacks_kernel import contract

KERNEL_SIDE_PACKAGE = "kernelstacks_kernel"
PROVISIONER = "kernelstacks-provisioner"
_PROTOCOL_RE = re.compile(r"""["']kernel_protocol_version["']\s*:\s*["'](\d+\.\d+)["']""")


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


def scope_prefix(scope: str, prefix: Path | None) -> Path | None:
    """The prefix a scope writes under (None for the per-user directory)."""
    if scope == "prefix" and prefix is not None:
        return Path(prefix).absolute()
    if scope == "sys-prefix":
        return Path(sys.prefix)
    return None


def kernelspecs_dir() -> Path:
    """The ``kernelspecs/`` folder (template and logos): in the wheel, or in a source checkout."""
    with resources.as_file(resources.files("kernelstacks")) as package:
        for candidate in (Path(package) / "kernelspecs", Path(package).parents[1] / "kernelspecs"):
            if (candidate / "kernel.json.in").is_file():
                return candidate
    raise KernelstacksError("kernelstacks is installed without its kernelspecs/ folder")


def _template() -> dict[str, Any]:
    return json.loads((kernelspecs_dir() / "kernel.json.in").read_text(encoding="utf-8"))


def tool_command() -> list[str]:
    """How the kernel side runs this kernelstacks installation (for lock/build from a notebook)."""
    return [sys.executable, "-m", "kernelstacks"]


def provisioner_available() -> bool:
    """Whether Jupyter in *this* environment can load our provisioner (``--provisioner``)."""
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
    #: ``[tool.kernelstacks.kernelspec.<app>]``: display_name, logo, env, interrupt_mode.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def layer_dirs(self) -> list[Path]:
        """The app layer, its frameworks, the runtime: directories on disk."""
        return [self.layers_dir / name for name in self.chain]

    @property
    def python(self) -> Path:
        """The app layer's interpreter (what the launcher execs)."""
        return self.layers_dir / self.chain[0] / "bin" / "python"

    def missing_layers(self) -> list[str]:
        """Layers of the chain (and the interpreter) that are not on disk."""
        missing = [d.name for d in self.layer_dirs if not d.is_dir()]
        if not missing and not self.python.exists():
            missing.append(f"{self.chain[0]} (no bin/python)")
        return missing


def plan_for_app(stack: StackSpec, app: LayerSpec, build_dir: Path) -> KernelPlan:
    """The kernel of an app layer in a build directory."""
    lock_versions = {}
    for layer in [app, *stack.lower_layers(app)]:
        lock_versions[layer.build_name] = (read_meta(stack, layer) or {}).get("lock_version")
    settings = stack.settings.get("kernelspec", {}).get(app.name, {})
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
        settings=dict(settings),
    )


def layer_py_version(layer_dir: Path) -> str | None:
    """The Python version a built layer records in its metadata."""
    try:
        meta = json.loads((layer_dir / contract.LAYER_METADATA).read_text())
    except (OSError, ValueError):
        return None
    return meta.get("py_version")


def python_options(py_version: str) -> list[str]:
    """Interpreter options ``ipykernel install`` adds: ``-Xfrozen_modules=off`` on 3.11+.

    Frozen stdlib modules (3.11+) hide their source from the debugger; older runtimes do not
    have them, so the option is left out there.
    """
    try:
        version = PythonVersion.of_release(py_version)
    except ValueError:
        return []
    return ["-Xfrozen_modules=off"] if version.xy_tuple >= (3, 11) else []


def stack_protocol_version(layer_dirs: list[Path]) -> str | None:
    """``kernel_protocol_version`` as the stack's own ipykernel writes it into kernel.json."""
    for layer in layer_dirs:
        for source in layer.glob("lib/python*/site-packages/ipykernel/kernelspec.py"):
            found = _PROTOCOL_RE.search(source.read_text(encoding="utf-8", errors="replace"))
            return found.group(1) if found else None
    return None


def display_name(plan: KernelPlan, py_version: str) -> str:
    """``<stack>: <app> (Python X.Y.Z)`` unless the stack file names the kernel itself."""
    return str(
        plan.settings.get("display_name") or f"{plan.stack}: {plan.app} (Python {py_version})"
    )


def build_kernel_json(
    plan: KernelPlan, spec_dir: Path, provisioner: bool = False
) -> dict[str, Any]:
    """The kernel.json content for one app layer (``spec_dir``: where it will live)."""
    py_version = layer_py_version(plan.layer_dirs[0]) or "3"
    spec = _template()
    spec["argv"] = [str(spec_dir / contract.KERNEL_LAUNCHER), *spec["argv"][1:]]
    spec["display_name"] = display_name(plan, py_version)
    spec["interrupt_mode"] = plan.settings.get("interrupt_mode", spec["interrupt_mode"])
    env = {
        contract.ENV_STACK: plan.stack,
        contract.ENV_LAYER: plan.layer,
        contract.ENV_BUILD_DIR: str(plan.layers_dir),
        contract.ENV_KERNEL: spec_dir.name,
        contract.ENV_TOOL: json.dumps(tool_command()),
    }
    if plan.spec_path is not None:
        env[contract.ENV_SPEC] = str(plan.spec_path)
    env.update({str(k): str(v) for k, v in plan.settings.get("env", {}).items()})
    spec["env"] = env
    protocol = stack_protocol_version(plan.layer_dirs)
    if protocol:
        spec["kernel_protocol_version"] = protocol
    spec.setdefault("metadata", {})
    spec["metadata"]["kernelstacks"] = {
        "stack": plan.stack,
        "spec": str(plan.spec_path) if plan.spec_path else None,
        "layer": plan.layer,
        "deploy_name": plan.deploy_name,
        "build_dir": str(plan.layers_dir),
        "lock_versions": plan.lock_versions,
        "chain": plan.chain,
        "python": str(plan.python),
        "python_version": py_version,
    }
    if provisioner:
        spec["metadata"]["kernel_provisioner"] = {"provisioner_name": PROVISIONER, "config": {}}
    return spec
