"""Making a copied interpreter relocatable: ELF ``RUNPATH``s, ``_sysconfigdata``, pkg-config.

A copy of a local interpreter still names its source prefix in three places that matter at run
time or when building extensions: the search paths of its ELF files, the install paths in
``_sysconfigdata_*.py`` and the ``prefix=`` of pkg-config files. Each is rewritten to be relative
to wherever the runtime lives (``$ORIGIN``, ``sys.base_prefix``, ``${pcfiledir}``).
"""

from __future__ import annotations

import ast
import os
import pprint
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from kernelstacks._support.atomic import write_text
from kernelstacks.build.elf import (
    expand_origin,
    is_elf,
    origin_relative,
    read_elf_dynamic,
    set_search_path,
)
from kernelstacks.build.runtime_copy import CopyPlan
from kernelstacks.interpreters.inspect import is_within

__all__ = [
    "SYSCONFIG_TOKEN",
    "iter_elf_files",
    "relocate_elf_files",
    "relocate_pkgconfig",
    "relocate_sysconfigdata",
]

#: Stands in for the original prefix inside the rewritten ``_sysconfigdata`` module; the same
#: placeholder python-build-standalone uses, so uv's install-time patching understands it.
SYSCONFIG_TOKEN = "/install"

# -- ELF files --------------------------------------------------------------------------------


def iter_elf_files(dest: Path) -> Iterator[Path]:
    """Every ELF file in the runtime (executables, libpython, extension modules, bundled libs)."""
    for dirpath, _dirnames, filenames in os.walk(dest):
        for filename in filenames:
            path = Path(dirpath) / filename
            if (filename.startswith("python") or ".so" in filename) and is_elf(path):
                yield path


def relocate_elf_files(plan: CopyPlan, dest: Path) -> None:
    """Point every RUNPATH that referred to the source prefix at the copy, ``$ORIGIN``-relative."""
    if not sys.platform.startswith("linux"):
        return
    libpython_dir = None
    if plan.system_prefix:
        libs = [r for r in plan.roots if r.name.startswith("libpython")]
        libpython_dir = dest / libs[0].parent if libs else None
    for elf in iter_elf_files(dest):
        _relocate_elf(elf, plan, dest, libpython_dir)


def _relocate_elf(elf: Path, plan: CopyPlan, dest: Path, libpython_dir: Path | None) -> None:
    """Rewrite one file's RUNPATH; files without references to the prefix are left untouched."""
    info = read_elf_dynamic(elf)
    if info is None:
        return
    old_entries = list(info.search_path)
    source_dir = plan.prefix / elf.parent.relative_to(dest)
    new_entries: list[str] = []
    for entry in old_entries:
        mapped = _map_runpath_entry(entry, source_dir, plan, dest)
        if isinstance(mapped, Path):
            new_entries.append(origin_relative(mapped, elf.parent))
        elif mapped is not None:
            new_entries.append(mapped)
    if libpython_dir is not None and any(n.startswith("libpython") for n in info.needed):
        new_entries.append(origin_relative(libpython_dir, elf.parent))
    new_entries = list(dict.fromkeys(new_entries))
    if new_entries == old_entries:
        return
    elf.chmod(elf.stat().st_mode | 0o200)
    set_search_path(elf, new_entries)


def _map_runpath_entry(
    entry: str, source_dir: Path, plan: CopyPlan, dest: Path
) -> Path | str | None:
    """Map a RUNPATH entry of the source file to the copy (Path), keep it (str) or drop it (None).

    Entries inside the source prefix must move with the copy; an entry pointing at a prefix
    directory that was not copied is dropped rather than left pointing at the source.
    """
    expanded = expand_origin(entry, source_dir)
    if not os.path.isabs(expanded):
        return entry
    target = Path(expanded)
    if not is_within(target, plan.prefix):
        return entry
    if plan.system_prefix and not any(is_within(target, plan.prefix / r) for r in plan.roots):
        return entry  # an OS library directory such as /usr/lib/x86_64-linux-gnu
    copied = dest / target.relative_to(plan.prefix)
    return copied if copied.is_dir() else None


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


def relocate_sysconfigdata(plan: CopyPlan, dest: Path) -> None:
    """Make ``_sysconfigdata_*`` derive install paths from ``sys.base_prefix`` at import."""
    stdlib = dest / plan.stdlib
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
                value = rx.sub(_literally(new), value)
            variables[key] = value
    body = (
        "# system configuration generated and used by the sysconfig module\n"
        f"build_time_vars = {pprint.pformat(variables)}\n"
    )
    write_text(path, body + _SYSCONFIG_TRAILER)


def _literally(text: str) -> Callable[[re.Match[str]], str]:
    """A ``re.sub`` replacement that inserts ``text`` as it is (no backslash escapes)."""
    return lambda _match: text


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


def relocate_pkgconfig(plan: CopyPlan, dest: Path) -> None:
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
        write_text(pc, "\n".join(lines) + "\n")
