"""Ask an interpreter about itself: version, prefixes, stdlib, libpython — what a runtime copies.

Shared by interpreter discovery (is this the Python the stack asked for?) and by the runtime
builder (what must be copied to make it relocatable).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.processes import ProcessError, run, tail
from kernelstacks._support.versions import PythonVersion


class RuntimeProvisionError(KernelstacksError):
    """A runtime interpreter that cannot be found, run or copied; the message is for the user."""


@dataclasses.dataclass(frozen=True)
class InterpreterInfo:
    """Facts about an installed interpreter, as reported by the interpreter itself."""

    implementation: str
    version: str
    executable: Path
    base_executable: Path
    prefix: Path
    base_prefix: Path
    stdlib: Path
    include: Path | None
    libdir: Path | None
    instsoname: str | None
    abiflags: str
    platform: str

    @property
    def xy(self) -> str:
        """``X.Y`` of the interpreter, used in stdlib and executable names."""
        return PythonVersion.of_release(self.version).xy

    @property
    def is_venv(self) -> bool:
        """True for a virtual environment's interpreter (copy its base instead)."""
        return self.prefix != self.base_prefix


_INSPECT_SCRIPT = r"""
import json, platform, sys, sysconfig
cfg = sysconfig.get_config_var
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": platform.python_version(),
    "executable": sys.executable,
    "base_executable": getattr(sys, "_base_executable", sys.executable),
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "stdlib": sysconfig.get_path("stdlib"),
    "include": cfg("INCLUDEPY"),
    "libdir": cfg("LIBDIR"),
    "instsoname": cfg("INSTSONAME") if cfg("Py_ENABLE_SHARED") else None,
    "abiflags": getattr(sys, "abiflags", ""),
    "platform": sysconfig.get_platform(),
}))
"""


def inspect_interpreter(python: Path) -> InterpreterInfo:
    """Ask ``python`` about itself; raise RuntimeProvisionError when it cannot run."""
    try:
        proc = run(
            [python, "-I", "-c", _INSPECT_SCRIPT],
            what=f"running {python}",
            timeout=120,
            check=False,
        )
    except ProcessError as exc:
        raise RuntimeProvisionError(
            f"cannot run Python interpreter {python}: {exc.detail}"
        ) from None
    except OSError as exc:  # e.g. not an executable of this machine
        raise RuntimeProvisionError(f"cannot run Python interpreter {python}: {exc}") from None
    if proc.returncode != 0:
        detail = tail(proc.stderr)
        raise RuntimeProvisionError(f"cannot run Python interpreter {python}: {detail}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])

    def opt_path(value: str | None) -> Path | None:
        return Path(value) if value else None

    return InterpreterInfo(
        implementation=data["implementation"],
        version=data["version"],
        executable=Path(data["executable"]),
        base_executable=Path(data["base_executable"]),
        prefix=Path(data["prefix"]),
        base_prefix=Path(data["base_prefix"]),
        stdlib=Path(data["stdlib"]),
        include=opt_path(data["include"]),
        libdir=opt_path(data["libdir"]),
        instsoname=data["instsoname"],
        abiflags=data["abiflags"] or "",
        platform=data["platform"],
    )


def base_interpreter(python: Path) -> InterpreterInfo:
    """Inspect ``python``; for a venv's interpreter, inspect the installation it is based on."""
    info = inspect_interpreter(python)
    if info.is_venv:
        info = inspect_interpreter(info.base_executable)
    return info


def source_executable(info: InterpreterInfo) -> Path:
    """The real interpreter executable inside the installation prefix (what gets copied).

    Symlinks are resolved so a choice names the actual installation, e.g. uv's
    ``cpython-3.12.1-...`` directory rather than its moving ``cpython-3.12-...`` link.
    """
    prefix = Path(os.path.realpath(info.base_prefix))
    names = (f"python{info.xy}{info.abiflags}", f"python{info.xy}")
    candidates = [
        Path(os.path.realpath(info.base_executable)),
        *(Path(os.path.realpath(info.base_prefix / "bin" / name)) for name in names),
    ]
    for candidate in candidates:
        if candidate.is_file() and is_within(candidate, prefix):
            return candidate
    raise RuntimeProvisionError(
        f"cannot locate the interpreter executable of {info.base_prefix} "
        f"(looked for {', '.join(map(str, candidates))})"
    )


def is_within(path: Path | str, root: Path | str) -> bool:
    """``path`` is ``root`` or below it (lexically; callers pass resolved paths)."""
    path_s, root_s = os.fspath(path), os.fspath(root).rstrip("/") or "/"
    return path_s == root_s or path_s.startswith(root_s if root_s == "/" else root_s + "/")
