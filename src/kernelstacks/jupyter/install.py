"""Register, replace and remove the kernelspecs of a stack's application layers.

A kernelspec directory is prepared completely beside its final place and swapped in with the
journaled swap, so Jupyter never lists a half-written spec. Specs kernelstacks did not write
(``python3``, anything without our record) are never replaced without ``--force`` and never
removed. A stack whose layers are not all built is not registered unless ``--force`` says so.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.swap import discard, new_staging_dir, remove_tree, swap_in
from kernelstacks.jupyter.kernelspecs import (
    KERNEL_SIDE_PACKAGE,
    KernelPlan,
    build_kernel_json,
    kernels_dir,
    layer_py_version,
    plan_for_app,
    python_options,
    scope_prefix,
    tool_command,
)
from kernelstacks.jupyter.launcher import launcher_script, pip_names, pip_script
from kernelstacks.jupyter.logos import write_logos
from kernelstacks.jupyter.registry import KernelRecord, is_ours
from kernelstacks.lock.metadata import lock_path
from kernelstacks.spec.model import LayerSpec, StackSpec, matches
from kernelstacks_kernel import contract

RECORD = contract.KERNEL_RECORD


@dataclass
class Target:
    """Where kernelspecs go: the kernels directory and the scope that chose it."""

    scope: str
    prefix: Path | None = None

    @property
    def directory(self) -> Path:
        """The ``kernels`` directory itself."""
        return kernels_dir(self.scope, self.prefix)

    @property
    def root(self) -> Path | None:
        """The prefix written under (None: the per-user directory)."""
        return scope_prefix(self.scope, self.prefix)


@dataclass
class Installed:
    """What ``install_kernels`` did: (name, directory) pairs and loud warnings."""

    kernels: list[tuple[str, Path]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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
    target: Target,
    force: bool = False,
    provisioner: bool = False,
) -> Installed:
    """Install kernelspecs for the stack's kernel apps."""
    from kernelstacks.build.state import default_build_dir

    build = Path(build_dir).absolute() if build_dir else default_build_dir(stack)
    apps = select_kernel_apps(stack, include)
    if not apps:
        raise KernelstacksError(
            f"{stack.path}: no application layer provides ipykernel, so none can be a kernel. "
            'Add "ipykernel" to an application or a framework it uses, or set '
            '[tool.kernelstacks] kernels = ["*"], then build again.'
        )
    done = Installed()
    plans = [plan_for_app(stack, app, build) for app in apps]
    for plan in plans:
        missing = plan.missing_layers()
        if not missing:
            continue
        message = (
            f"{stack.path}: application '{plan.app}' is not fully built in {build}: missing "
            f"{', '.join(missing)}. Run '{_tool()} build {stack.path} --lock-if-needed' first "
            "(or 'build --kernels' to do both)"
        )
        if not force:
            raise KernelstacksError(message + "; --force registers it anyway (broken).")
        done.warnings.append(
            f"{message}. Registered anyway (--force): kernel {plan.name} is BROKEN"
        )
    for plan in plans:
        path = write_kernelspec(plan, target, force=force, provisioner=provisioner)
        done.kernels.append((path.name, path))
    return done


def _tool() -> str:
    """The tool command as a user types it."""
    return shlex.join(tool_command())


def repair_commands(plan: KernelPlan, target: Target) -> tuple[list[str], str]:
    """How to fix this kernel where it is registered, and how to remove it (for the record)."""
    root = target.root
    where = ["--prefix", str(root)] if root is not None else []
    remove = shlex.join(["kernelstacks", "kernels", "remove", plan.name, *where])
    remove = remove.replace("kernelstacks", _tool(), 1)
    if plan.spec_path is None:
        redeploy = (
            f"redeploy the stack into {plan.layers_dir} with {_tool()} deploy ... "
            f"{shlex.quote(str(plan.layers_dir))} "
            + (f"--prefix {shlex.quote(str(root))}" if root is not None else "--kernels")
        )
        return [redeploy], remove
    kernels = ["--kernels-prefix", str(root)] if root is not None else ["--kernels"]
    args = ["build", str(plan.spec_path), "--lock-if-needed", "--build-dir", str(plan.layers_dir)]
    return [f"{_tool()} {shlex.join([*args, *kernels])}"], remove


def write_kernelspec(
    plan: KernelPlan, target: Target, force: bool = False, provisioner: bool = False
) -> Path:
    """Write one kernelspec directory atomically under the target (refusing foreign specs)."""
    final = target.directory / plan.name
    if final.exists() and not is_ours(final) and not force:
        raise KernelstacksError(
            f"a kernelspec named '{plan.name}' already exists in {target.directory} and was not "
            "written by kernelstacks; remove it or pass --force to replace it"
        )
    staging = new_staging_dir(final)
    try:
        _fill_spec_dir(plan, staging, final, target, provisioner)
        swap_in(staging, final)
    except BaseException:
        remove_tree(staging)
        raise
    return final


def _executable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


def _fill_spec_dir(
    plan: KernelPlan, staging: Path, final: Path, target: Target, provisioner: bool
) -> None:
    """kernel.json, the launcher and pip commands, logos, the kernel-side package, our record."""
    spec = build_kernel_json(plan, final, provisioner)
    (staging / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    py_version = layer_py_version(plan.layer_dirs[0]) or ""
    jupyter_dirs = [str(d / "share" / "jupyter") for d in plan.layer_dirs[1:]]
    script = launcher_script(
        plan.name,
        final,
        plan.python,
        plan.layer_dirs,
        [d for d in jupyter_dirs if Path(d).is_dir()],
        python_options(py_version),
    )
    _executable(staging / contract.KERNEL_LAUNCHER, script)
    (staging / contract.KERNEL_BIN).mkdir()
    for name in pip_names(py_version):
        _executable(staging / contract.KERNEL_BIN / name, pip_script(plan.python))
    logo = plan.settings.get("logo")
    custom = (plan.spec_path.parent / logo) if (logo and plan.spec_path) else None
    write_logos(staging, plan.stack, plan.app, custom)
    _copy_kernel_side(staging / contract.KERNEL_PYLIB)
    fix, remove = repair_commands(plan, target)
    record = {
        "written_by": "kernelstacks",
        "spec": str(plan.spec_path) if plan.spec_path else None,
        "layer": plan.layer,
        "build_dir": str(plan.layers_dir),
        "tool": tool_command(),
        "scope": target.scope,
        "prefix": str(target.root) if target.root is not None else None,
        "fix": fix,
        "remove": remove,
    }
    (staging / RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    staging.chmod(0o755)


def _copy_kernel_side(pylib: Path) -> None:
    """``pylib/kernelstacks_kernel`` and the ``pip`` package (``python -m pip`` in the kernel)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    with resources.as_file(resources.files(KERNEL_SIDE_PACKAGE)) as src:
        shutil.copytree(src, pylib / KERNEL_SIDE_PACKAGE, ignore=ignore)
        shutil.copytree(Path(src) / "pip_package", pylib / "pip", ignore=ignore)


def remove_kernel(kernel: KernelRecord) -> None:
    """Delete a spec dir we wrote (refuses anything else)."""
    if not is_ours(kernel.directory):
        raise KernelstacksError(f"{kernel.directory} was not written by kernelstacks; not removing")
    discard(kernel.directory)
