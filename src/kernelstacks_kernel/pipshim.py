"""``pip`` inside a layered kernel: read-only commands show the stack, installs say what to do.

A kernel's layers are locked and may be shared by other kernels, and they carry no pip of their
own; without this, ``!pip`` would find the Jupyter server's pip and ``!pip install`` would change
the server's environment instead of the stack. The kernelspec puts a ``pip`` command first on the
kernel's PATH and a ``pip`` package on its PYTHONPATH (so ``!python -m pip`` works too); both end
here, as does ``%pip``. ``list``, ``freeze`` and ``show`` answer from the layers (with the layer
that provides each package); ``install`` and ``uninstall`` point at ``%venvstacks add``/``remove``.
"""

from __future__ import annotations

import io
import json
import sys
from importlib import metadata
from typing import IO, Any

from kernelstacks_kernel.chain import current_chain
from kernelstacks_kernel.inventory import Dist, canonical, inventory, visible

READ_ONLY = ("list", "freeze", "show")
USAGE = """Usage: pip <command> [options]   (kernelstacks: this kernel's layers are read-only)

Commands:
  list [--format columns|freeze|json]   packages of this kernel, with the layer providing each
  freeze                                 name==version of every package this kernel imports
  show PACKAGE ...                       details of installed packages
  install / uninstall                    not here: use %venvstacks add / %venvstacks remove
"""


class Refused(Exception):
    """A pip command this kernel does not run; the message says what to do instead."""


def _installed() -> dict[str, Dist]:
    """The distribution of each name that this kernel imports (first layer in sys.path wins)."""
    return visible(inventory(current_chain(), with_size=False))


def _layer() -> str:
    chain = current_chain()
    return chain[0].name if chain else sys.prefix


def _format(args: list[str]) -> str:
    fmt = "columns"
    for i, arg in enumerate(args):
        if arg == "--format" and i + 1 < len(args):
            fmt = args[i + 1]
        elif arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
    if fmt not in ("columns", "freeze", "json"):
        raise Refused(f"ERROR: unknown --format {fmt!r} (columns, freeze or json)")
    return fmt


def cmd_list(args: list[str], out: IO[str]) -> int:
    """``pip list``: name, version and layer of every package this kernel imports."""
    dists = sorted(_installed().values(), key=lambda d: d.name)
    fmt = _format(args)
    if fmt == "json":
        rows = [{"name": d.display_name, "version": d.version, "layer": d.layer} for d in dists]
        out.write(json.dumps(rows) + "\n")
        return 0
    if fmt == "freeze":
        return cmd_freeze([], out)
    table = [("Package", "Version", "Layer")] + [
        (d.display_name, d.version, d.layer) for d in dists
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for n, row in enumerate(table):
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    return 0


def cmd_freeze(args: list[str], out: IO[str]) -> int:
    """``pip freeze``: ``name==version`` lines."""
    for dist in sorted(_installed().values(), key=lambda d: d.name):
        out.write(f"{dist.display_name}=={dist.version}\n")
    return 0


def _summary(dist: Dist) -> tuple[str, str]:
    """Summary and location of one distribution, read from its metadata."""
    chain = {layer.name: layer for layer in current_chain()}
    site = chain[dist.layer].site_dir if dist.layer in chain else ""
    for found in metadata.distributions(path=[site] if site else sys.path):
        fields: Any = found.metadata  # an email.message.Message; the stubs lack its .get
        if fields is not None and canonical(str(fields.get("Name", ""))) == dist.name:
            return str(fields.get("Summary") or ""), site
    return "", site


def cmd_show(args: list[str], out: IO[str]) -> int:
    """``pip show NAME ...``: like pip's, plus the layer."""
    names = [a for a in args if not a.startswith("-")]
    if not names:
        raise Refused("ERROR: Please provide a package name or names.")
    installed = _installed()
    missing = [n for n in names if canonical(n) not in installed]
    for i, name in enumerate(n for n in names if canonical(n) in installed):
        dist = installed[canonical(name)]
        summary, location = _summary(dist)
        if i:
            out.write("---\n")
        out.write(f"Name: {dist.display_name}\nVersion: {dist.version}\nSummary: {summary}\n")
        out.write(f"Location: {location}\nLayer: {dist.layer}\n")
        out.write(f"Requires: {', '.join(dist.requires)}\n")
        out.write(f"Required-by: {', '.join(sorted(dist.required_by))}\n")
    if missing:
        raise Refused(f"WARNING: Package(s) not found: {', '.join(missing)}")
    return 0


def refuse_change(command: str, args: list[str]) -> None:
    """``install``/``uninstall``: the layers are locked; say which magic does it."""
    names = " ".join(a for a in args if not a.startswith("-")) or "PACKAGE"
    magic = "remove" if command == "uninstall" else "add"
    raise Refused(
        f"ERROR: pip cannot {command} here: this kernel's packages come from locked "
        f"kernelstacks layers ({_layer()}), which other kernels may share.\n"
        f"Use: %venvstacks {magic} {names}   then   %venvstacks build   and   "
        "%venvstacks restart"
    )


def dispatch(args: list[str], out: IO[str]) -> int:
    """Run one pip command line; raises :class:`Refused` with the reason when it cannot."""
    words = [
        a for a in args if a not in ("-q", "--quiet", "--no-color", "--disable-pip-version-check")
    ]
    if not words or words[0] in ("help", "-h", "--help"):
        out.write(USAGE)
        return 0
    command, rest = words[0], words[1:]
    if command in ("-V", "--version"):
        version = ".".join(map(str, sys.version_info[:2]))
        out.write(f"pip (kernelstacks, read-only) for layer {_layer()} (python {version})\n")
        return 0
    if command in ("install", "uninstall", "download", "wheel"):
        refuse_change(command, rest)
    handlers = {"list": cmd_list, "freeze": cmd_freeze, "show": cmd_show}
    if command not in handlers:
        raise Refused(
            f"ERROR: pip {command} is not available in a kernelstacks kernel "
            f"(read-only commands: {', '.join(READ_ONLY)})"
        )
    return handlers[command](rest, out)


def run(args: list[str]) -> tuple[int, str, str]:
    """Run a pip command line; returns (exit status, stdout text, stderr text)."""
    out = io.StringIO()
    try:
        status = dispatch(args, out)
    except Refused as exc:
        return 1, out.getvalue(), f"{exc}\n"
    return status, out.getvalue(), ""


def main(argv: list[str] | None = None) -> int:
    """``pip ...`` and ``python -m pip ...`` in a layered kernel."""
    status, out, err = run(list(sys.argv[1:] if argv is None else argv))
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status
