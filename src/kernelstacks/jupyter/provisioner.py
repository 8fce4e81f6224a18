"""An optional kernel provisioner: a broken layered kernel becomes a readable message.

When a kernel's layers are missing (deleted build dir, half-removed stack), the plain kernelspec
would start a process that dies at once and the notebook only says "kernel died". With this
provisioner (written into kernel.json when the installing environment has jupyter_client), the
server checks the layers before launching and, if they are broken, starts a tiny fallback kernel
in the server's own Python that answers every cell with what is wrong and how to fix it.

Loaded by jupyter_client through the ``jupyter_client.kernel_provisioners`` entry point; imports
nothing heavy at module level beyond jupyter_client itself.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

FALLBACK_ENV = "KERNELSTACKS_FALLBACK_MESSAGE"


def layer_problems(argv: list[str], metadata: dict[str, Any]) -> list[str]:
    """What is missing for this kernel to start (cheap file checks, no subprocess)."""
    problems = []
    meta = metadata.get("kernelstacks", {}) if isinstance(metadata, dict) else {}
    build_dir = Path(meta.get("build_dir", ""))
    for layer in meta.get("chain", []):
        if not (build_dir / layer).is_dir():
            problems.append(f"layer '{layer}' is missing from {build_dir}")
    if argv and not Path(argv[0]).exists():
        problems.append(f"the kernel's interpreter {argv[0]} does not exist")
    return problems


def fallback_message(name: str, meta: dict[str, Any], problems: list[str]) -> str:
    """The text the fallback kernel shows in every cell."""
    spec = meta.get("spec", "<stack file>")
    lines = [f"This kernelstacks kernel ({name}) cannot start:"]
    lines += [f"  - {p}" for p in problems]
    lines += [
        "Rebuild the stack and re-register its kernels:",
        f"  kernelstacks build {spec} --lock-if-needed --kernels",
        "or remove kernels whose layers are gone: kernelstacks kernels prune",
    ]
    return "\n".join(lines)


class KernelstacksProvisioner(LocalProvisioner):
    """LocalProvisioner that swaps in a fallback kernel when the layers are broken."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Check the layers; if broken, launch the fallback kernel instead."""
        result = await super().pre_launch(**kwargs)
        spec = self.kernel_spec
        problems = layer_problems(list(spec.argv), dict(spec.metadata or {}))
        if not problems or importlib.util.find_spec("ipykernel") is None:
            return result
        name = getattr(self.parent, "kernel_name", "") or spec.display_name
        message = fallback_message(name, spec.metadata.get("kernelstacks", {}), problems)
        connection_file = getattr(self.parent, "connection_file", "")
        result["cmd"] = [
            sys.executable,
            "-m",
            "kernelstacks.jupyter.fallback_kernel",
            "-f",
            connection_file,
        ]
        env = dict(result.get("env") or {})
        env[FALLBACK_ENV] = message
        env.pop("PYTHONPATH", None)
        result["env"] = env
        self.log.warning("kernelstacks: %s", message)
        return result
