"""Run a layer's own post-install step: relocate it for where it lands, compile its bytecode.

Every built layer carries ``postinstall.py`` (stdlib only: :mod:`kernelstacks.build.postinstall`);
export and deploy run the copy *this* kernelstacks ships, so layers built by an older version get
the current step.
"""

from __future__ import annotations

from pathlib import Path

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.processes import ProcessError, clean_env, run
from kernelstacks_kernel import contract

POSTINSTALL = Path(contract.POSTINSTALL)


def current_postinstall() -> bytes:
    """This kernelstacks' post-install step (layers built by older versions get the new one)."""
    return (Path(__file__).parent.parent / "build" / "postinstall.py").read_bytes()


def run_postinstall(python: Path, layer: Path, final: Path) -> None:
    """Run ``layer``'s post-install step with ``python`` (its runtime), computed for ``final``."""
    script = layer / POSTINSTALL
    cmd: list[str | Path] = [python, "-I", script, layer, "--final-dir", final]
    try:
        run(cmd, what=f"post-install step of {final.name}", env=clean_env(bytecode=True), lines=3)
    except ProcessError as exc:
        raise KernelstacksError(str(exc)) from None
