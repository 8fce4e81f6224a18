"""JupyterLab in headless Chromium (Debian's /usr/bin/chromium) driven by Python Playwright."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = os.environ.get("KERNELSTACKS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(root: Path, app: str = "lab") -> Iterator[str]:
    """Start JupyterLab (``lab``) or Notebook 7 (``notebook``) on a free loopback port without a
    token; yield its base URL."""
    port = free_port()
    log = open(root / f"jupyter-{app}.log", "w")  # noqa: SIM115 - closed below
    extra = (
        [
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if app == "lab"
        else []
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            app,
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            "--ServerApp.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={root}",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            if proc.poll() is not None:
                raise RuntimeError((root / f"jupyter-{app}.log").read_text())
            time.sleep(0.5)
        else:
            raise RuntimeError(f"jupyter {app} did not start in 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def jupyter_lab(root: Path) -> contextlib.AbstractContextManager[str]:
    """JupyterLab on a free loopback port (see :func:`jupyter_server`)."""
    return jupyter_server(root, "lab")


@contextlib.contextmanager
def browser_page() -> Iterator[object]:
    """A Playwright page in headless Debian Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            yield page
        finally:
            browser.close()


def open_kernel_notebook(page, url: str, display_name: str):
    """Open JupyterLab, click the kernel's launcher card, wait until the kernel is idle."""
    page.goto(f"{url}/lab", wait_until="domcontentloaded")
    card = page.locator(f".jp-LauncherCard[title*='{display_name}']").first
    card.wait_for(timeout=120_000)
    card.click()
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    wait_kernel_idle(page, display_name)
    return card


def wait_kernel_idle(page, display_name: str, timeout: float = 120_000) -> None:
    """The status bar says '<kernel> | Idle' once the kernel is connected and ready."""
    status = page.locator(".jp-StatusBar-TextItem", has_text=display_name)
    status.filter(has_text="Idle").first.wait_for(timeout=timeout)


def run_cell(page, code: str, expect: str, timeout: float = 120_000) -> str:
    """Type code into the last cell, run it, wait until the output contains ``expect``.

    A run issued while the frontend is still connecting to the kernel can be dropped, so the
    cell is run again (up to three times) until its prompt shows that it was executed.
    """
    cells = page.locator(".jp-Notebook .jp-Cell")
    index = cells.count() - 1
    cell = cells.nth(index)
    cell.locator(".cm-content").click()
    page.keyboard.type(code)
    prompt = cell.locator(".jp-InputPrompt")
    for _attempt in range(3):
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+Enter")
        for _ in range(40):
            if prompt.inner_text().strip() not in ("[ ]:", ""):
                break
            page.wait_for_timeout(500)
        else:
            continue
        break
    output = cell.locator(".jp-OutputArea-output", has_text=expect).first
    output.wait_for(timeout=timeout)
    return output.inner_text()


def notebook_url(base: str, app: str, name: str) -> str:
    """Where a notebook file in the server's root opens: Lab's tree or Notebook 7's page."""
    return f"{base}/lab/tree/{name}" if app == "lab" else f"{base}/notebooks/{name}"


def open_notebook(page, url: str) -> None:
    """Open a notebook file and wait until its kernel is idle (Lab and Notebook 7 alike).

    Recent JupyterLab asks which kernel to start for a notebook opened from a file ("Select
    Kernel", preselecting the one in its metadata): accept it.
    """
    page.goto(url, wait_until="domcontentloaded")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
    select = page.locator(".jp-Dialog", has_text="Select Kernel")
    with contextlib.suppress(Exception):
        select.wait_for(timeout=10_000)
        select.locator(".jp-Dialog-button.jp-mod-accept").click()
        select.wait_for(state="detached", timeout=30_000)
    wait_idle(page)


def wait_idle(page, timeout: float = 120_000) -> None:
    """The notebook toolbar's execution indicator says the kernel is idle."""
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
        timeout=timeout
    )


def run_cell_at(page, index: int) -> None:
    """Select code cell ``index`` (counting every cell) and run it with Shift+Enter."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Shift+Enter")


def run_all(page) -> None:
    """Run > Run All Cells (both UIs have it): every cell is sent to the kernel at once."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def prompt_of(page, index: int) -> str:
    """The input prompt of cell ``index`` (``[ ]:``, ``[*]:``, ``[3]:``)."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    return cell.locator(".jp-InputPrompt").inner_text().strip()
