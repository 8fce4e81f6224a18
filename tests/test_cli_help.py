"""``--help`` everywhere reads like a well-kept CLI: metavars, choices, help for every option.

The test walks the real command tree (every command and subcommand, hidden ones skipped) and
renders each ``--help`` through the console-script entry point, as a user sees it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kernelstacks.cli.app import cli_command

#: What typer prints when an option has no metavar: a Python type, a range, a bare list type.
RAW_TYPES = re.compile(
    r"<(bool|int|str|float|path|text|integer|list\[[^\]]*\]|[a-z]+ range)>|\[x[<>]=|\{[a-z_]+\}"
)


def walk(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every visible command with its words, the root first."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        if not getattr(sub, "hidden", False):
            found += walk(sub, (*path, name))
    return found


COMMANDS = walk(cli_command())


def render_help(words: tuple[str, ...]) -> str:
    env = dict(os.environ, COLUMNS="200", TERM="dumb")
    proc = subprocess.run(
        [sys.executable, "-m", "kernelstacks", *words, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_tree_is_complete() -> None:
    names = {" ".join(words) for words, _ in COMMANDS}
    for expected in ("show", "lock", "build", "publish", "local-export", "deploy", "kernels prune"):
        assert expected in names
    assert "export" not in names  # the hidden alias of local-export


@pytest.mark.parametrize("words", [w for w, _ in COMMANDS], ids=lambda w: " ".join(w) or "root")
def test_help_has_no_raw_types(words: tuple[str, ...]) -> None:
    text = render_help(words)
    assert "Usage: kernelstacks" in text
    raw = RAW_TYPES.findall(text)
    assert not raw, f"raw type names in 'kernelstacks {' '.join(words)} --help': {raw}\n{text}"


@pytest.mark.parametrize(
    "words,command", COMMANDS, ids=[" ".join(w) or "root" for w, _ in COMMANDS]
)
def test_every_option_and_argument_has_help(words: tuple[str, ...], command: Any) -> None:
    assert (command.help or "").strip(), f"'{' '.join(words)}' has no description"
    missing = [
        param.name
        for param in command.params
        if not getattr(param, "hidden", False) and not (getattr(param, "help", "") or "").strip()
    ]
    assert not missing, f"'kernelstacks {' '.join(words)}': no help text for {missing}"


def test_metavars_and_choices_are_shown() -> None:
    lock = render_help(("lock",))
    assert "auto|managed|local" in lock  # --runtime-source lists its choices
    for metavar in ("SPEC", "PATTERN", "DIR", "N", "IMPL=PATH"):
        assert re.search(rf"\b{re.escape(metavar)}\b", lock), metavar
    assert "Usage: kernelstacks lock [OPTIONS] SPEC" in lock
    assert "Usage: kernelstacks run [OPTIONS] SPEC APP" in render_help(("run",))
    root = render_help(())
    assert "local-export" in root
    assert "-V" in root and "--verbose" in root and "--quiet" in root


def test_kernel_scope_options_explain_themselves() -> None:
    deploy = render_help(("deploy",))
    for line in ("--user", "--sys-prefix", "--prefix"):
        row = next(r for r in deploy.splitlines() if line + " " in r)
        assert len(row.split(line, 1)[1].strip(" │")) > 10, row
    install = render_help(("kernels", "install"))
    assert re.search(r"--build-dir\s+DIR\s+\S", install)
    for words in (("kernels", "remove"), ("kernels", "prune")):
        assert re.search(r"--prefix\s+DIR\s+\S", render_help(words))


def test_jobs_must_be_positive() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kernelstacks", "lock", "x.toml", "--jobs", "0"],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert proc.returncode == 2
    assert "0 is not a positive number" in proc.stderr


def test_engine_commands_are_documented() -> None:
    """Every option of show, lock and build appears in docs/engine.md's synopsis."""
    docs = Path(__file__).resolve().parent.parent / "docs"
    text = (docs / "engine.md").read_text(encoding="utf-8")
    text += (docs / "coming-from-venvstacks.md").read_text(encoding="utf-8")
    root = cli_command()
    for name in ("show", "lock", "build"):
        for param in root.commands[name].params:
            if getattr(param, "hidden", False) or param.param_type_name != "option":
                continue
            assert any(re.search(re.escape(o) + r"(?![\w-])", text) for o in param.opts), (
                f"{name} {param.opts} is not in docs/engine.md"
            )


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI through a pipe (stdout is not a terminal), as a script or ``| less`` sees it."""
    return subprocess.run(
        [sys.executable, "-m", "kernelstacks", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_piped_show_is_never_cut(tmp_path: Path) -> None:
    # longer than any terminal line, yet within the file system's name limit
    long = "x" * 180
    (tmp_path / "m.py").write_text("")
    spec = tmp_path / "venvstacks.toml"
    spec.write_text(
        textwrap.dedent(
            f"""
            [[runtimes]]
            name = "cpython-3.11"
            python_implementation = "cpython@3.11"
            requirements = []

            [[frameworks]]
            name = "{long}"
            runtime = "cpython-3.11"
            requirements = []

            [[frameworks]]
            name = "deeper"
            frameworks = ["{long}"]
            requirements = []

            [[applications]]
            name = "a{long}"
            launch_module = "m.py"
            frameworks = ["deeper"]
            requirements = []
            """
        )
    )
    whole_fw = re.compile(rf"framework-{long}(?!x)")
    for args in (("show", str(spec)), ("lock", str(spec), "--show-only")):
        proc = run(*args)
        assert proc.returncode == 0, proc.stderr
        assert re.search(rf"app-a{long}(?!x)", proc.stdout), proc.stdout
        assert whole_fw.search(proc.stdout)
        assert all(len(line) < 400 for line in proc.stdout.splitlines())  # no padding
    shown = run("show", str(spec)).stdout
    assert len(whole_fw.findall(shown)) == 3  # itself, below deeper, below the app


def test_missing_spec_file_says_so(tmp_path: Path) -> None:
    proc = run("show", "nope.toml", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: nope.toml: stack file not found"


def test_empty_kernel_listings_say_where_they_looked(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    listed = run("kernels", "list", "--prefix", str(prefix))
    assert listed.returncode == 0
    assert "no kernels written by kernelstacks were found" in listed.stdout
    assert str(prefix / "share" / "jupyter" / "kernels") in listed.stdout
    pruned = run("kernels", "prune", "--prefix", str(prefix))
    assert "no kernelstacks kernels in" in pruned.stdout
    assert "still has its layers" not in pruned.stdout
    assert str(prefix / "share" / "jupyter" / "kernels") in pruned.stdout
