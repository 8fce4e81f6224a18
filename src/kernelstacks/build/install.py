"""Install a layer's lock file into its environment with uv (``uv pip sync``/``install``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.uv import run_uv, uv_output


class InstallError(KernelstacksError):
    """A lock file could not be installed into an environment."""


def install_lock(
    python: Path, lock: Path, *, compile_bytecode: bool = True, exact: bool | None = None
) -> None:
    """Install a layer's lock into the environment of ``python``.

    ``exact`` uses ``uv pip sync``, so the environment ends up holding exactly the lock (packages
    dropped by a relock go away); otherwise ``uv pip install -r`` only adds.  The default is exact
    for venvs (framework/app layers) and additive for a runtime, whose own ``pip`` must survive.
    Either way only the lock's packages are installed: lower layers' packages are not in it, and
    uv only looks at the target's own site-packages, not at chained lower layers.  Bytecode is
    compiled by default: our machines set ``PYTHONDONTWRITEBYTECODE=1`` and uncompiled layers
    start several times slower.
    """
    if exact is None:
        exact = (Path(python).parent.parent / "pyvenv.cfg").is_file()
    with tempfile.TemporaryDirectory(prefix="kernelstacks-install-") as tmp:
        # uv only reads pylock files named `pylock.toml` / `pylock.<name>.toml` with no dot in
        # <name>; layer names like `cpython-3.11` (or a scratch file name) break that.
        copy = Path(tmp) / "pylock.toml"
        copy.write_bytes(Path(lock).read_bytes())
        verb: list[str | os.PathLike[str]] = ["sync", copy] if exact else ["install", "-r", copy]
        args: list[str | os.PathLike[str]] = [
            "pip",
            *verb,
            "--preview-features",
            "pylock",
            "--python",
            python,
        ]
        proc = run_uv([*args, "--compile-bytecode"] if compile_bytecode else args, check=False)
    if proc.returncode != 0:
        raise InstallError(
            f"Could not install {lock} into the environment of {python}.\n"
            f"uv says:\n{uv_output(proc.stderr)}"
        )
