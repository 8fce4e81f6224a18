"""Execute the notebooks in notebooks/ on the demo stack's kernel and save them with outputs.

    python scripts/execute_notebooks.py            # build the demo stack, run, save the notebooks
    python scripts/execute_notebooks.py --check    # run them and compare with the saved outputs

The demo stack is built with ``kernelstacks demo`` in a temporary directory (or ``--demo-dir``),
its kernels registered under a private prefix so the user's own Jupyter is left alone, and packages
limited to those published before ``EXCLUDE_NEWER`` so the saved outputs stay what a rerun prints.
Saved outputs show the demo's default directory (``~/.local/share/kernelstacks/demo``) in place of
the directory used here. ``tests/test_notebooks.py`` runs the same functions in CI.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# The tour only reads the stack; the tutorial changes it and puts it back: run the tour first.
ORDER = ("layered_kernel_tour.ipynb", "venvstacks_magics_tutorial.ipynb")
KERNEL = "kernelstacks-demo-analysis"
EXCLUDE_NEWER = "2025-06-01T00:00:00Z"
SHOWN_DEMO_DIR = "~/.local/share/kernelstacks/demo"

# What legitimately changes from run to run, and what it is replaced with before comparing.
VOLATILE = [
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s)\b"), "<time>"),
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x<address>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),
    (re.compile(r"/tmp/[^\s'\"]*"), "<tmp>"),
    (re.compile(r"-{4,}"), "----"),  # table rules: as wide as the (replaced) paths in them
    (re.compile(r"(?<=\S) {2,}(?=\S)"), "  "),  # column gaps, likewise
]
# Layers checked or built in parallel report in any order: such a run of lines is compared sorted.
PROGRESS = re.compile(r"^\s*(?:valid|locked|unchanged|built|skipped|failed) \S+ \(<time>\)")
# A repr cut short ("/tmp/kernelst…") escapes the exact replacement of the demo directory.
TRUNCATED_TMP = re.compile(r"/tmp/[^\s'\"<>]*…")


def demo_env(prefix: Path) -> dict[str, str]:
    """The environment for building and running: pinned package dates, the prefix's kernels."""
    env = dict(os.environ, UV_EXCLUDE_NEWER=EXCLUDE_NEWER)
    kernels = str(prefix / "share" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (kernels, env.get("JUPYTER_PATH")) if p)
    return env


def build_demo(demo_dir: Path, prefix: Path) -> None:
    """``kernelstacks demo --dir DEMO --prefix PREFIX``: build the stack, register its kernels."""
    cmd = [sys.executable, "-m", "kernelstacks", "demo", "--dir", str(demo_dir)]
    cmd += ["--prefix", str(prefix), "--runtime-source", "local"]
    proc = subprocess.run(cmd, env=demo_env(prefix), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"kernelstacks demo failed:\n{proc.stdout}\n{proc.stderr}")


def execute(path: Path, demo_dir: Path, prefix: Path) -> Any:
    """Run one notebook on its kernel with nbclient; return it with fresh outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(demo_env(prefix))
    try:
        client = NotebookClient(
            nb,
            kernel_name=nb.metadata["kernelspec"]["name"],
            timeout=900,
            record_timing=False,
            resources={"metadata": {"path": str(demo_dir)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    spec = json.loads((prefix / "share/jupyter/kernels" / KERNEL / "kernel.json").read_text())
    nb.metadata["kernelspec"] = {
        "name": KERNEL,
        "display_name": spec["display_name"],
        "language": spec.get("language", "python"),
    }
    return replace_strings(nb, str(demo_dir), SHOWN_DEMO_DIR)


def replace_strings(node: Any, old: str, new: str) -> Any:
    """Replace ``old`` with ``new`` in every output and the saved widget state (not in sources)."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return TRUNCATED_TMP.sub(f"{new}…", value.replace(old, new))
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return type(value)((k, walk(v)) for k, v in value.items())
        return value

    for cell in node.cells:
        if cell.cell_type == "code":
            cell.outputs = walk(cell.outputs)
    if "widgets" in node.metadata:
        node.metadata["widgets"] = walk(node.metadata["widgets"])
    return node


def output_text(output: dict[str, Any]) -> str:
    """What one output shows as text: a stream, text/plain, or an error's one line."""
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    if output.get("output_type") == "error":
        return f"{output['ename']}: {output['evalue']}\n"
    data = output.get("data", {})
    if "application/vnd.jupyter.widget-view+json" in data:
        return "<widget>\n"
    return str(data.get("text/plain", ""))


def normalised(text: str) -> str:
    """``text`` with times, addresses, ids and temporary paths replaced by placeholders."""
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    lines, block = [], []
    for line in [*text.splitlines(), ""]:
        if PROGRESS.match(line):
            block.append(line)
            continue
        lines += [*sorted(block), line]
        block = []
    return "\n".join(lines[:-1])


def cell_texts(nb: Any) -> Iterator[tuple[str, str]]:
    """(source, normalised text output) for every code cell, in order."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            text = "".join(output_text(o) for o in cell.get("outputs", []))
            yield cell.source, normalised(text)


def differences(saved: Any, fresh: Any) -> list[str]:
    """A unified diff per code cell whose text output changed (empty: they match)."""
    problems = []
    for (source, old), (_, new) in zip(cell_texts(saved), cell_texts(fresh), strict=True):
        if old != new:
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), "saved", "now", lineterm=""
            )
            problems.append(f"cell {source!r}:\n" + "\n".join(diff))
    return problems


def main(argv: list[str] | None = None) -> int:
    """Build the demo stack, execute every notebook, then save or check the outputs."""
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not save")
    parser.add_argument("--demo-dir", type=Path, help="reuse this demo directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kernelstacks-notebooks-") as tmp:
        demo_dir = (args.demo_dir or Path(tmp) / "demo").absolute()
        prefix = Path(tmp) / "jupyter-prefix"
        build_demo(demo_dir, prefix)
        problems = []
        for name in ORDER:
            path = NOTEBOOKS / name
            fresh = execute(path, demo_dir, prefix)
            if args.check:
                problems += differences(nbformat.read(path, as_version=4), fresh)
            else:
                nbformat.write(fresh, path)
                print(f"saved {path.relative_to(ROOT)}")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
