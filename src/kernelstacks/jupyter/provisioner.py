"""An optional kernel provisioner (``kernels install --provisioner``): a safety net in the server.

Every kernelspec's launcher already explains a broken stack inside the notebook, and that works
in any Jupyter. This provisioner is an extra for a Jupyter that has kernelstacks installed beside
it: before each launch it checks the layers and says what is wrong in the server's log; and if
the kernelspec's own launcher is gone too, it starts the fallback kernel with the server's Python
(which has kernelstacks_kernel, since it loaded this provisioner). jupyter_client hides specs whose
provisioner it cannot load, so it is never named in a kernel.json unless asked for.

Loaded by jupyter_client through the ``jupyter_client.kernel_provisioners`` entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner


def layer_problems(argv: list[str], metadata: dict[str, Any]) -> list[str]:
    """What is missing for this kernel to start (cheap file checks, no subprocess)."""
    problems = []
    meta = metadata.get("kernelstacks", {}) if isinstance(metadata, dict) else {}
    build_dir = Path(meta.get("build_dir", ""))
    for layer in meta.get("chain", []):
        if not (build_dir / layer).is_dir():
            problems.append(f"layer '{layer}' is missing from {build_dir}")
    python = meta.get("python")
    if python and not Path(python).exists():
        problems.append(f"the kernel's interpreter {python} does not exist")
    if argv and not Path(argv[0]).exists():
        problems.append(f"the kernel's launcher {argv[0]} does not exist")
    return problems


class KernelstacksProvisioner(LocalProvisioner):
    """LocalProvisioner that logs a broken stack and covers for a missing launcher."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Check the layers; log what is wrong; start the fallback if nothing else can."""
        result = await super().pre_launch(**kwargs)
        spec = self.kernel_spec
        argv = list(spec.argv)
        problems = layer_problems(argv, dict(spec.metadata or {}))
        if not problems:
            return result
        name = getattr(self.parent, "kernel_name", "") or spec.display_name
        self.log.warning("kernelstacks kernel %s is broken: %s", name, "; ".join(problems))
        if argv and Path(argv[0]).exists():
            return result  # its launcher explains it in the notebook
        lines = [f"This kernelstacks kernel ({name}) cannot start:"]
        lines += [f"  - {p}" for p in problems]
        lines.append("Register it again with 'kernelstacks kernels install', or remove it.")
        connection_file = getattr(self.parent, "connection_file", "")
        fallback = [sys.executable, "-m", "kernelstacks_kernel.fallback"]
        result["cmd"] = [*fallback, "-f", connection_file, "--message", "\n".join(lines)]
        env = dict(result.get("env") or {})
        env.pop("PYTHONPATH", None)
        result["env"] = env
        return result
