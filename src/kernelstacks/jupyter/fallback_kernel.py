"""The fallback kernel: answers every request with why the real layered kernel cannot start.

Started by :mod:`kernelstacks.jupyter.provisioner` in the Jupyter server's Python (which has
ipykernel) when a kernel's layers are missing, so the notebook shows a readable message instead of a
kernel that dies silently.
"""

from __future__ import annotations

import os
from typing import Any

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

from kernelstacks import __version__

MESSAGE = os.environ.get("KERNELSTACKS_FALLBACK_MESSAGE", "This kernelstacks kernel is broken.")


class FallbackKernel(Kernel):
    """A minimal Python-language kernel whose every execution reports the problem."""

    implementation = "kernelstacks-fallback"
    implementation_version = __version__
    language_info = {  # noqa: RUF012 - ipykernel's own class attribute convention
        "name": "python",
        "mimetype": "text/x-python",
        "file_extension": ".py",
    }
    banner = MESSAGE

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict | None = None,
        allow_stdin: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Show the message on stderr and fail the cell."""
        if not silent:
            self.send_response(self.iopub_socket, "stream", {"name": "stderr", "text": MESSAGE})
        return {
            "status": "error",
            "ename": "KernelstacksLayersMissing",
            "evalue": MESSAGE.splitlines()[0],
            "traceback": [],
            "execution_count": self.execution_count,
        }


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=FallbackKernel)
