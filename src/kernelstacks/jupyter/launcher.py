"""The scripts inside a kernelspec: the kernel's launcher (``argv[0]``) and its ``pip`` commands.

The launcher is a few lines of POSIX shell, so it runs whatever is left of the stack: it extends
``PATH``, ``PYTHONPATH`` and ``JUPYTER_PATH`` (never replacing what the Jupyter server passed on),
then ``exec``s the app layer's interpreter on :mod:`kernelstacks_kernel.launch`, which checks the
stack and starts ipykernel in that same process. If a layer or the interpreter is gone (a layer's
Python refuses to start without its lower layers) it execs any Python 3 it can find on
:mod:`kernelstacks_kernel.fallback`, so the notebook still says what is wrong. Either way no
process stays in between: interrupts and shutdown reach the kernel.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from kernelstacks_kernel import contract


def _q(value: str | Path) -> str:
    return shlex.quote(str(value))


def _prepend(var: str, entries: list[str]) -> str:
    """``VAR='a:b'"${VAR:+:$VAR}"; export VAR``: ours first, the inherited value kept."""
    joined = ":".join(entries)
    return f'{var}={_q(joined)}"${{{var}:+:${var}}}"; export {var}'


def launcher_script(
    name: str,
    spec_dir: Path,
    python: Path,
    layer_dirs: list[Path],
    jupyter_dirs: list[str],
    python_options: list[str],
) -> str:
    """The text of ``kernelstacks-launch`` for one kernel."""
    runtime_python = layer_dirs[-1] / "bin" / "python3"
    fallbacks = " ".join(_q(p) for p in (runtime_python, sys.executable, "python3"))
    exec_line = " ".join(
        [
            'exec "$python"',
            *(_q(o) for o in python_options),
            "-m kernelstacks_kernel.launch",
            '"$@"',
        ]
    )
    lines = [
        "#!/bin/sh",
        f"# kernelstacks launcher of the Jupyter kernel {name} (generated: do not edit).",
        "# It extends the environment, then execs the layer's interpreter, which checks the",
        "# stack and runs ipykernel; a broken stack is explained in the notebook instead.",
        f"{contract.ENV_KERNEL_DIR}={_q(spec_dir)}; export {contract.ENV_KERNEL_DIR}",
        _prepend("PATH", [str(spec_dir / contract.KERNEL_BIN), *(f"{d}/bin" for d in layer_dirs)]),
        _prepend("PYTHONPATH", [str(spec_dir / contract.KERNEL_PYLIB)]),
    ]
    if jupyter_dirs:
        lines.append(_prepend("JUPYTER_PATH", jupyter_dirs))
    layers = " ".join(_q(d) for d in layer_dirs)
    lines += [
        f"python={_q(python)}",
        "whole=yes",
        f'for layer in {layers}; do [ -d "$layer" ] || whole=no; done',
        'if [ "$whole" = yes ] && [ -x "$python" ]; then',
        f"    {exec_line}",
        "fi",
        "# A layer or the interpreter is gone (the layer's Python would refuse to start):",
        "# explain it in the notebook with any Python 3 found here.",
        f"for candidate in {fallbacks}; do",
        '    if command -v "$candidate" >/dev/null 2>&1; then',
        '        exec "$candidate" -m kernelstacks_kernel.fallback "$@"',
        "    fi",
        "done",
        f'echo "kernelstacks: kernel {name} cannot start: its stack is incomplete" >&2',
        "exit 1",
        "",
    ]
    return "\n".join(lines)


def pip_script(python: Path) -> str:
    """``bin/pip`` of a kernelspec: the stack's read-only pip (``python -m pip`` finds ours)."""
    return (
        "#!/bin/sh\n"
        "# kernelstacks: pip in this kernel serves its locked layers read-only.\n"
        f'exec {_q(python)} -m pip "$@"\n'
    )


def pip_names(py_version: str) -> list[str]:
    """``pip``, ``pip3`` and ``pip3.X`` (what a venv with pip would have)."""
    parts = py_version.split(".")
    names = ["pip", "pip3"]
    if len(parts) >= 2:
        names.append(f"pip{parts[0]}.{parts[1]}")
    return names
