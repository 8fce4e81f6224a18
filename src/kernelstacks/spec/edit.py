"""Edit a layer's requirements in the stack file with tomlkit, keeping comments and layout.

Used by ``kernelstacks add|remove`` and, through them, by ``%venvstacks add|remove`` in a
notebook. The edited file is validated before it replaces the original, so a bad edit never
leaves a broken stack file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from kernelstacks._support import atomic
from kernelstacks._support.errors import KernelstacksError, did_you_mean
from kernelstacks.spec import load_spec
from kernelstacks.spec.model import LayerSpec, StackSpec


def find_layer(stack: StackSpec, name: str) -> LayerSpec:
    """A layer by name or build name, with a did-you-mean."""
    for layer in stack.layers.values():
        if name in (layer.name, layer.build_name):
            return layer
    known = [layer.build_name for layer in stack.layers.values()]
    raise KernelstacksError(
        f"{stack.path}: no layer named '{name}'{did_you_mean(name, known)} "
        f"(layers: {', '.join(known)})"
    )


def _parse(req: str) -> Requirement:
    try:
        return Requirement(req)
    except InvalidRequirement as exc:
        raise KernelstacksError(f"invalid requirement {req!r}: {exc}") from None


def edit_requirements(
    spec_path: Path,
    layer_name: str,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> tuple[LayerSpec, list[str]]:
    """Add (or replace by name) and remove requirements of one layer; returns what changed."""
    stack = load_spec(spec_path)
    layer = find_layer(stack, layer_name)
    text = Path(spec_path).read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    table = doc[layer.kind.section][layer.index]
    reqs = table["requirements"]
    changes: list[str] = []
    for req in add:
        new = _parse(req)
        for i, old in enumerate(list(reqs)):
            if canonicalize_name(_parse(str(old)).name) == canonicalize_name(new.name):
                if str(old) != req:
                    reqs[i] = req
                    changes.append(f"{old} -> {req}")
                break
        else:
            reqs.append(req)
            changes.append(f"+ {req}")
    for req in remove:
        name = canonicalize_name(_parse(req).name)
        matches = [
            i for i, old in enumerate(reqs) if canonicalize_name(_parse(str(old)).name) == name
        ]
        if not matches:
            current = ", ".join(str(r) for r in reqs) or "none"
            raise KernelstacksError(
                f"{spec_path}: layer '{layer.build_name}' has no requirement named '{req}' "
                f"(its requirements: {current})"
            )
        for i in reversed(matches):
            changes.append(f"- {reqs[i]}")
            del reqs[i]
    if changes:
        _write_validated(Path(spec_path), tomlkit.dumps(doc))
    return layer, changes


def _write_validated(path: Path, text: str) -> None:
    """Validate the new text as a stack file, then atomically replace the original.

    The text is validated from a scratch file beside the original (module paths in a stack file
    are relative to its folder); only if it loads does it replace the original, in one rename.
    """
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        load_spec(scratch)
    finally:
        Path(scratch).unlink(missing_ok=True)
    atomic.write_text(path, text)
