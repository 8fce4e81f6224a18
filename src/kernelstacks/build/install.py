"""Install a layer's lock file into its environment with uv (``uv pip sync``/``install``).

A lock lists exact wheel URLs, so installing resolves nothing; what it needs from the stack's
settings is access: the indexes named in ``[tool.uv]`` are described to uv (``index_env``, see
:func:`kernelstacks.lock.indexes.install_index_env`) so that credentials given the uv way
(``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD``) reach a private index's wheels too.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.uv import run_uv, uv_output

#: What uv says when an index wants credentials it did not get.
_REFUSED = re.compile(r"\b(401 Unauthorized|403 Forbidden)\b")


class InstallError(KernelstacksError):
    """A lock file could not be installed into an environment."""


def install_lock(
    python: Path,
    lock: Path,
    *,
    compile_bytecode: bool = True,
    exact: bool | None = None,
    index_env: Mapping[str, str] | None = None,
) -> None:
    """Install a layer's lock into the environment of ``python``.

    ``exact`` uses ``uv pip sync``, so the environment ends up holding exactly the lock (packages
    dropped by a relock go away); otherwise ``uv pip install -r`` only adds.  The default is exact
    for venvs (framework/app layers) and additive for a runtime, whose own ``pip`` must survive.
    Either way only the lock's packages are installed: lower layers' packages are not in it, and
    uv only looks at the target's own site-packages, not at chained lower layers.  Bytecode is
    compiled by default: our machines set ``PYTHONDONTWRITEBYTECODE=1`` and uncompiled layers
    start several times slower. ``index_env`` (``UV_INDEX``) names the stack's indexes; it is
    added to a ``UV_INDEX`` of our own environment, never replaces it.
    """
    if exact is None:
        exact = (Path(python).parent.parent / "pyvenv.cfg").is_file()
    # Scratch beside the layer, named like a swap staging directory: a killed build leaves it in
    # the build dir (never in /tmp), and the next build's clean_leftovers() removes it.
    scratch = Path(python).absolute().parent.parent.parent
    with tempfile.TemporaryDirectory(prefix=".install~new-", dir=scratch) as tmp:
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
        proc = run_uv(
            [*args, "--compile-bytecode"] if compile_bytecode else args,
            extra_env=_with_our_indexes(index_env),
            check=False,
        )
    if proc.returncode != 0:
        hint = ""
        if _REFUSED.search(proc.stderr):
            hint = (
                "\nAn index refused access: give uv its credentials in the environment, "
                "UV_INDEX_<NAME>_USERNAME and UV_INDEX_<NAME>_PASSWORD for the index named <NAME> "
                "in [[tool.uv.index]] (upper case, other characters as '_')."
            )
        raise InstallError(
            f"Could not install {lock} into the environment of {python}.{hint}\n"
            f"uv says:\n{uv_output(proc.stderr)}"
        )


def _with_our_indexes(index_env: Mapping[str, str] | None) -> dict[str, str]:
    """``index_env`` with a ``UV_INDEX`` already in our environment kept in front of it."""
    extra = dict(index_env or {})
    ours = os.environ.get("UV_INDEX", "").strip()
    if ours and extra.get("UV_INDEX"):
        extra["UV_INDEX"] = f"{ours} {extra['UV_INDEX']}"
    return extra
