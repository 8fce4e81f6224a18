"""Runtime layers: choose a CPython and turn it into a relocatable prefix.

A runtime layer is the bottom of every stack: a complete CPython installation that framework and
application venvs are built on. It must be *relocatable* (a built stack is exported, unpacked on
another machine of the same platform, and must still work there) and *self-contained* (nothing
may be loaded from the interpreter it was made from, or the stack breaks the day that interpreter
is upgraded or removed).

Two sources exist:

``managed``
    uv-managed python-build-standalone (``uv python install``). It honours uv's own settings
    (``UV_PYTHON_INSTALL_MIRROR``, ``UV_PYTHON_DOWNLOADS_JSON_URL``, ...) because every uv call
    inherits the caller's environment. The installed prefix is already relocatable; it is copied.
``local``
    An interpreter already on the machine (found with ``uv python find`` or named explicitly).
    Its prefix is copied and made relocatable here: ELF ``RUNPATH``s become ``$ORIGIN``-relative
    (patchelf), scripts in ``bin/`` are dropped (only the interpreter is kept), the
    ``_sysconfigdata`` module computes install paths from ``sys.base_prefix`` at import time
    (source-prefix paths become python-build-standalone's ``/install`` placeholder, so uv can
    also install such a runtime as an ``install_only`` archive), and the standard library is
    precompiled.

Both sources go through the same copy pipeline, so a runtime never shares files with its origin.

Decisions worth knowing:

- The source's ``site-packages`` is never copied: a runtime starts clean, and the engine installs
  the runtime's ``requirements`` into it with uv afterwards.
- ``lib/pythonX.Y/test`` (the CPython test suite, >100 MB) and the static ``libpython*.a`` are not
  copied; nothing at run time needs them.
- Interpreters whose prefix is shared with the operating system (``/usr``, ``/usr/local``, ``/``,
  e.g. Debian's ``/usr/bin/python3.11``) are supported with a *minimal* copy: the interpreter, its
  standard library, its headers and ``libpython`` if the executable links it. Operating-system
  libraries it uses (libssl, libffi, libsqlite3, ...) stay OS dependencies, exactly like glibc is
  for python-build-standalone: such a runtime is relocatable between directories and machines of
  the same distribution, not across distributions.
- ELF patching needs Linux (patchelf); elsewhere only the managed source is supported.

This module runs the steps and checks the result; what is copied is decided in
:mod:`~kernelstacks.build.runtime_copy`, and the copy is made relocatable in
:mod:`~kernelstacks.build.runtime_relocate`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kernelstacks._support.processes import clean_env, run, tail
from kernelstacks.build.runtime_copy import CopyPlan, copy_prefix, install_executables, plan_copy
from kernelstacks.build.runtime_relocate import (
    relocate_elf_files,
    relocate_pkgconfig,
    relocate_sysconfigdata,
)
from kernelstacks.interpreters.discovery import (
    InterpreterChoice,
    RuntimeProvisionError,
    find_managed,
    install_managed,
)
from kernelstacks.interpreters.inspect import base_interpreter, is_within

__all__ = ["build_runtime", "source_files_mapped"]

Log = Callable[[str], None]

# ---------------------------------------------------------------------------------------------
# Building a runtime


def build_runtime(
    choice: InterpreterChoice,
    dest: Path,
    *,
    compile_bytecode: bool = True,
    log: Log | None = None,
) -> dict:
    """Build a relocatable runtime from ``choice`` in ``dest`` and return its metadata.

    ``dest`` must be missing or empty; callers build into a temporary directory and swap it into
    place. On failure ``dest`` is removed (or emptied, if it existed), so no half-built runtime
    is ever left behind. The metadata records the source, the exact version reported by the
    *built* interpreter, the origin and the interpreter's relative path.
    """
    log = log or (lambda _msg: None)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise RuntimeProvisionError(f"runtime destination {dest} exists and is not empty")
    existed = dest.exists()
    try:
        return _build(choice, dest, compile_bytecode=compile_bytecode, log=log)
    except BaseException:
        _discard(dest, keep_dir=existed)
        raise


def _discard(dest: Path, *, keep_dir: bool) -> None:
    """Remove a failed build (only its contents, when the caller created ``dest``)."""
    if not dest.exists():
        return
    if not keep_dir:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _build(choice: InterpreterChoice, dest: Path, *, compile_bytecode: bool, log: Log) -> dict:
    """The build steps, timed and logged; see ``build_runtime``."""
    started = time.monotonic()
    python = choice.path or _managed_executable(choice)
    info = base_interpreter(python)
    if info.version != choice.version:
        raise RuntimeProvisionError(
            f"{python} is now {info.implementation} {info.version}, but {choice.version} was "
            "chosen; choose the interpreter again"
        )
    if not sys.platform.startswith("linux") and choice.source == "local":
        raise RuntimeProvisionError("local interpreters can only be made relocatable on Linux")
    plan = plan_copy(info)
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = Path(os.path.realpath(dest))
    steps: list[tuple[str, Callable[[], object]]] = [
        ("copy", lambda: copy_prefix(plan, dest_real)),
        ("executables", lambda: install_executables(plan, dest_real)),
        ("runpaths", lambda: relocate_elf_files(plan, dest_real)),
        ("sysconfig", lambda: relocate_sysconfigdata(plan, dest_real)),
        ("pkgconfig", lambda: relocate_pkgconfig(plan, dest_real)),
    ]
    if compile_bytecode:
        steps.append(("bytecode", lambda: _compile_stdlib(plan, dest_real, log)))
    for label, step in steps:
        t0 = time.monotonic()
        step()
        log(f"runtime {label}: {time.monotonic() - t0:.1f}s")
    check = _verify_runtime(plan, dest_real)
    log(f"runtime built from {plan.prefix} in {time.monotonic() - started:.1f}s")
    return _metadata(choice, plan, dest_real, check, compile_bytecode)


def _managed_executable(choice: InterpreterChoice) -> Path:
    """Install (if needed) and locate the managed interpreter a choice without a path names."""
    version = choice.version
    found = find_managed(choice.implementation, version, {})
    if found is None:
        install_managed(choice.implementation, version, {})
        found = find_managed(choice.implementation, version, {})
    if found is None:
        raise RuntimeProvisionError(f"uv did not install {choice.implementation}@{version}")
    return found


# -- bytecode, verification, metadata ---------------------------------------------------------


def _runtime_python(plan: CopyPlan, dest: Path) -> Path:
    """The built runtime's interpreter."""
    return dest / "bin" / plan.executable.name


