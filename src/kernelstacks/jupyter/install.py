"""Register, replace and remove the kernelspecs of a stack's application layers.

A kernelspec directory is prepared completely beside its final place and swapped in with the
journaled swap, so Jupyter never lists a half-written spec. Specs kernelstacks did not write
(``python3``, anything without our record) are never replaced without ``--force`` and never
removed.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.swap import discard, new_staging_dir, remove_tree, swap_in
from kernelstacks.jupyter.kernelspecs import (
    KERNEL_SIDE_PACKAGE,
    KernelPlan,
    _tool_command,
    build_kernel_json,
    kernels_dir,
    kernelspecs_dir,
    plan_for_app,
)
from kernelstacks.jupyter.registry import KernelRecord, is_ours
from kernelstacks.lock.metadata import lock_path
from kernelstacks.spec.model import LayerSpec, StackSpec, matches
from kernelstacks_kernel import contract

RECORD = contract.KERNEL_RECORD


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


def install_kernels(
    stack: StackSpec,
    include: list[str] | None,
    build_dir: Path | None,
    scope: str,
    prefix: Path | None,
    force: bool = False,
    provisioner: bool | None = None,
) -> list[tuple[str, Path]]:
    """Install kernelspecs for the stack's kernel apps; returns (name, directory) pairs."""
    from kernelstacks.build.state import default_build_dir

    target = kernels_dir(scope, prefix)
    build = Path(build_dir).absolute() if build_dir else default_build_dir(stack)
    apps = select_kernel_apps(stack, include)
    if not apps:
        raise KernelstacksError(
            f"{stack.path}: no application layer provides ipykernel, so none can be a kernel. "
            'Add "ipykernel" to an application or a framework it uses, or set '
            '[tool.kernelstacks] kernels = ["*"], then build again.'
        )
    done = []
    for app in apps:
        path = install_kernel(stack, app, build, target, force=force, provisioner=provisioner)
        done.append((path.name, path))
    return done


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
    if final.exists() and not is_ours(final) and not force:
        raise KernelstacksError(
            f"a kernelspec named '{plan.name}' already exists in {target} and was not written "
            "by kernelstacks; remove it or pass --force to replace it"
        )
    staging = new_staging_dir(final)
    try:
        _fill_spec_dir(plan, staging, final, provisioner)
        swap_in(staging, final)
    except BaseException:
        remove_tree(staging)
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
            staging / contract.KERNEL_PYLIB / KERNEL_SIDE_PACKAGE,
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


def remove_kernel(kernel: KernelRecord) -> None:
    """Delete a spec dir we wrote (refuses anything else)."""
    if not is_ours(kernel.directory):
        raise KernelstacksError(f"{kernel.directory} was not written by kernelstacks; not removing")
    discard(kernel.directory)
