"""Running other programs: one environment rule, timeouts, and errors that say what went wrong.

Every subprocess kernelstacks starts (uv, a layer's interpreter, a post-install step, patchelf)
gets its environment from :func:`clean_env` and its failure message from :func:`tail`, so the
rules for what leaks into a child and how a failure reads exist once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError

#: Variables that would make an interpreter load files that are not its own (or its layers').
LEAKY_VARIABLES = (
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONEXECUTABLE",
    "PYTHONSAFEPATH",
    "__PYVENV_LAUNCHER__",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
)


class ProcessError(KernelstacksError):
    """A program we ran failed; the message names what we were doing and ends with its output."""

    def __init__(self, what: str, detail: str, returncode: int | None = None):
        self.what = what
        self.detail = detail
        self.returncode = returncode
        super().__init__(f"{what} failed: {detail}")


def clean_env(
    extra: Mapping[str, str] | None = None,
    *,
    bytecode: bool = False,
    no_library_path: bool = False,
) -> dict[str, str]:
    """Our environment for a child process, minus what would redirect a Python interpreter.

    The rest passes through (uv needs ``SSL_CERT_FILE`` and proxy settings on our machines).
    ``bytecode`` removes ``PYTHONDONTWRITEBYTECODE`` (compilers must write .pyc files);
    ``no_library_path`` removes ``LD_LIBRARY_PATH``/``LD_PRELOAD`` (checking that a relocated
    runtime finds its own libraries). ``extra`` is applied last.
    """
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_VARIABLES}
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    if no_library_path:
        env.pop("LD_LIBRARY_PATH", None)
        env.pop("LD_PRELOAD", None)
    if extra:
        env.update(extra)
    return env


def tail(text: str | None, count: int = 6) -> str:
    """The last non-empty lines of a program's output: enough to say what went wrong."""
    lines = [line.rstrip() for line in (text or "").strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:]) or "(no output)"


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    check: bool = True,
    lines: int = 6,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` capturing text output; a failure raises :class:`ProcessError` naming ``what``.

    ``env`` defaults to :func:`clean_env`. A program that cannot start, times out or (with
    ``check``) exits non-zero is reported with the tail of its output, never a traceback.
    """
    args = [os.fspath(c) for c in cmd]
    try:
        proc = subprocess.run(
            args,
            env=dict(env) if env is not None else clean_env(),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise ProcessError(what, f"program not found: {args[0]}") from None
    except PermissionError:
        raise ProcessError(what, f"program is not executable: {args[0]}") from None
    except subprocess.TimeoutExpired as exc:
        output = (
            (exc.stderr or b"").decode("utf-8", "replace")
            if isinstance(exc.stderr, bytes)
            else exc.stderr
        )
        raise ProcessError(what, f"timed out after {timeout:g}s\n{tail(output, lines)}") from None
    if check and proc.returncode != 0:
        raise ProcessError(what, tail(proc.stderr or proc.stdout, lines), proc.returncode)
    return proc
