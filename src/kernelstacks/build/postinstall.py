"""Post-install step of a kernelstacks layer: make an unpacked layer work where it now lives.

Every built layer carries a copy of this file as ``share/venv/metadata/postinstall.py``; published
archives and exports carry it at the layer root, as venvstacks does. It uses only the standard
library, so a host application can deploy layers with venvstacks' documented procedure and nothing
but the layers' own runtime:

    <runtime>/bin/python3 <layer>/postinstall.py [--final-dir DIR]

It reads the layer's ``venvstacks_layer.json`` (paths relative to the layer, naming the deployed
sibling layers) and, for a venv layer, writes ``pyvenv.cfg`` (archives leave it out: it holds
absolute paths of the build machine) or points its ``home`` at the runtime, the ``bin/python*``
links at the runtime, and the chain module at the lower layers; then it compiles bytecode, so a
read-only deployment never writes at interpreter start. Every rewrite goes through a temporary
file and a rename, never in place: exported layers share files with the build by hard links.
``--final-dir`` computes everything for where the layer *will* be (deploys stage layers first).

``kernelstacks deploy`` relocates its own layers with this module in-process and runs
``python3 -I -S postinstall.py --compile-server`` with each runtime's interpreter to compile
bytecode for every layer on that runtime (:mod:`kernelstacks.distribute.bytecode_pool`); the
pycs are the ones :func:`compile_file` writes here too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import marshal
import os
import re
import stat
import sys
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import IO

METADATA = Path("share/venv/metadata/venvstacks_layer.json")
CHAIN_MODULE = "_kernelstacks_chain.py"


def _write_atomic(path: Path, text: str, *, keep_mode: bool = False) -> None:
    """Replace ``path`` through a temporary file and a rename (0o644, or its mode kept).

    Unchanged content is not rewritten, so running the step again writes nothing.
    """
    try:
        if path.read_text(encoding="utf-8", errors="surrogateescape") == text:
            return
    except OSError:
        pass
    mode = stat.S_IMODE(os.stat(path).st_mode) if keep_mode and path.exists() else 0o644
    _replace_file(path, text.encode("utf-8"), mode)


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file beside ``path`` with ``mode``, then rename it over."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _symlink_atomic(path: Path, target: str) -> None:
    tmp = path.with_name(f".{path.name}.link-{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def read_metadata(layer: Path) -> dict:
    """The layer's venvstacks_layer.json."""
    with open(layer / METADATA, encoding="utf-8") as fh:
        return json.load(fh)


def relocate(layer: Path, final: Path) -> list[str]:
    """Rewrite the location-dependent files of a venv layer for ``final``; returns what changed."""
    meta = read_metadata(layer)
    if meta["python"] == meta["base_python"]:
        return []  # a runtime: relocatable by itself
    base_python = Path(os.path.normpath(final / meta["base_python"]))
    runtime = base_python.parent.parent
    done = [_fix_pyvenv_cfg(layer, base_python, meta["py_version"])]
    done += _fix_python_links(layer, final, base_python)
    done += fix_activate_scripts(layer, final)
    chain = layer / meta["site_dir"] / CHAIN_MODULE
    if chain.is_file():
        _fix_chain(chain, meta, final, runtime)
        done.append(str(chain.relative_to(layer)))
    return done


def read_pyvenv_cfg(cfg: Path) -> dict[str, str]:
    """The ``key = value`` settings of a ``pyvenv.cfg`` (first one wins); empty when missing.

    The one reader of this file in kernelstacks: the builder imports it from this module.
    """
    try:
        text = cfg.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    settings: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            settings.setdefault(key.strip(), value.strip())
    return settings


def update_pyvenv_cfg(cfg: Path, settings: Mapping[str, str], drop: Iterable[str] = ()) -> None:
    """Set ``key = value`` lines in ``pyvenv.cfg``, remove the ``drop`` keys, keep the rest.

    The one writer of this file in kernelstacks (the builder imports it from this module). Keys
    not in the file yet are appended; every other line stays as venv wrote it; the file's mode is
    kept.
    """
    pending = {key: str(value) for key, value in settings.items()}
    dropped = set(drop)
    out = []
    for line in cfg.read_text(encoding="utf-8").splitlines():
        key = line.partition("=")[0].strip()
        if key in dropped:
            continue
        out.append(f"{key} = {pending.pop(key)}" if key in pending else line)
    out.extend(f"{key} = {value}" for key, value in pending.items())
    _write_atomic(cfg, "\n".join(out) + "\n", keep_mode=True)


