"""Layered kernels from a Jupyter that has never heard of kernelstacks.

A user-level kernelspec is seen by every Jupyter on the machine: a pipx JupyterLab, another
project's venv, VS Code. This builds such an environment with uv (Jupyter, nbconvert, papermill,
ipykernel; no kernelstacks, on another Python version) and runs the test notebooks there:
``jupyter nbconvert --execute`` and ``papermill`` find the kernels, get HTML tables from the
magics, add a package / build / restart / import it in one top-to-bottom run, and stop with the
explanation on a kernel whose stack is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import local_python
from kernel_helpers import ghost_kernel, user_kernels_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
TOUR = "kernelstacks-tour-lab"


@pytest.fixture(scope="session")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with Jupyter, nbconvert and papermill but not kernelstacks; returns its bin dir."""
    from kernelstacks._support.uv import uv_binary

    venv = tmp_path_factory.mktemp("other-jupyter") / "venv"
    python = local_python("3.12") or Path(sys.executable)
    subprocess.run([uv_binary(), "venv", "-q", "--python", str(python), str(venv)], check=True)
    packages = ["jupyter", "nbconvert", "papermill", "ipykernel"]
    subprocess.run(
        [uv_binary(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *packages],
        check=True,
        timeout=900,
    )
    check = subprocess.run([venv / "bin" / "python", "-c", "import kernelstacks"], check=False)
    assert check.returncode != 0, "the other Jupyter must not have kernelstacks"
    return venv / "bin"


def run(bin_dir: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command of the other environment, with only its own bin dir first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"])
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(bin_dir / str(args[0])), *map(str, args[1:])],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if check:
        assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def outputs(path: Path) -> dict[str, list[dict]]:
    """Source -> outputs of every code cell of an executed notebook."""
    nb = json.loads(path.read_text())
    return {"".join(c["source"]): c["outputs"] for c in nb["cells"] if c["cell_type"] == "code"}


def text_of(cell_outputs: list[dict]) -> str:
    parts = []
    for out in cell_outputs:
        parts.append("".join(out.get("text", "")))
        parts.append("".join(out.get("data", {}).get("text/plain", "")))
        parts.append("\n".join(out.get("traceback", [])))
    return "".join(parts)


def test_the_kernels_are_listed(jupyter_env: Path, kernel_stack: Path, tour_stack: Path) -> None:
    specs = json.loads(run(jupyter_env, "jupyter", "kernelspec", "list", "--json").stdout)
    assert {TOUR, "kernelstacks-kst-lab"} <= set(specs["kernelspecs"])


def test_nbconvert_gets_html_tables(jupyter_env: Path, tour_stack: Path, tmp_path: Path) -> None:
    executed = tmp_path / "magic_outputs.ipynb"
    run(jupyter_env, "jupyter", "nbconvert", "--execute", "--to", "notebook",
        "--output", executed, NOTEBOOKS / "magic_outputs.ipynb")  # fmt: skip
    cells = outputs(executed)
    for source in ("%venvstacks", "%venvstacks packages", "%venvstacks why attrs"):
        data = [o["data"] for o in cells[source] if o["output_type"] == "display_data"]
        assert data and set(data[0]) == {"text/html", "text/plain"}, source
        assert "<table>" in "".join(data[0]["text/html"])
    assert "framework-data" in text_of(cells["%venvstacks why attrs"])
    assert "matches its lock" in text_of(cells["%venvstacks diff"])
    assert "framework-data" in text_of(cells["!pip list"])
    assert "Layer: framework-data" in text_of(cells["!python -m pip show attrs"])
    html = tmp_path / "magic_outputs.html"
    run(jupyter_env, "jupyter", "nbconvert", "--to", "html", "--output", html, executed)
    assert html.read_text().count("<table>") >= 3


def check_restarted_run(path: Path, tour_stack: Path) -> None:
    cells = outputs(path)
    assert "app-lab: + humanize" in text_of(cells["%venvstacks add humanize"])
    assert "built" in text_of(cells["%venvstacks build"])
    # the progress bar's text form says how the build ended (not "IntProgress(value=0, ...)")
    bars = [o for o in cells["%venvstacks build"] if "transient" not in o and o.get("data")]
    widget = next(o for o in bars if "application/vnd.jupyter.widget-view+json" in o["data"])
    assert "".join(widget["data"]["text/plain"]).startswith("build: done (")
    assert "IntProgress" not in json.dumps([c for cs in cells.values() for c in cs])
    assert "Kernel restarted" in text_of(cells["%venvstacks restart"])
    imported = text_of(next(v for k, v in cells.items() if k.startswith("import humanize")))
    assert "/_build/app-lab/" in imported and "fresh interpreter: True" in imported
    assert "- humanize" in text_of(cells["%venvstacks remove humanize\n%venvstacks build"])
    assert "humanize" not in tour_stack.read_text()


def test_nbconvert_adds_builds_restarts_and_imports(
    jupyter_env: Path, tour_stack: Path, tmp_path: Path
) -> None:
    executed = tmp_path / "run.ipynb"
    run(jupyter_env, "jupyter", "nbconvert", "--execute", "--to", "notebook", "--output",
        executed, NOTEBOOKS / "add_build_restart_import.ipynb")  # fmt: skip
    check_restarted_run(executed, tour_stack)


def test_papermill_adds_builds_restarts_and_imports(
    jupyter_env: Path, tour_stack: Path, tmp_path: Path
) -> None:
    executed = tmp_path / "run.ipynb"
    run(jupyter_env, "papermill", NOTEBOOKS / "add_build_restart_import.ipynb", executed,
        "-k", TOUR)  # fmt: skip
    check_restarted_run(executed, tour_stack)


def test_a_broken_stack_stops_the_run(jupyter_env: Path, tour_stack: Path, tmp_path: Path) -> None:
    ghost_kernel(user_kernels_dir() / TOUR, "kernelstacks-tour-ghost", tmp_path / "deleted")
    notebook = NOTEBOOKS / "broken_stack.ipynb"
    proc = run(jupyter_env, "jupyter", "nbconvert", "--execute", "--to", "notebook",
               "--output", tmp_path / "out.ipynb", notebook, check=False)  # fmt: skip
    assert proc.returncode != 0
    assert "cannot start" in proc.stderr and "is missing" in proc.stderr
    proc = run(jupyter_env, "papermill", notebook, tmp_path / "pm.ipynb", check=False)
    assert proc.returncode != 0 and "cannot start" in proc.stderr
    cells = outputs(tmp_path / "pm.ipynb")
    first = cells['print("this never runs")']
    assert first[0]["ename"] == "KernelstacksBrokenStack"
    assert "--kernels" in text_of(first)  # the repair command, as registered
    assert cells['print("nor this")'] == []
