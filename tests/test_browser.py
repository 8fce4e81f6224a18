"""JupyterLab in headless Chromium: the layered kernel is in the launcher and runs cells."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernel_helpers import LAB_KERNEL, kernel_json

pytest.importorskip("playwright")
pytest.importorskip("jupyterlab")

from browser_helpers import CHROMIUM, browser_page, jupyter_lab, open_kernel_notebook, run_cell

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
        finally:
            page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
