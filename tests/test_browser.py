"""JupyterLab in headless Chromium: the layered kernel is in the launcher and runs cells."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from kernel_helpers import LAB_KERNEL, kernel_json

pytest.importorskip("playwright")
pytest.importorskip("jupyterlab")

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from browser_helpers import (
    CHROMIUM,
    browser_page,
    jupyter_lab,
    jupyter_server,
    notebook_url,
    open_kernel_notebook,
    open_notebook,
    prompt_of,
    run_all,
    run_cell,
    run_cell_at,
    wait_idle,
)

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]


def test_launcher_shows_kernel_and_cell_prints_framework_path(
    kernel_stack: Path, tmp_path: Path
) -> None:
    display_name = kernel_json(LAB_KERNEL)["display_name"]
    with jupyter_lab(tmp_path) as url, browser_page() as page:
        try:
            open_kernel_notebook(page, url, display_name)
            text = run_cell(page, "import attrs; print(attrs.__file__)", "framework-data")
            assert "/_build/framework-data/" in text
        finally:
            page.screenshot(path=str(tmp_path / "jupyterlab.png"))


def test_explorer_widget_renders_chain(kernel_stack: Path, tmp_path: Path) -> None:
    display_name = kernel_json(LAB_KERNEL)["display_name"]
    with jupyter_lab(tmp_path) as url, browser_page() as page:
        try:
            open_kernel_notebook(page, url, display_name)
            run_cell(page, "%venvstacks explore", "framework-jupyter", timeout=180_000)
            widget = page.locator(".jupyter-widgets", has_text="framework-data").first
            widget.wait_for(timeout=120_000)
            text = page.locator(".jp-OutputArea-output").last.inner_text()
            for name in ("app-lab", "framework-data", "framework-jupyter", "cpython-3.12"):
                assert name in text
            # Build (nothing changed: every layer is checked and kept) fills the log past its box;
            # the box keeps the newest line in view by itself
            widget.locator("button", has_text="Build").first.click()
            widget.locator(".widget-label", has_text="build done").first.wait_for(timeout=300_000)
            log = widget.locator("div[style*='column-reverse']").first
            view = log.evaluate(
                """el => {
                    const box = el.getBoundingClientRect();
                    const text = el.querySelector('pre').getBoundingClientRect();
                    return {overflows: el.scrollHeight > el.clientHeight + 2,
                            bottom_gap: Math.abs(text.bottom - box.bottom),
                            hidden_above: box.top - text.top};
                }"""
            )
            assert view["overflows"], view
            assert view["bottom_gap"] < 12 and view["hidden_above"] > 0, view
            assert "build done" in log.inner_text().splitlines()[-1]
        finally:
            page.screenshot(path="/tmp/kernelstacks-browser-explorer.png", full_page=True)


def copy_notebook(source: str, root: Path, name: str) -> str:
    """A test notebook set to this session's kst lab kernel, in the server's root."""
    nb = json.loads((NOTEBOOKS / source).read_text())
    nb["metadata"]["kernelspec"]["name"] = LAB_KERNEL
    nb["metadata"]["kernelspec"]["display_name"] = kernel_json(LAB_KERNEL)["display_name"]
    (root / name).write_text(json.dumps(nb))
    return name


def restart_notebook(root: Path) -> str:
    """before = 1 / %venvstacks restart / is 'before' still there? / 6 * 7."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": LAB_KERNEL,
        "display_name": kernel_json(LAB_KERNEL)["display_name"],
        "language": "python",
    }
    sources = ["before = 1", "%venvstacks restart", "print('before' in globals())", "print(6 * 7)"]
    nb.cells = [nbformat.v4.new_code_cell(code) for code in sources]
    nbformat.write(nb, root / "restart.ipynb")
    return "restart.ipynb"


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_magic_outputs_render_as_html_tables(kernel_stack: Path, tmp_path: Path, app: str) -> None:
    """Not a collapsed JSON tree ("root > layers [] 4 items"): a table, in Lab and Notebook 7."""
    name = copy_notebook("magic_outputs.ipynb", tmp_path, "magics.ipynb")
    shot = Path(f"/tmp/kernelstacks-browser-magics-{app}.png")
    with jupyter_server(tmp_path, app) as url, browser_page() as page:
        try:
            open_notebook(page, notebook_url(url, app, name))
            run_all(page)
            cells = page.locator(".jp-Notebook .jp-Cell")
            last = cells.nth(6).locator(".jp-OutputArea-output", has_text="Layer: framework-data")
            last.wait_for(timeout=180_000)
            for index, expect in ((1, "framework-jupyter"), (2, "tabulate"), (3, "attrs")):
                table = cells.nth(index).locator(".jp-OutputArea-output table")
                table.first.wait_for(timeout=60_000)
                assert expect in table.first.inner_text(), index
                assert table.first.locator("td").count() >= 2
            assert page.locator(".jp-RenderedJSON").count() == 0
            assert "framework-data" in cells.nth(5).locator(".jp-OutputArea-output").inner_text()
        finally:
            page.screenshot(path=str(shot), full_page=True)


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_restart_is_safe_in_the_browser(kernel_stack: Path, tmp_path: Path, app: str) -> None:
    """One cell at a time: the next cell runs on the new kernel, no "kernel died" dialog. Run
    All: the run stops at the restart with one line saying what to do; nothing is left pending."""
    name = restart_notebook(tmp_path)
    with jupyter_server(tmp_path, app) as url, browser_page() as page:
        try:
            open_notebook(page, notebook_url(url, app, name))
            cells = page.locator(".jp-Notebook .jp-Cell")
            run_cell_at(page, 0)
            run_cell_at(page, 1)
            restarting = cells.nth(1).locator(".jp-OutputArea-output", has_text="KernelRestarting")
            restarting.wait_for(timeout=60_000)
            assert "run the cells below" in restarting.inner_text()
            page.wait_for_timeout(3000)  # the kernel replaces itself
            wait_idle(page)
            answer = cells.nth(2).locator(".jp-OutputArea-output")
            for _attempt in range(5):  # a cell sent while it is replaced is aborted: run again
                run_cell_at(page, 2)
                with contextlib.suppress(PlaywrightTimeout):
                    answer.first.wait_for(timeout=10_000)
                    break
            assert answer.first.inner_text().strip() == "False"  # never the old kernel
            assert page.locator(".jp-Dialog").count() == 0, "a dialog appeared"

            run_all(page)
            cells.nth(1).locator(".jp-OutputArea-output", has_text="KernelRestarting").wait_for(
                timeout=60_000
            )
            page.wait_for_timeout(4000)
            wait_idle(page)
            assert prompt_of(page, 2) == prompt_of(page, 3) == "[ ]:"  # stopped, not pending
            assert page.locator(".jp-Dialog").count() == 0, "a dialog appeared"
            run_cell_at(page, 0)  # the kernel is back and answers
            run_cell_at(page, 1 + 1)
            cells.nth(2).locator(".jp-OutputArea-output", has_text="True").wait_for(timeout=60_000)
        finally:
            page.screenshot(path=f"/tmp/kernelstacks-browser-restart-{app}.png", full_page=True)
