"""%venvstacks in real layered kernels: every subcommand, and the notebooks in notebooks/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import local_python

pytest.importorskip("nbclient")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TOUR_KERNEL = "kernelstacks-tour-lab"


def execute(path: Path, kernel: str):
    """Run a notebook with nbclient on a layered kernel; return it with outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name=kernel, timeout=900).execute()
    return nb


def cell_text(cell) -> str:
    """Everything a code cell showed, as text (streams, text/plain, JSON)."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts.append(data.get("text/plain", ""))
        if "application/json" in data:
            parts.append(json.dumps(data["application/json"]))
        if "application/vnd.jupyter.widget-view+json" in data:
            parts.append("<widget>")
    return "".join(parts)


def outputs_by_source(nb) -> dict[str, str]:
    return {c.source: cell_text(c) for c in nb.cells if c.cell_type == "code"}


def test_tutorial_notebook_every_subcommand(tour_stack: Path) -> None:
    nb = execute(NOTEBOOKS / "venvstacks_magics_tutorial.ipynb", TOUR_KERNEL)
    out = outputs_by_source(nb)
    assert "framework-jupyter" in out["%venvstacks"] and "cpython-3.12" in out["%venvstacks"]
    packages = out["%venvstacks packages"]
    assert "ipykernel" in packages and "tabulate" in packages and "app-lab" in packages
    assert "attrs" in out["%venvstacks packages --layer framework-data"]
    assert "ipykernel" not in out["%venvstacks packages --layer framework-data"]
    why = out["%venvstacks why attrs"]
    assert "framework-data" in why and "framework-data: attrs" in why
    assert "matches its lock" in out["%venvstacks diff"]
    assert "%venvstacks add humanize" in out["%pip install humanize"]
    assert "app-lab: + humanize" in out["%venvstacks add humanize"]
    assert "locked" in out["%venvstacks add humanize"]
    assert "built" in out["%venvstacks build"] and "app-lab" in out["%venvstacks build"]
    assert "%venvstacks restart" in out["%venvstacks build"]
    imported = next(v for k, v in out.items() if k.startswith("!python"))
    assert "humanize from" in imported and "/_build/app-lab/" in imported
    assert "<widget>" in out["%venvstacks explore"]
    undo = out["%venvstacks remove humanize\n%venvstacks build"]
    assert "- humanize" in undo and "built" in undo
    for source, text in out.items():
        assert "Traceback" not in text, source
    spec = tour_stack.read_text()
    assert "humanize" not in spec and 'requirements = ["tabulate"]' in spec


def test_tour_notebook(tour_stack: Path) -> None:
    nb = execute(NOTEBOOKS / "layered_kernel_tour.ipynb", TOUR_KERNEL)
    text = "".join(cell_text(c) for c in nb.cells if c.cell_type == "code")
    assert "framework-jupyter" in text and "/_build/app-lab" in text


def test_magic_errors_are_one_line(tour_stack: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%venvstacks why no-such-package-here"),
        nbformat.v4.new_code_cell("%venvstacks packages --layer nope"),
        nbformat.v4.new_code_cell("%venvstacks add 'bad>=>1'"),
        nbformat.v4.new_code_cell("%venvstacks frobnicate"),
    ]
    path = tour_stack.parent / "errors.ipynb"
    nbformat.write(nb, path)
    out = outputs_by_source(execute(path, TOUR_KERNEL))
    assert "not installed in any layer" in out["%venvstacks why no-such-package-here"]
    assert "no layer 'nope'" in out["%venvstacks packages --layer nope"]
    assert "invalid requirement" in out["%venvstacks add 'bad>=>1'"]
    assert "unknown subcommand 'frobnicate'" in out["%venvstacks frobnicate"]
    for text in out.values():
        assert "Traceback" not in text