def _fix_pyvenv_cfg(layer: Path, base_python: Path, py_version: str) -> str:
    """``home`` must be the runtime's absolute bin dir, or CPython falls back elsewhere.

    A missing file (published archives leave it out) is written the way venvstacks' post-install
    step writes it. Otherwise only settings venv wrote are replaced (3.10 venvs have no
    ``executable``); ``command``, which names the build directory, goes.
    """
    cfg = layer / "pyvenv.cfg"
    if not cfg.exists():
        lines = [
            f"home = {base_python.parent}",
            "include-system-site-packages = false",
            f"version = {py_version}",
            f"executable = {base_python}",
        ]
        _write_atomic(cfg, "\n".join(lines) + "\n")
        return "pyvenv.cfg"
    present = read_pyvenv_cfg(cfg)
    wanted = {"home": str(base_python.parent), "executable": str(base_python)}
    update_pyvenv_cfg(cfg, {k: v for k, v in wanted.items() if k in present}, drop=["command"])
    return "pyvenv.cfg"


def fix_activate_scripts(layer: Path, final: Path) -> list[str]:
    """Point venv's activate scripts (and their prompt) at ``final``; returns what changed.

    They record the directory the venv was created in and its name as the prompt; CPython's venv
    has no relocatable form of them. The builder runs this for a layer's final place just before
    swapping it in, and every deploy for where the layer lands.
    """
    activate = layer / "bin" / "activate"
    if not activate.is_file():
        return []
    match = re.search(r"VIRTUAL_ENV=['\"]?(/[^'\"\n$]+)", activate.read_text(encoding="utf-8"))
    if not match or match.group(1) == str(final):
        return []
    old, changed = match.group(1), []
    prompts = (f"({os.path.basename(old)}) ", f"({os.path.basename(str(final))}) ")
    for script in sorted((layer / "bin").glob("activate*")):
        if script.is_symlink() or not script.is_file():
            continue
        text = script.read_text(encoding="utf-8", errors="surrogateescape")
        if old in text:
            text = text.replace(old, str(final)).replace(*prompts)
            _write_atomic(script, text)
            changed.append(f"bin/{script.name}")
    return changed


def _fix_python_links(layer: Path, final: Path, base_python: Path) -> list[str]:
    """bin/python, python3, python3.X: relative links to the runtime's interpreter."""
    bin_dir = layer / "bin"
    changed = []
    for entry in sorted(bin_dir.iterdir()):
        if entry.is_symlink() and re.fullmatch(r"python(\d+(\.\d+)?)?", entry.name):
            target = os.path.relpath(base_python, final / "bin")
            if os.readlink(entry) != target:
                _symlink_atomic(entry, target)
                changed.append(f"bin/{entry.name}")
    return changed


def _fix_chain(chain: Path, meta: dict, final: Path, runtime: Path) -> None:
    """Point the chain module at the lower layers as listed in the metadata."""
    site_dir = meta["site_dir"]
    runtime_site = os.path.normpath(runtime / site_dir)
    lower = []
    for rel in meta.get("pylib_dirs", []):
        if os.path.normpath(final / rel) == runtime_site:
            continue
        lower.append(("layer", rel))
    lower.append(("runtime", site_dir))
    text = chain.read_text(encoding="utf-8")
    text = re.sub(
        r"^_RUNTIME = .*$",
        lambda _m: f"_RUNTIME = {os.path.relpath(runtime, final)!r}",
        text,
        count=1,
        flags=re.M,
    )
    body = "\n".join(f"    {entry!r}," for entry in lower)
    text = re.sub(
        r"^_LOWER = \(\n.*?^\)$",
        lambda _m: f"_LOWER = (\n{body}\n)",
        text,
        count=1,
        flags=re.M | re.S,
    )
    _write_atomic(chain, text)


#: Folders of test suites (``numpy/_core/tests``, ``tornado/test``, the standard library's
#: ``test``): left as source unless asked for (see :func:`bytecode_files`).
TEST_DIRS = frozenset({"test", "tests"})


def bytecode_files(layer: Path, *, tests: bool = False) -> list[str]:
    """The ``.py`` files whose bytecode a deployed layer carries: its site-packages, and a
    runtime's standard library too (in a stable order).

    Test suites (folders named ``test`` or ``tests``) are left out unless ``tests``: nothing an
    application imports lives there, yet they are close to half of what compiling costs (45%
    of the CPU time for numpy, scipy, pandas and sympy), and a test run from a deployment still
    works, compiling them in memory. ``--compile-tests`` compiles everything, as venvstacks does.
    """
    meta = read_metadata(layer)
    site = layer / meta["site_dir"]
    libs = []
    if meta["python"] == meta["base_python"]:
        libs = [p for p in sorted((layer / "lib").glob("python3*")) if p.is_dir()]
    inside = any(site.is_relative_to(lib) for lib in libs)  # walked once, with the stdlib
    skip = frozenset() if tests else TEST_DIRS
    roots = libs + ([] if inside else [site])
    return [f for root in roots for f in _python_files(root, skip)]


def compile_bytecode(layer: Path, *, tests: bool = False) -> list[str]:
    """Compile the layer's Python files on every core (see :func:`compile_file`; test suites
    only with ``tests``, see :func:`bytecode_files`).

    Returns the files that could not be written, with why (a full disk, a read-only place):
    ``compileall`` would swallow those errors (or, when a worker dies, raise
    ``BrokenProcessPool``), and the deployment would then lack bytecode without a word.
    """
    files = bytecode_files(layer, tests=tests)
    try:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor() as pool:
            results = list(pool.map(compile_file, files, chunksize=32))
    except (ImportError, NotImplementedError, PermissionError):  # no working multiprocessing
        results = [compile_file(f) for f in files]
    return [r for r in results if r is not None]


