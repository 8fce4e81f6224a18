"""Start a layered kernel: check the stack, then run ipykernel in this very process.

The kernelspec's launcher (a small ``/bin/sh`` script, ``argv[0]`` of kernel.json) sets the
environment and execs the app layer's interpreter with ``-m kernelstacks_kernel.launch``; no
process stays in between, so interrupts and shutdown reach the kernel itself. Here, in that
interpreter, the stack is checked (layers present, the layer running on its own runtime, ipykernel
importable); a broken stack starts the stdlib fallback kernel instead, which explains the problem
in the notebook. ``--check`` only reports, as JSON (``kernelstacks kernels list`` uses it).
"""

from __future__ import annotations

import json
import os
import sys

from kernelstacks_kernel import fallback, health, relaunch

EXTENSION = "kernelstacks_kernel"


def problems() -> list[str]:
    """Everything that keeps this kernel from starting, found without starting it."""
    spec_dir = health.kernel_dir()
    found = []
    if spec_dir is not None:
        found = health.layer_problems(spec_dir) or health.interpreter_problems(spec_dir)
    if not found:
        try:
            import ipykernel.kernelapp  # noqa: F401 - the import is the check
        except Exception as exc:  # any failure to import is a broken stack
            found.append(f"ipykernel cannot be imported from this kernel's layers: {exc}")
    return found


def check() -> int:
    """``--check``: print ``{"ok": ..., "problems": [...]}``; exit status 1 when broken."""
    found = problems()
    print(json.dumps({"ok": not found, "problems": found, "python": sys.executable}))
    return 1 if found else 0


def start_ipykernel(argv: list[str]) -> None:
    """What ``python -m ipykernel_launcher`` does, plus our extension."""
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # IPython puts the working directory back for user code
    relaunch.remember(argv)
    sys.argv = [sys.argv[0], *argv]
    if EXTENSION not in argv:
        sys.argv += ["--ext", EXTENSION]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m kernelstacks_kernel.launch``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--check" in args:
        return check()
    found = problems()
    if found:
        connection_file = fallback.connection_file_of(args)
        if connection_file is None:
            print(health.explain(health.kernel_dir(), found), file=sys.stderr)
            return 1
        return fallback.serve(connection_file, health.explain(health.kernel_dir(), found))
    start_ipykernel(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
