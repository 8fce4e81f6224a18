"""Locate and run the uv binary that ships with the ``uv`` PyPI package.

Every uv call goes through here so the environment handed to uv is consistent: the caller's
environment is passed through (uv needs ``SSL_CERT_FILE`` on our machines) and uv's own user-level
configuration is ignored in favour of what the stack file says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from kernelstacks._support.processes import captured


@cache
def uv_binary() -> str:
    """Return the path of the uv executable, preferring the one bundled with the uv package."""
    try:
        from uv import find_uv_bin

        return os.fspath(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise FileNotFoundError(
                "uv was not found: install kernelstacks with pip (it depends on the 'uv' package)"
            ) from None
        return found


def uv_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a uv subprocess: ours, plus ``extra``, with user uv config disabled."""
    env = dict(os.environ)
    env.setdefault("UV_NO_CONFIG", "1")
    if extra:
        env.update(extra)
    # An activated venv (ours when kernelstacks is pip-installed in one) must never be taken
    # for a runtime or a target: uv would find it before anything else.
    env.pop("VIRTUAL_ENV", None)
    env.pop("CONDA_PREFIX", None)
    return env


def run_uv(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``uv ARGS`` capturing text output; raise ``CalledProcessError`` when ``check``."""
    cmd = [uv_binary(), *(os.fspath(a) for a in args)]
    proc = captured(cmd, cwd=cwd, env=uv_env(extra_env))
    if check:
        proc.check_returncode()
    return proc


#: How many lines of uv's explanation a message quotes.
MAX_UV_LINES = 40


def uv_output(stderr: str) -> str:
    """uv's explanation without progress chatter, cut to a readable length."""
    lines = [
        line.rstrip()
        for line in stderr.splitlines()
        if line.strip() and not re.match(r"(Using CPython|Resolved \d+ package)", line)
    ]
    if len(lines) > MAX_UV_LINES:
        lines = [*lines[:MAX_UV_LINES], f"... ({len(lines) - MAX_UV_LINES} more lines)"]
    return "\n".join(f"  {line}" for line in lines) or "  (no output)"
