"""Pass 7 of validation: an application's launch and support modules.

They are copied into the application layer and imported by name, so each must exist (relative
to the stack file), be a ``.py`` file or a package folder with an importable name, and not clash
with another module of the same application; a launch package needs a ``__main__.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import module_name
from kernelstacks.spec.problems import ProblemLog, RawLayer


def check_modules(
    raw: list[RawLayer], root: Path, log: ProblemLog, *, allow_outside: bool = False
) -> None:
    """Modules do not clash within an application, exist, and have importable names.

    ``root`` is the stack file's folder, which module paths are relative to; modules must lie
    inside it (symlinks followed) unless ``[tool.kernelstacks] modules_outside_stack = true``,
    since whatever they name is copied into the layer and published with it. Clashes are found
    from the paths alone, before looking at the disk (as venvstacks does), so two entries that
    would install as the same module are reported as a clash even when the files are missing.
    """
    for layer in raw:
        if layer.kind is not Kind.APPLICATION:
            continue
        names: dict[str, str] = {}
        launch = layer.data.get("launch_module")
        entries = [("launch_module", launch)] if isinstance(launch, str) else []
        entries += [("support_modules", s) for s in layer.data.get("support_modules", [])]
        for key, rel in entries:
            if not rel.strip():
                log.problem(f"'{key}' path is empty", layer, key)
                continue
            mod = module_name(Path(rel))
            if mod in names:
                log.problem(
                    f"module name '{mod}' from {rel!r} clashes with {names[mod]!r}: both "
                    "would install as the same module",
                    layer,
                    key,
                )
            names.setdefault(mod, rel)
            if allow_outside or _check_inside(layer, key, rel, root, log):
                _check_module(layer, key, rel, root, log)


def _check_inside(layer: RawLayer, key: str, rel: str, root: Path, log: ProblemLog) -> bool:
    """The module, and every symlink in a module package, stays inside the stack folder."""
    real_root = root.resolve()
    path = root / rel
    escapes = _escape(path, real_root)
    if escapes is None and path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for entry in (*dirs, *files):
                escapes = _escape(Path(folder) / entry, real_root)
                if escapes is not None:
                    break
            if escapes is not None:
                break
    if escapes is None:
        return True
    what = "is" if escapes == path else f"contains {escapes}, which"
    log.problem(
        f"module {rel!r} {what} leads outside the stack folder {real_root} (to "
        f"{escapes.resolve()}); its files would be copied into the layer and published. Move "
        "it into the stack folder, or set modules_outside_stack = true under "
        "[tool.kernelstacks] to allow this",
        layer,
        key,
    )
    return False


def _escape(path: Path, real_root: Path) -> Path | None:
    """``path`` if it (or what it links to) lies outside ``real_root``, else None."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: not ours to follow
        return path
    return None if real == real_root or real_root in real.parents else path


def _check_module(layer: RawLayer, key: str, rel: str, root: Path, log: ProblemLog) -> None:
    """Check one module path: it exists, is a module or package, and has an importable name."""
    try:
        path = root / rel
        is_file, is_dir = path.is_file(), path.is_dir()
    except (OSError, ValueError):
        is_file = is_dir = False
    if not (is_file or is_dir):
        log.problem(f"module {rel!r} not found (looked for {(root / rel).absolute()})", layer, key)
        return
    if is_file and path.suffix != ".py":
        log.problem(f"module {rel!r} must be a .py file or a package folder", layer, key)
        return
    name = module_name(path)
    if not name.isidentifier():
        log.problem(
            f"module {rel!r} gives the name '{name}', which Python cannot import "
            "(use letters, digits and '_')",
            layer,
            key,
        )
        return
    if key == "launch_module" and is_dir and not (path / "__main__.py").is_file():
        log.problem(
            f"launch package {rel!r} has no __main__.py, so 'python -m {name}' cannot run it",
            layer,
            key,
        )
