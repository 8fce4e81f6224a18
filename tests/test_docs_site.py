"""The docs site builds with mkdocs --strict: notebooks from their saved outputs, the CLI reference
from the code, and a warning (here a broken link) fails the build."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` as ``pdm run docs`` runs it, into ``site``."""
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]
    env = {"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=config.parent, env=env)


def text_of(page: Path) -> str:
    """A built page's visible text."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = mkdocs_build(ROOT / "mkdocs.yml", out)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


def test_notebooks_are_rendered_with_their_saved_outputs(site: Path) -> None:
    tour = text_of(site / "notebooks" / "layered_kernel_tour" / "index.html")
    assert "ipykernel from: framework-jupyter" in tour
    tutorial = text_of(site / "notebooks" / "venvstacks_magics_tutorial" / "index.html")
    assert "did you mean '%venvstacks packages'?" in tutorial
    assert "framework-scipy: scipy" in tutorial


def test_cli_reference_lists_every_command_and_option_from_the_code(site: Path) -> None:
    import typer

    from kernelstacks.cli.app import app

    page = text_of(site / "cli" / "index.html")
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="kernelstacks")
    seen = 0
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        assert f"kernelstacks {name}" in page
        sub_ctx = command.context_class(command, info_name=name, parent=ctx)
        for param in command.get_params(sub_ctx):
            for opt in param.opts:
                if opt.startswith("-"):
                    assert opt in page, f"{name} {opt}"
                    seen += 1
    assert seen > 40
    assert "--reset" in page and "FILE.<time>.bak" in page


def test_a_warning_fails_the_strict_build(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "kernels.md"
    page.write_text(page.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    proc = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0
    assert "no-such-page.md" in proc.stderr
