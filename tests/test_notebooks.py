"""notebooks/: run on the demo stack's kernel, committed with outputs that a rerun still prints.

``scripts/execute_notebooks.py`` saved them; this re-executes them the same way (the demo stack
built with ``kernelstacks demo``, packages limited to the same date) and compares each code cell's
text output with the saved one, after replacing times, addresses and temporary paths.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("nbclient")

import nbformat

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def load_script():
    """scripts/execute_notebooks.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "execute_notebooks", ROOT / "scripts" / "execute_notebooks.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = load_script()


def test_notebooks_name_the_demo_kernel_and_are_saved_with_outputs() -> None:
    for name in script.ORDER:
        nb = nbformat.read(script.NOTEBOOKS / name, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "kernelstacks-demo-analysis", name
        assert nb.metadata["kernelspec"]["display_name"].startswith("demo: analysis"), name
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs for c in code), f"{name}: a code cell has no saved output"
        assert all(c.execution_count for c in code), name
        saved = json.dumps(nb)
        assert "/tmp/" not in saved and script.SHOWN_DEMO_DIR in saved, name


def outputs(nb: object) -> dict[str, str]:
    return dict(script.cell_texts(nb))


def test_notebooks_rerun_on_the_demo_stack_and_print_what_is_saved(tmp_path: Path) -> None:
    """One test (one demo build) so parallel workers do not each build the stack again."""
    demo, prefix = tmp_path / "demo", tmp_path / "prefix"
    script.build_demo(demo, prefix)
    embedded = (demo / "venvstacks.toml").read_text()
    fresh = {name: script.execute(script.NOTEBOOKS / name, demo, prefix) for name in script.ORDER}
    check_tour(outputs(fresh["layered_kernel_tour.ipynb"]))
    check_tutorial(outputs(fresh["venvstacks_magics_tutorial.ipynb"]))
    assert (demo / "venvstacks.toml").read_text() == embedded, "the tutorial undoes its change"
    problems = []
    for name in script.ORDER:
        saved = nbformat.read(script.NOTEBOOKS / name, as_version=4)
        problems += [f"{name}: {p}" for p in script.differences(saved, fresh[name])]
    assert not problems, (
        "outputs changed; if that is intended, run `python scripts/execute_notebooks.py`:\n"
        + "\n".join(problems)
    )


def check_tour(out: dict[str, str]) -> None:
    """The tour names the layer each module comes from (ipykernel: framework-jupyter)."""
    text = next(v for k, v in out.items() if "layer_of" in k)
    assert "ipykernel from: framework-jupyter\n" in text
    assert "scipy from: framework-scipy\n" in text and "tabulate from: app-analysis\n" in text
    assert "numpy from: cpython-3." in text and "kernel python: app-analysis/bin/python" in text
    assert "framework-jupyter" in out["%venvstacks"] and "cpython-3." in out["%venvstacks"]


def check_tutorial(out: dict[str, str]) -> None:
    """Every subcommand of the tutorial did its job on the demo stack."""
    packages = out["%venvstacks packages"]
    assert "ipykernel" in packages and "tabulate" in packages and "app-analysis" in packages
    assert "scipy" in out["%venvstacks packages --layer framework-scipy"]
    assert "framework-scipy: scipy" in out["%venvstacks why scipy"]
    assert "matches its lock" in out["%venvstacks diff"]
    assert "%venvstacks add humanize" in out["%pip install humanize"]
    assert "app-analysis: + humanize" in out["%venvstacks add humanize"]
    assert "built app-analysis" in out["%venvstacks build"]
    imported = next(v for k, v in out.items() if k.startswith("!python"))
    assert "humanize from app-analysis/" in imported
    assert "<widget>" in out["%venvstacks explore"]
    assert "- humanize" in out["%venvstacks remove humanize\n%venvstacks build"]
    assert "did you mean '%venvstacks packages'?" in out["%venvstacks pakages"]
    for source, text in out.items():
        assert "Traceback" not in text, source
