"""``python -m pip`` in a layered kernel: copied into every kernelspec as ``pylib/pip``.

The kernel's PYTHONPATH holds ``pylib``, so ``python -m pip`` finds this package first. In one of
the stack's interpreters it serves the stack read-only (:mod:`kernelstacks_kernel.pipshim`). Any
other Python started from the kernel (the PYTHONPATH is inherited) gets the real pip: this package
steps aside and loads the next ``pip`` on ``sys.path`` in its place.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

from kernelstacks_kernel import contract


def in_stack() -> bool:
    """Whether this interpreter is one of the kernel's layers (under its build directory)."""
    build_dir = os.environ.get(contract.ENV_BUILD_DIR)
    if not build_dir:
        return False
    root = os.path.realpath(build_dir) + os.sep
    return os.path.realpath(sys.prefix).startswith(root)


def step_aside() -> None:
    """Load the next ``pip`` on ``sys.path`` as ``pip`` (the import system then returns it)."""
    here = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != here]
    spec = importlib.machinery.PathFinder.find_spec("pip", path)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("No module named 'pip'", name="pip")
    module = importlib.util.module_from_spec(spec)
    sys.modules["pip"] = module
    spec.loader.exec_module(module)


if __name__ == "pip" and not in_stack():
    step_aside()