def _python_files(root: Path, skip: frozenset[str] = frozenset()) -> list[str]:
    """The ``.py`` files under ``root``, in a stable order (symlinked directories not followed,
    folders named in ``skip`` left out)."""
    found: list[str] = []
    for folder, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__" and d not in skip)
        found += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
    return found


#: Header flags of an unchecked hash-based pyc (PEP 552): hash-based, source not checked.
_UNCHECKED_HASH_FLAGS = (0b01).to_bytes(4, "little")


def compile_file(path: str) -> str | None:
    """Write ``path``'s unchecked-hash pyc (a deployment's sources are fixed); the write error.

    The same bytes as ``py_compile`` with ``UNCHECKED_HASH`` (a test holds them equal), without
    its per-file overhead: the source is read once, and a new pyc (every pyc of a fresh deploy)
    is written straight to its place with ``O_EXCL`` instead of through a temporary file; an
    existing one is still replaced atomically. Files that are not valid Python for this version
    (test data, Python 2 files) are skipped, as ``compileall`` skips them. Compiling is most of
    a deploy's CPU time, so this is where the per-file cost matters.
    """
    try:
        with open(path, "rb") as fh:
            source = fh.read()
            mode = (os.fstat(fh.fileno()).st_mode | 0o200) & 0o666
    except OSError as exc:
        return f"{path}: {exc}"
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except Exception:  # what py_compile turns into PyCompileError: not Python for this version
        return None
    data = b"".join(
        (
            importlib.util.MAGIC_NUMBER,
            _UNCHECKED_HASH_FLAGS,
            importlib.util.source_hash(source),
            marshal.dumps(code),
        )
    )
    try:
        _write_pyc(importlib.util.cache_from_source(path), data, mode)
    except OSError as exc:
        return f"{path}: {exc}"
    return None


def _write_pyc(pyc: str, data: bytes, mode: int) -> None:
    """Create ``pyc`` with ``data``; replace an existing one through a temporary file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(pyc, flags, mode)
    except FileNotFoundError:  # the first pyc of its folder: __pycache__ is made here
        os.makedirs(os.path.dirname(pyc), exist_ok=True)
        fd = os.open(pyc, flags, mode)
    except FileExistsError:
        _replace_file(Path(pyc), data, mode)
        return
    with open(fd, "wb") as out:
        out.write(data)


def serve_compile(stdin: IO[str], stdout: IO[str]) -> None:
    """Compile batches of files for a deploy, one JSON list per line in, one per line out.

    ``kernelstacks deploy`` keeps a few of these running per runtime (with that runtime's
    interpreter, so the pycs are its own) and feeds them files as layers finish unpacking: a
    process per layer would pay start-up and wait for the layer's slowest file. Each reply
    lists the write errors of its batch.
    """
    warnings.simplefilter("ignore")  # SyntaxWarnings of test data: compileall -q is quiet too
    for line in stdin:
        failed = [error for error in map(compile_file, json.loads(line)) if error]
        stdout.write(json.dumps(failed) + "\n")
        stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Command line: relocate, then compile."""
    here = Path(__file__).resolve().parent
    if not (here / METADATA).is_file():  # the build directory's copy, in share/venv/metadata
        here = here.parents[2]
    parser = argparse.ArgumentParser(description="Finish installing a kernelstacks layer.")
    parser.add_argument("layer", nargs="?", type=Path, default=here, help="layer directory")
    parser.add_argument("--final-dir", type=Path, help="where the layer will live")
    parser.add_argument("--no-compile", action="store_true", help="skip bytecode compilation")
    parser.add_argument(
        "--compile-tests", action="store_true", help="compile test suites' bytecode too"
    )
    parser.add_argument(
        "--compile-server", action="store_true", help="compile JSON batches of files from stdin"
    )
    args = parser.parse_args(argv)
    if args.compile_server:
        serve_compile(sys.stdin, sys.stdout)
        return 0
    layer = args.layer.absolute()
    final = (args.final_dir or layer).absolute()
    try:
        changed = relocate(layer, final)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        print(f"postinstall: cannot relocate {final} (by {METADATA}): {exc!r}", file=sys.stderr)
        return 1
    if not args.no_compile:
        try:
            failed = compile_bytecode(layer, tests=args.compile_tests)
        except (OSError, BrokenProcessPool) as exc:
            failed = [str(exc) if isinstance(exc, OSError) else f"a compile worker died ({exc})"]
        if failed:
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            print(
                f"postinstall: cannot compile bytecode of {final}: {failed[0]}{more}",
                file=sys.stderr,
            )
            return 1
    print(json.dumps({"layer": str(final), "relocated": changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
