"""Which operations a command selects for each layer, and venvstacks' stack status document.

``--show``, ``--show-only`` and ``--json`` on ``show``, ``lock``, ``build``, ``publish`` and
``local-export`` print the same document as venvstacks 0.8 (``{spec_name, runtimes, frameworks,
applications}``; each entry ``{name, install_target, has_valid_lock, selected_operations}``,
``dependencies`` on ``show``), so scripts and dashboards written for venvstacks read ours as they
are. The layer selection follows venvstacks' rules (``--include`` patterns, dependencies "if
needed", derived layers on request, ``--reset-lock``); kernelstacks' own facts about each layer
go under one added key, ``kernelstacks``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kernelstacks._support.errors import KernelstacksError, did_you_mean
from kernelstacks._support.host import current_platform
from kernelstacks.lock.metadata import lock_status
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import LayerSpec, StackSpec

#: An operation's state: True (do it), None (only if needed), False (skip).
OpState = bool | None


@dataclass
class LayerOps:
    """The operations selected for one layer (venvstacks' ``want_*`` flags)."""

    lock: OpState = False
    build: OpState = False
    publish: bool = False
    reset_lock: bool = False

    def names(self) -> list[str]:
        """``["reset-lock", "lock", "build-if-needed", ...]`` as venvstacks reports them."""
        states: list[tuple[str, OpState]] = [
            ("reset-lock", self.reset_lock),
            ("lock", self.lock),
            ("build", self.build),
            ("publish", self.publish),
        ]
        return [op if state else f"{op}-if-needed" for op, state in states if state is not False]


@dataclass
class Selection:
    """What one command asks for: operations on the included layers and on related ones."""

    lock: OpState = False
    build: OpState = False
    publish: bool = False
    lock_dependencies: bool = False
    build_dependencies: bool = False
    publish_dependencies: bool = False
    build_derived: bool = False
    publish_derived: bool = False
    reset_lock: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Operations per selected layer (build name -> ops); unselected layers are absent."""

    ops: dict[str, LayerOps]
    unmatched: list[str] = field(default_factory=list)

    def published(self) -> set[str]:
        """Build names whose archives venvstacks' rules write (publish, build --publish)."""
        return {name for name, ops in self.ops.items() if ops.publish}


def _targets_platform(layer: LayerSpec) -> bool:
    return current_platform() in layer.platforms


def _apply(ops: LayerOps, layer: LayerSpec) -> LayerOps:
    """Building and publishing only happen on a layer's target platforms (locking everywhere)."""
    if not _targets_platform(layer):
        ops.build = False
        ops.publish = False
    return ops


def match_layers(stack: StackSpec, patterns: Iterable[str]) -> tuple[list[str], list[str]]:
    """Build names matching any pattern (by name or build name), and patterns matching none."""
    found: list[str] = []
    unmatched: list[str] = []
    for pattern in patterns:
        hits = [
            n
            for n, layer in stack.layers.items()
            if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(layer.name, pattern)
        ]
        if not hits:
            unmatched.append(pattern)
        found += [n for n in hits if n not in found]
    return found, unmatched


def plan_all(stack: StackSpec, sel: Selection) -> Plan:
    """No ``--include``: every layer gets the command's operations."""
    reset = set(match_layers(stack, sel.reset_lock)[0])
    return Plan(
        {
            n: _apply(LayerOps(sel.lock, sel.build, sel.publish, n in reset), layer)
            for n, layer in stack.layers.items()
        }
    )


def plan_included(stack: StackSpec, included: list[str], sel: Selection) -> Plan:
    """venvstacks' ``select_layers``: included layers, their dependencies and derived layers.

    Dependencies are locked and built only if needed unless asked for; derived layers (built on
    an included one) are always relocked when locking, and built or published on request.
    """
    lock_derived = bool(sel.lock)
    lock_deps, build_deps, publish_deps = (
        sel.lock_dependencies,
        sel.build_dependencies,
        sel.publish_dependencies,
    )
    build_derived, publish_derived = sel.build_derived, sel.publish_derived
    if not sel.lock:
        lock_deps = False
    elif not lock_deps:
        build_deps = publish_deps = False
    if sel.build:
        publish_deps = publish_deps and build_deps
        publish_derived = publish_derived and build_derived
    else:
        build_deps = build_derived = False
    if not sel.publish:
        publish_deps = publish_derived = False
    reset = set(match_layers(stack, sel.reset_lock)[0])
    chosen = set(included)
    deps: set[str] = set()
    derived: set[str] = set()
    for name, layer in stack.layers.items():
        if layer.kind is Kind.RUNTIME or layer.disabled:
            continue
        if name in chosen:
            deps.update(low for low in layer.lower if low not in chosen)
        elif (lock_derived or build_derived or publish_derived) and chosen & set(layer.lower):
            derived.add(name)
    rules = [("lock", lock_derived, lock_deps), ("build", build_derived, build_deps)]
    rules.append(("publication", publish_derived, publish_deps))
    _check_conflicts(derived & deps, rules)
    ops: dict[str, LayerOps] = {}
    for name, layer in stack.layers.items():
        if name in chosen:
            ops[name] = LayerOps(sel.lock, sel.build, sel.publish, name in reset)
        elif name in derived:
            ops[name] = LayerOps(lock_derived, build_derived, publish_derived)
            ops[name].reset_lock = lock_derived and name in reset
        elif name in deps:
            ops[name] = LayerOps(lock_deps or None, build_deps or None, publish_deps)
            ops[name].reset_lock = lock_deps and name in reset
        else:
            continue
        _apply(ops[name], layer)
    return Plan(ops)


def _check_conflicts(both: set[str], rules: list[tuple[str, bool, bool]]) -> None:
    """A layer both below and above included layers cannot get two different instructions."""
    if not both:
        return
    for cause, derived, deps in rules:
        if derived != deps:
            raise KernelstacksError(
                f"conflicting {cause} instructions for {sorted(both)}: these layers are both "
                "below and above included layers (pass the matching --*-dependencies and "
                "--*-derived options together)"
            )


def make_plan(
    stack: StackSpec, include: list[str] | None, sel: Selection, allow_missing: bool
) -> Plan:
    """The plan for a command; patterns that match no layer fail unless ``--allow-missing``."""
    patterns = list(include or [])
    unmatched = match_layers(stack, sel.reset_lock)[1]
    if patterns:
        included, missing = match_layers(stack, patterns)
        unmatched = missing + unmatched
        plan = plan_included(stack, included, sel)
    else:
        plan = plan_all(stack, sel)
    if unmatched and not allow_missing:
        known = [layer.name for layer in stack.layers.values()] + list(stack.layers)
        hint = did_you_mean(unmatched[0], known) if len(unmatched) == 1 else ""
        raise KernelstacksError(
            f"{stack.path}: {', '.join(map(repr, unmatched))} matches no layer{hint} "
            "(pass --allow-missing to make this a warning)"
        )
    plan.unmatched = unmatched
    return plan


def layer_status(
    stack: StackSpec, layer: LayerSpec, ops: LayerOps | None, deps: bool
) -> dict[str, Any]:
    """One entry of the status document (venvstacks' ``LayerStatus``)."""
    status = lock_status(stack, layer)
    target = layer.build_name
    if layer.versioned:  # venvstacks: the lock version only while the lock is valid
        version = status.lock_version if status.valid else None
        target += f"@{version if version is not None else '???'}"
    entry: dict[str, Any] = {
        "name": layer.build_name,
        "install_target": target,
        "has_valid_lock": status.valid,
        "selected_operations": ops.names() if ops is not None else None,
    }
    if deps and layer.kind is not Kind.RUNTIME:
        entry["dependencies"] = [
            layer_status(stack, low, None, False) for low in stack.lower_layers(layer)
        ]
    return entry


def status_document(
    stack: StackSpec, plan: Plan, *, report_ops: bool = True, include_deps: bool = False
) -> dict[str, Any]:
    """venvstacks' ``StackStatus`` for the layers a plan selected."""
    sections = {Kind.RUNTIME: "runtimes", Kind.FRAMEWORK: "frameworks"}
    document: dict[str, Any] = {
        "spec_name": str(stack.path.absolute()),
        "runtimes": [],
        "frameworks": [],
        "applications": [],
    }
    for name, layer in stack.layers.items():
        if name not in plan.ops:
            continue
        ops = plan.ops[name] if report_ops else None
        section = sections.get(layer.kind, "applications")
        document[section].append(layer_status(stack, layer, ops, include_deps))
    return document
