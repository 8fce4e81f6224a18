"""Run a layer's own post-install step: relocate it for where it lands, compile its bytecode.

Every built layer carries ``postinstall.py`` (stdlib only: :mod:`kernelstacks.build.postinstall`);
export and deploy run the copy *this* kernelstacks ships, so layers built by an older version get
the current step.
"""

from __future__ import annotations

from pathlib import Path

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.processes import ProcessError, clean_env, run
from kernelstacks.build import postinstall as _postinstall
from kernelstacks_kernel import contract

POSTINSTALL = Path(contract.POSTINSTALL)
#: venvstacks' place for the step in a published or exported layer (kernelstacks' too).
ROOT_POSTINSTALL = Path("postinstall.py")
#: This kernelstacks' own post-install step (copied into archives and exports, and run as
#: deploy's compile servers).
CURRENT_POSTINSTALL = Path(_postinstall.__file__)


def postinstall_script(layer: Path) -> Path | None:
    """The layer's post-install step: at its root (venvstacks' and our archives), else where
    older kernelstacks versions put it; None when it has none."""
    for script in (layer / ROOT_POSTINSTALL, layer / POSTINSTALL):
        if script.is_file() and not script.is_symlink():
            return script
    return None


def current_postinstall() -> bytes:
    """This kernelstacks' post-install step (layers built by older versions get the new one)."""
    return CURRENT_POSTINSTALL.read_bytes()


def run_postinstall(python: Path, layer: Path, final: Path) -> None:
    """Run ``layer``'s post-install step with ``python`` (its runtime), computed for ``final``.

    venvstacks' own step takes no arguments (it works where its file is, and the staging
    directory is a sibling of ``final``, so the paths it writes name the final siblings).
    """
    script = postinstall_script(layer)
    if script is None:
        raise KernelstacksError(f"{final.name}: the layer has no postinstall.py ({layer})")
    cmd: list[str | Path] = [python, "-I", script, layer, "--final-dir", final]
    try:
        run(cmd, what=f"post-install step of {final.name}", env=clean_env(bytecode=True), lines=3)
    except ProcessError as exc:
        raise KernelstacksError(str(exc)) from None
