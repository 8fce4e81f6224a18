"""Kernels of a deployed stack: plans read from the deployment's own metadata.

A kernelstacks deployment names its stack and each app's layer chain (the ``kernelstacks`` key of
each record); one published by venvstacks does not, so its chain is the app's
``required_layers`` and ``runtime_layer`` and its stack is named after the deployment directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelstacks.distribute.sources import read_groups
from kernelstacks.jupyter.kernelspecs import KernelPlan
from kernelstacks_kernel import contract


def deployed_kernel_plans(target: Path) -> list:
    """Kernel plans for deployed applications whose stack provides ipykernel."""
    plans = []
    _, groups = read_groups(target)
    records = [r for kind_records in groups.values() for r in kind_records]
    for record in groups["application"]:
        stack, app, lower = _app_facts(record, target)
        chain = [record["install_target"], *lower]
        if not any(_has_ipykernel(target / name) for name in chain):
            continue
        versions = {
            r["install_target"]: r.get("lock_version")
            for r in records
            if r["install_target"] in chain
        }
        plans.append(
            KernelPlan(
                name=contract.kernel_name(stack, app),
                stack=stack,
                app=app,
                layer=record.get("layer_name") or record["install_target"],
                deploy_name=record["install_target"],
                layers_dir=target,
                chain=chain,
                lock_versions=versions,
                spec_path=None,
            )
        )
    return plans


def _app_facts(record: dict[str, Any], target: Path) -> tuple[str, str, list[str]]:
    """(stack, app name, lower layers top-down) of an application record."""
    ks = record.get("kernelstacks") or {}
    if ks.get("stack") and ks.get("app"):
        return str(ks["stack"]), str(ks["app"]), [str(n) for n in ks.get("lower_layers", [])]
    layer = str(record.get("layer_name") or record["install_target"])
    prefix = contract.BUILD_NAME_PREFIXES["application"]
    app = layer[len(prefix) :] if layer.startswith(prefix) else layer
    lower = [*record.get("required_layers", []), record.get("runtime_layer")]
    return target.name, app, [str(n) for n in lower if n]


def _has_ipykernel(layer: Path) -> bool:
    return any(layer.glob("lib/python*/site-packages/ipykernel-*.dist-info"))
