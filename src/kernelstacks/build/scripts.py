"""Scripts in a layer's ``bin/``: make them work wherever the layer lives.

Installers write absolute shebangs naming the staging directory a layer was built in, and venv's
activate scripts record it too; both are rewritten here, atomically (a script may be a hard link
into uv's cache).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from kernelstacks._support.atomic import write_bytes
from kernelstacks.build import postinstall

__all__ = ["fix_activate_scripts", "fix_script_shebangs"]

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
    is renamed from its staging directory. Each script in ``bin/`` whose shebang names a Python by
    absolute path (plain, or the ``/bin/sh`` + ``'''exec'`` form used for long paths) is rewritten
    to the relocatable ``/bin/sh`` trick pip and uv use, which runs the ``python`` beside the
    script. The venv ``activate`` scripts (not relocatable in CPython's venv) are re-pointed at
    the layer's current location (the builder re-points them at the final location before the
    swap, see :func:`fix_activate_scripts`). The rewritten shebangs do not depend on the
    location, so this may run before or after the swap, and again after any later move;
    idempotent. Returns the names of rewritten scripts.
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
            write_bytes(path, new)
            fixed.append(path.name)
    fix_activate_scripts(Path(layer_dir))
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


def fix_activate_scripts(layer_dir: Path, location: Path | None = None) -> None:
    """Point venv's activate scripts at ``location`` (default: where the layer is now).

    The one implementation is the post-install step's (it must work standalone in a deployed
    layer); the builder calls it with the final location just before swapping a layer in.
    """
    layer_dir = Path(layer_dir)
    postinstall.fix_activate_scripts(layer_dir, Path(location or layer_dir).absolute())
