"""Application layers as Jupyter kernels: real ``kernel.json`` files, and a record of them.

We write plain kernelspec directories (never a custom KernelSpecManager, which nbconvert,
papermill and VS Code would not see). Each spec we write carries ``metadata.kernelstacks`` and a
``kernelstacks.json`` record beside ``kernel.json``; that marker is how ``list``, ``remove`` and
``prune`` know a spec is ours, so ``python3`` and any spec kernelstacks did not write are never
touched.  ``argv`` execs the layer's interpreter directly (no wrapper process), the shape VS Code
requires.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.lock.metadata import lock_path, read_meta
from kernelstacks.spec.model import LayerSpec, StackSpec, matches

RECORD = "kernelstacks.json"
KERNEL_SIDE_PACKAGE = "kernelstacks_kernel"
PROVISIONER = "kernelstacks-provisioner"


@dataclass
class KernelRecord:
    """A kernelspec kernelstacks wrote, as found on disk."""

    name: str
    directory: Path
    spec: dict[str, Any]
    record: dict[str, Any]
    health: str = "unknown"
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``kernels list --json``."""
        meta = self.spec.get("metadata", {}).get("kernelstacks", {})
        return {
            "name": self.name,
            "directory": str(self.directory),
            "display_name": self.spec.get("display_name"),
            "stack": meta.get("stack"),
            "spec": meta.get("spec"),
            "layer": meta.get("layer"),
            "deploy_name": meta.get("deploy_name"),
            "lock_versions": meta.get("lock_versions", {}),
            "chain": meta.get("chain", []),
            "python": (self.spec.get("argv") or [None])[0],
            "health": self.health,
            "problems": self.problems,
        }


# -- where kernelspecs go ------------------------------------------------------------------------


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


def search_dirs(extra_prefixes: list[Path] | None = None) -> list[Path]:
    """Every kernels directory Jupyter looks in, plus ``--prefix`` ones given by the user."""
    from jupyter_core.paths import jupyter_path

    dirs = [Path(p) for p in jupyter_path("kernels")]
    dirs.append(Path(sys.prefix) / "share" / "jupyter" / "kernels")
    dirs += [Path(p).absolute() / "share" / "jupyter" / "kernels" for p in extra_prefixes or []]
    return list(dict.fromkeys(dirs))


# -- which applications are kernels -------------------------------------------------------------


def kernel_name(stack: StackSpec, app: LayerSpec) -> str:
    """Stable, namespaced kernel name: ``kernelstacks-<stack>-<app>`` (Jupyter wants lowercase)."""
    raw = f"kernelstacks-{stack.name}-{app.name}".lower()
    return re.sub(r"[^a-z0-9._-]+", "-", raw)


def stack_packages(stack: StackSpec, app: LayerSpec) -> set[str]:
    """Names of packages locked in the app's layer and every layer below it."""
    from kernelstacks.lock.resolve import read_pylock

    names: set[str] = set()
    for layer in [app, *stack.lower_layers(app)]:
        path = lock_path(stack, layer)
        if path.is_file():
            names.update(read_pylock(path))
    return names


def select_kernel_apps(stack: StackSpec, include: list[str] | None) -> list[LayerSpec]:
    """Applications that become kernels.

    Default: every app whose stack provides ipykernel. ``[tool.kernelstacks] kernels`` narrows to
    matching apps (and adds ipykernel to them); an app named explicitly (by those patterns or by
    ``--include``) that still lacks ipykernel is an error saying how to fix the spec.
    """
    patterns = stack.settings.get("kernels")
    selected = [layer for layer in stack.select(include) if layer.kind.value == "application"]
    explicit: set[str] = set()
    if include:
        explicit = {
            app.build_name for app in selected if matches(app.name, app.build_name, include)
        }
    if patterns is not None:
        chosen = {
            a.build_name for a in stack.applications if matches(a.name, a.build_name, patterns)
        }
        selected = [a for a in selected if a.build_name in chosen]
        explicit |= chosen & {a.build_name for a in selected}
    kernels = []
    for app in selected:
        if "ipykernel" in stack_packages(stack, app):
            kernels.append(app)
        elif app.build_name in explicit:
            raise KernelstacksError(
                f"{stack.path}: application '{app.name}' cannot be a kernel: no layer of its "
                'stack provides ipykernel (or it is not locked yet). Add "ipykernel" (and '
                '"ipywidgets" for the explorer) to its requirements or to a framework it uses, '
                f'or list it in [tool.kernelstacks] kernels = ["{app.name}"], which adds them; '
                "then run 'kernelstacks build --lock-if-needed'."
            )
    return kernels


