"""The README's quick start, followed as a new user would: its commands, then JupyterLab.

The commands are read from the README itself, so a README that drifts from what works fails here.
The package is already installed in the test environment with the ``lab`` extra (``jupyterlab`` is
importable), so the first command's ``pip install`` part is checked, not rerun.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from engine_helpers import ks

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
SHOTS = "/tmp/kernelstacks-browser-readme"


def quick_start_commands() -> list[str]:
    """The shell blocks of the README's quick start, in order."""
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_quick_start_installs_the_lab_extra_runs_the_demo_and_the_ci_command() -> None:
    install_and_demo, open_lab, test_suite = quick_start_commands()
    assert install_and_demo == 'python -m pip install ".[lab]" && kernelstacks demo'
    assert open_lab == "jupyter lab"
    assert test_suite in CI.splitlines(), "the README's test command is .ci/run's, verbatim"
    assert "20–25 minutes" in README and "/usr/bin/chromium" in README
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("jupyterlab") for req in extras["lab"])


def demo_kernels(stdout: str) -> list[tuple[str, str]]:
    """(display name, kernel name) of each kernel the demo's closing lines name."""
    return re.findall(r"^  (.+?)  \((kernelstacks-[\w-]+), in ", stdout, re.M)


@pytest.mark.slow
@pytest.mark.browser
def test_readme_quick_start_reaches_a_layered_kernel_and_the_tutorial_in_jupyterlab(
    tmp_path: Path,
) -> None:
    pytest.importorskip("playwright")
    pytest.importorskip("jupyterlab")
    from browser_helpers import (
        CHROMIUM,
        browser_page,
        jupyter_lab,
        notebook_url,
        open_kernel_notebook,
        open_notebook,
        run_cell,
        run_cell_at,
    )

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed")
    command = quick_start_commands()[0].split(" && ")[1].split()
    assert command[:2] == ["kernelstacks", "demo"]
    demo = ks(*command[1:], "--dir", tmp_path / "demo", timeout=1800)  # kernels: per user
    kernels = dict(demo_kernels(demo.stdout))
    display = next(d for d, name in kernels.items() if name == "kernelstacks-demo-analysis")
    assert demo.stdout.count("\n  jupyter lab\n") == 1  # the exact command, said once
    # "jupyter lab" from the clone: the notebooks are there
    lab_root = tmp_path / "clone"
    shutil.copytree(ROOT / "notebooks", lab_root / "notebooks")
    with jupyter_lab(lab_root) as url, browser_page() as page:
        try:
            open_kernel_notebook(page, url, display)
            text = run_cell(page, "%venvstacks show", "framework-scipy")
            for layer in ("app-analysis", "framework-scipy", "framework-jupyter", "cpython-3."):
                assert layer in text
            assert str(tmp_path / "demo" / "_build") in text
        finally:
            page.screenshot(path=f"{SHOTS}.png", full_page=True)
        tutorial = "notebooks/venvstacks_magics_tutorial.ipynb"
        try:
            # ?reset: a fresh workspace, so the tutorial is the only notebook open
            open_notebook(page, notebook_url(url, "lab", tutorial) + "?reset")
            status = page.locator(".jp-StatusBar-TextItem", has_text=display).first
            status.wait_for(timeout=60_000)  # the tutorial opens on the demo kernel by itself
            first_code = page.locator(".jp-Notebook .jp-Cell.jp-CodeCell").first
            first_code.locator(".jp-InputArea-prompt").click()
            index = page.locator(".jp-Notebook .jp-Cell").evaluate_all(
                "cells => cells.findIndex(c => c.classList.contains('jp-CodeCell'))"
            )
            run_cell_at(page, index)
            output = first_code.locator(".jp-OutputArea-output", has_text=str(tmp_path / "demo"))
            output.first.wait_for(timeout=120_000)  # ran now, on this machine's demo stack
        finally:
            page.screenshot(path=f"{SHOTS}-tutorial.png", full_page=True)