_COMPILE_SCRIPT = r"""
import compileall, glob, os, py_compile, re, sys
stdlib = sys.argv[1]
modes = py_compile.PycInvalidationMode
skip = re.compile(r"[/\\]lib2to3[/\\]tests[/\\]data")
ok = compileall.compile_dir(
    stdlib, quiet=1, workers=0, rx=skip, invalidation_mode=modes.UNCHECKED_HASH
)
for path in glob.glob(os.path.join(stdlib, "_sysconfigdata_*.py")):
    py_compile.compile(path, invalidation_mode=modes.CHECKED_HASH, doraise=True)
sys.exit(0 if ok else 1)
"""


def _compile_stdlib(plan: CopyPlan, dest: Path, log: Log) -> None:
    """Precompile the stdlib: this machine sets PYTHONDONTWRITEBYTECODE, and cold imports are slow.

    Unchecked hash-based pycs are reproducible and never revalidated (the runtime is read-only
    once built). ``_sysconfigdata_*`` gets a *checked* pyc because uv rewrites that module when
    it installs a runtime archive, and a stale pyc would silently win.
    """
    stdlib = dest / plan.stdlib
    env = clean_env(bytecode=True, no_library_path=True)
    python = os.fspath(_runtime_python(plan, dest))
    cmd = [python, "-I", "-c", _COMPILE_SCRIPT, os.fspath(stdlib)]
    proc = run(cmd, what="compiling the standard library", env=env, check=False)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        log(f"runtime bytecode: some files did not compile:\n{tail(output)}")


_CHECK_SCRIPT = r"""
import importlib, json, platform, sys, sysconfig
missing = []
for name in ("ssl", "sqlite3", "ctypes", "json", "zlib", "hashlib", "decimal", "venv"):
    try:
        importlib.import_module(name)
    except ImportError:
        missing.append(name)
maps = set()
try:
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                maps.add(parts[5].strip())
except OSError:
    pass
print(json.dumps({"base_prefix": sys.base_prefix, "version": platform.python_version(),
                  "purelib": sysconfig.get_path("purelib"),
                  "missing": missing, "maps": sorted(maps)}))
"""


def _verify_runtime(plan: CopyPlan, dest: Path) -> dict:
    """Run the built interpreter: it must live in ``dest`` and map nothing from its source."""
    python = _runtime_python(plan, dest)
    proc = run(
        [python, "-I", "-c", _CHECK_SCRIPT],
        what=f"starting the built runtime {python}",
        env=clean_env(no_library_path=True),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeProvisionError(
            f"the built runtime does not start ({python}): {tail(proc.stderr)}"
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if os.path.realpath(result["base_prefix"]) != os.fspath(dest):
        raise RuntimeProvisionError(
            f"the built runtime reports sys.base_prefix={result['base_prefix']}, not {dest}"
        )
    leaked = source_files_mapped(result["maps"], plan, dest)
    if leaked:
        raise RuntimeProvisionError(
            "the built runtime still loads files of its source interpreter: " + ", ".join(leaked)
        )
    purelib = Path(os.path.realpath(result["purelib"]))
    if is_within(purelib, dest):
        purelib.mkdir(parents=True, exist_ok=True)  # where runtime requirements will go
        result["purelib"] = purelib.relative_to(dest).as_posix()
    else:
        result["purelib"] = None
    return result


def source_files_mapped(maps: Iterable[str], plan: CopyPlan, dest: Path) -> list[str]:
    """Mapped files that belong to the source interpreter (for a shared prefix: its own dirs)."""
    owned = [plan.prefix / r for r in plan.roots] if plan.system_prefix else [plan.prefix]
    owned.append(plan.executable)
    return [m for m in maps if any(is_within(m, root) for root in owned) and not is_within(m, dest)]


def _metadata(
    choice: InterpreterChoice, plan: CopyPlan, dest: Path, check: dict, compiled: bool
) -> dict:
    """What the engine records about a runtime layer (paths relative to the layer)."""
    return {
        "implementation": choice.implementation,
        "source": choice.source,
        "version": check["version"],
        "origin": choice.origin,
        "copied_from": os.fspath(plan.prefix),
        "python": "bin/python3",
        "executable": f"bin/{plan.executable.name}",
        "stdlib": plan.stdlib.as_posix(),
        "purelib": check["purelib"],
        "platform": plan.source.platform,
        "layout": "system-minimal" if plan.system_prefix else "prefix",
        "bytecode": "unchecked-hash" if compiled else None,
        "missing_modules": check["missing"],
    }