# -- building kernel.json -----------------------------------------------------------------------


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
        "PYTHONPATH": str(spec_dir / "pylib"),
        "KERNELSTACKS_STACK": plan.stack,
        "KERNELSTACKS_LAYER": plan.layer,
        "KERNELSTACKS_BUILD_DIR": str(plan.layers_dir),
        "KERNELSTACKS_KERNEL": spec_dir.name,
        "KERNELSTACKS_TOOL": json.dumps(_tool_command()),
    }
    if plan.spec_path is not None:
        env["KERNELSTACKS_SPEC"] = str(plan.spec_path)
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
        meta = json.loads((layer_dir / "share/venv/metadata/venvstacks_layer.json").read_text())
    except (OSError, ValueError):
        return None
    return meta.get("py_version")


# -- install / list / remove / prune ------------------------------------------------------------


def _is_ours(directory: Path) -> bool:
    """A spec is ours when it has our record and our metadata marker."""
    try:
        spec = json.loads((directory / "kernel.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (directory / RECORD).is_file() and "kernelstacks" in spec.get("metadata", {})


def install_kernel(
    stack: StackSpec,
    app: LayerSpec,
    build_dir: Path,
    target: Path,
    force: bool = False,
    provisioner: bool | None = None,
) -> Path:
    """Write (or update in place) the kernelspec of a built app layer; returns its directory."""
    python = build_dir / app.build_name / "bin" / "python"
    if not python.exists():
        raise KernelstacksError(
            f"{app.build_name} is not built ({python} missing): run 'kernelstacks build "
            f"{stack.path}' first, or 'kernelstacks build --kernels'"
        )
    return write_kernelspec(plan_for_app(stack, app, build_dir), target, force, provisioner)


def write_kernelspec(
    plan: KernelPlan, target: Path, force: bool = False, provisioner: bool | None = None
) -> Path:
    """Write one kernelspec directory atomically under ``target`` (refusing foreign specs)."""
    final = target / plan.name
    if final.exists() and not _is_ours(final) and not force:
        raise KernelstacksError(
            f"a kernelspec named '{plan.name}' already exists in {target} and was not written "
            "by kernelstacks; remove it or pass --force to replace it"
        )
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.name}.", dir=target))
    try:
        _fill_spec_dir(plan, staging, final, provisioner)
        _replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _fill_spec_dir(plan: KernelPlan, staging: Path, final: Path, provisioner: bool | None) -> None:
    """kernel.json, logos, the kernel-side package and our record."""
    spec = build_kernel_json(plan, final, provisioner)
    (staging / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    for logo in ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg"):
        shutil.copyfile(kernelspecs_dir() / logo, staging / logo)
    package = resources.files(KERNEL_SIDE_PACKAGE)
    with resources.as_file(package) as src:
        shutil.copytree(
            src,
            staging / "pylib" / KERNEL_SIDE_PACKAGE,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    record = {
        "written_by": "kernelstacks",
        "spec": str(plan.spec_path) if plan.spec_path else None,
        "layer": plan.layer,
        "build_dir": str(plan.layers_dir),
        "tool": _tool_command(),
    }
    (staging / RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    staging.chmod(0o755)


def _replace_dir(staging: Path, final: Path) -> None:
    """Swap a finished spec dir in, so Jupyter never reads a half-written one."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def find_kernels(extra_prefixes: list[Path] | None = None) -> list[KernelRecord]:
    """Every kernelspec kernelstacks wrote, in Jupyter's search path (first one of a name wins)."""
    found: dict[str, KernelRecord] = {}
    for directory in search_dirs(extra_prefixes):
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if entry.name in found or entry.name.startswith(".") or not _is_ours(entry):
                continue
            spec = json.loads((entry / "kernel.json").read_text(encoding="utf-8"))
            record = json.loads((entry / RECORD).read_text(encoding="utf-8"))
            found[entry.name] = KernelRecord(entry.name, entry, spec, record)
    return list(found.values())


def check_health(kernel: KernelRecord) -> KernelRecord:
    """Layers present and the interpreter runs (with the chain, as the kernel will)."""
    meta = kernel.spec.get("metadata", {}).get("kernelstacks", {})
    build_dir = Path(meta.get("build_dir", ""))
    for layer in meta.get("chain", []):
        if not (build_dir / layer).is_dir():
            kernel.problems.append(f"layer {layer} missing from {build_dir}")
    python = Path(kernel.spec["argv"][0])
    if not python.exists():
        kernel.problems.append(f"interpreter {python} missing")
    elif not kernel.problems:
        proc = subprocess.run(
            [str(python), "-c", "import ipykernel"], capture_output=True, text=True, timeout=60
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            kernel.problems.append(f"interpreter does not start the kernel: {last}")
    kernel.health = "ok" if not kernel.problems else "broken"
    return kernel


def remove_kernel(kernel: KernelRecord) -> None:
    """Delete a spec dir we wrote (refuses anything else)."""
    if not _is_ours(kernel.directory):
        raise KernelstacksError(f"{kernel.directory} was not written by kernelstacks; not removing")
    shutil.rmtree(kernel.directory)
