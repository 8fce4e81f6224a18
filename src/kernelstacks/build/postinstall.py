"""Post-install step of a kernelstacks layer: make an unpacked layer work where it now lives.

Every built layer carries a copy of this file as ``share/venv/metadata/postinstall.py``. It uses
only the standard library, so a host application can deploy layers with nothing but the layers'
own runtime:

    <runtime>/bin/python3 <layer>/share/venv/metadata/postinstall.py [--final-dir DIR]

It reads the layer's ``venvstacks_layer.json`` (paths relative to the layer, naming the deployed
sibling layers) and, for a venv layer, points ``pyvenv.cfg``'s ``home`` and the ``bin/python*``
links at the runtime, and the chain module at the lower layers; then it compiles bytecode, so a
read-only deployment never writes at interpreter start. Every rewrite goes through a temporary
file and a rename, never in place: exported layers share files with the build by hard links.
``--final-dir`` computes everything for where the layer *will* be (deploys stage layers first).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import sys
import tempfile
from pathlib import Path

METADATA = Path("share/venv/metadata/venvstacks_layer.json")
CHAIN_MODULE = "_kernelstacks_chain.py"


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
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
    done = [_fix_pyvenv_cfg(layer, base_python)]
    done += _fix_python_links(layer, final, base_python)
    done += _fix_activate_scripts(layer, final)
    chain = layer / meta["site_dir"] / CHAIN_MODULE
    if chain.is_file():
        _fix_chain(chain, meta, final, runtime)
        done.append(str(chain.relative_to(layer)))
    return done


def _fix_pyvenv_cfg(layer: Path, base_python: Path) -> str:
    """``home`` must be the runtime's absolute bin dir, or CPython falls back elsewhere."""
    cfg = layer / "pyvenv.cfg"
    values = {"home": str(base_python.parent), "executable": str(base_python)}
    out = []
    for line in cfg.read_text(encoding="utf-8").splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "command":
            continue
        out.append(f"{key} = {values[key]}" if key in values else line)
    _write_atomic(cfg, "\n".join(out) + "\n")
    return "pyvenv.cfg"


def _fix_activate_scripts(layer: Path, final: Path) -> list[str]:
    """The venv activate scripts name the layer's own path; point them at ``final``."""
    activate = layer / "bin" / "activate"
    if not activate.is_file():
        return []
    match = re.search(r"VIRTUAL_ENV=['\"]?(/[^'\"\n]+)", activate.read_text(encoding="utf-8"))
    if not match or match.group(1) == str(final):
        return []
    old, changed = match.group(1), []
    for script in sorted((layer / "bin").glob("activate*")):
        text = script.read_text(encoding="utf-8", errors="surrogateescape")
        if old in text:
            _write_atomic(script, text.replace(old, str(final)))
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


def compile_bytecode(layer: Path) -> bool:
    """Compile the layer's Python files (unchecked-hash pycs: a deployment's sources are fixed)."""
    meta = read_metadata(layer)
    targets = [layer / meta["site_dir"]]
    if meta["python"] == meta["base_python"]:
        targets = [layer / meta["site_dir"]] + [
            p for p in (layer / "lib").glob("python3*") if p.is_dir()
        ]
    ok = True
    for target in dict.fromkeys(targets):
        if target.is_dir():
            ok &= bool(
                compileall.compile_dir(
                    str(target),
                    quiet=2,
                    workers=0,
                    invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH,
                    ddir=None,
                )
            )
    return ok


def main(argv: list[str] | None = None) -> int:
    """Command line: relocate, then compile."""
    here = Path(__file__).resolve().parents[3]
    parser = argparse.ArgumentParser(description="Finish installing a kernelstacks layer.")
    parser.add_argument("layer", nargs="?", type=Path, default=here, help="layer directory")
    parser.add_argument("--final-dir", type=Path, help="where the layer will live")
    parser.add_argument("--no-compile", action="store_true", help="skip bytecode compilation")
    args = parser.parse_args(argv)
    layer = args.layer.absolute()
    final = (args.final_dir or layer).absolute()
    try:
        changed = relocate(layer, final)
    except (OSError, KeyError, ValueError) as exc:
        print(f"postinstall: cannot relocate {layer}: {exc}", file=sys.stderr)
        return 1
    if not args.no_compile:
        compile_bytecode(layer)
    print(json.dumps({"layer": str(final), "relocated": changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
