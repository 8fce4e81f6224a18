"""Kernels of a deployed stack: plans read from the deployment's own metadata."""

from __future__ import annotations

from pathlib import Path

from kernelstacks.distribute.deploy import read_source
from kernelstacks.jupyter.kernelspecs import KernelPlan
from kernelstacks_kernel import contract


def deployed_kernel_plans(target: Path) -> list:
    """Kernel plans for deployed applications whose stack provides ipykernel."""
    plans = []
    records = read_source(target)
    for record in records:
        ks = record.get("kernelstacks", {})
        if ks.get("kind") != "application":
            continue
        chain = [record["install_target"], *ks.get("lower_layers", [])]
        if not any(_has_ipykernel(target / name) for name in chain):
            continue
        versions = {
            r["install_target"]: r.get("lock_version")
            for r in records
            if r["install_target"] in chain
        }
        plans.append(
            KernelPlan(
                name=contract.kernel_name(ks["stack"], ks["app"]),
                stack=ks["stack"],
                app=ks["app"],
                layer=record["layer_name"],
                deploy_name=record["install_target"],
                layers_dir=target,
                chain=chain,
                lock_versions=versions,
                spec_path=None,
            )
        )
    return plans


def _has_ipykernel(layer: Path) -> bool:
    return any(layer.glob("lib/python*/site-packages/ipykernel-*.dist-info"))
