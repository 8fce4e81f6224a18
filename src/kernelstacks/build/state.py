"""What a built layer records about itself, and where built layers and their files live.

Every layer carries a small state file with the hash of the inputs it was built from (unchanged
layers are skipped) and, for a runtime, the facts about its interpreter that the layers above it
and the distribute stage need. The file names come from :mod:`kernelstacks_kernel.contract`,
which the kernel side reads too.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kernelstacks import __version__
from kernelstacks._support.atomic import read_json, write_json
from kernelstacks.spec.model import StackSpec
from kernelstacks_kernel import contract

__all__ = [
    "LAYER_METADATA",
    "POSTINSTALL",
    "STATE_FILE",
    "default_build_dir",
    "read_state",
    "runtime_python",
    "write_state",
]

#: venvstacks' per-layer metadata, relative to the layer.
LAYER_METADATA = Path(contract.LAYER_METADATA)
#: The build state file, relative to the layer.
STATE_FILE = Path(contract.BUILD_STATE)
#: The post-install step every built layer carries, relative to the layer.
POSTINSTALL = Path(contract.POSTINSTALL)


def default_build_dir(spec: StackSpec) -> Path:
    """``_build`` beside the stack file, as venvstacks does."""
    return spec.root / "_build"


def runtime_python(path: Path) -> Path:
    """The interpreter of a runtime layer directory."""
    return path / "bin" / "python3"


def read_state(path: Path) -> dict[str, Any]:
    """The build state file of the layer at ``path``, or an empty dict."""
    return read_json(path / STATE_FILE) or {}


def write_state(built: Path, inputs_hash: str, extra: dict[str, Any]) -> None:
    """Record what the layer was built from, and ship its post-install step with it."""
    shutil.copyfile(Path(__file__).with_name("postinstall.py"), built / POSTINSTALL)
    state = {"inputs_hash": inputs_hash, "kernelstacks": __version__, **extra}
    write_json(built / STATE_FILE, state)
