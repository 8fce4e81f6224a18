"""kernelstacks answers venvstacks 0.8's command line: same commands, options and documents.

* Every command and option of venvstacks (read from the real 0.8.0b2 CLI) exists here.
* ``--json`` of ``show``, ``lock``, ``build``, ``publish`` and ``local-export`` prints the same
  status document as venvstacks on the same stack and command line: the golden files in
  ``tests/golden/`` hold venvstacks' own output (``python tests/test_cli_parity.py PEER`` writes
  them again), our documents must equal them apart from our added ``kernelstacks`` key, and a
  test checks the golden files against the live peer.
* A shell script written for venvstacks runs unchanged with kernelstacks in its place.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import local_python
from kernelstacks.cli.app import cli_command
from venvstacks_peer import make_peer, peer_env, peer_python

GOLDEN = Path(__file__).parent / "golden"

STACK = """
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11.13"
requirements = []

[[frameworks]]
name = "scipy"
runtime = "cpython-3.11"
versioned = true
requirements = ["attrs"]

[[frameworks]]
name = "extra"
frameworks = ["scipy"]
requirements = []

[[applications]]
name = "demo"
launch_module = "demo.py"
frameworks = ["extra"]
versioned = true
requirements = []

[[applications]]
name = "winonly"
launch_module = "demo.py"
runtime = "cpython-3.11"
platforms = ["win_amd64"]
requirements = []
"""

#: Command lines (after the tool's name; ``SPEC`` is the stack file) and their golden file.
CASES = {
    "show": ["show", "--json", "SPEC"],
    "show-include": ["show", "--json", "--include", "framework-extra", "SPEC"],
    "lock": ["lock", "--json", "SPEC"],
    "lock-include": ["lock", "--json", "--include", "framework-extra", "SPEC"],
    "lock-reset": ["lock", "--json", "--if-needed", "--reset-lock", "framework-*", "SPEC"],
    "lock-deps": [
        "lock", "--json", "--include", "app-demo", "--lock-dependencies",
        "--reset-lock", "cpython-3.11", "SPEC",
    ],
    "build": ["build", "--json", "SPEC"],
    "build-derived": [
        "build", "--json", "--include", "framework-scipy", "--lock-if-needed", "--build-derived",
        "SPEC",
    ],
    "build-deps": [
        "build", "--json", "--include", "app-*", "--include-dependencies", "--publish", "SPEC",
    ],
    "publish": ["publish", "--json", "--include", "framework-scipy", "--publish-derived", "SPEC"],
    "local-export": ["local-export", "--json", "SPEC"],
    "allow-missing": ["show", "--json", "--include", "nothing", "--allow-missing", "SPEC"],
}  # fmt: skip


#: ``--show-only`` command lines: venvstacks' status tree, compared as text.
TREE_CASES = {
    "lock": ["lock", "--show-only", "SPEC"],
    "build-derived": [
        "build", "--show-only", "--include", "framework-scipy", "--lock-if-needed",
        "--build-derived", "SPEC",
    ],
    "publish": ["publish", "--show-only", "--include", "app-*", "--publish-dependencies", "SPEC"],
}  # fmt: skip


def write_stack(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo.py").write_text("print('demo')\n")
    spec = folder / "venvstacks.toml"
    spec.write_text(textwrap.dedent(STACK))
    return spec


def run_case(tool: list[str], case: str, spec: Path, env: dict[str, str] | None = None) -> Any:
    """Run one command line; its stdout must be one JSON document (spec_name normalised)."""
    args = [str(spec) if arg == "SPEC" else arg for arg in CASES[case]]
    proc = subprocess.run([*tool, *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"{tool} {args}:\n{proc.stdout}\n{proc.stderr}"
    document = json.loads(proc.stdout)
    assert document["spec_name"] == str(spec.absolute())
    document["spec_name"] = "SPEC"
    return document


def run_tree_case(tool: list[str], case: str, spec: Path, env: dict[str, str] | None = None) -> str:
    """Run one ``--show-only`` command line; its stdout with the spec path as ``SPEC``."""
    args = [str(spec) if arg == "SPEC" else arg for arg in TREE_CASES[case]]
    proc = subprocess.run([*tool, *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"{tool} {args}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.replace(str(spec.absolute()), "SPEC")


def ours() -> list[str]:
    return [sys.executable, "-m", "kernelstacks"]


def golden(case: str) -> Any:
    return json.loads((GOLDEN / f"status-{case}.json").read_text())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stack(tmp_path_factory.mktemp("parity") / "stack")


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = local_python("3.11")
    if python is None:
        pytest.skip("no CPython 3.11 on this machine")
    return make_peer(tmp_path_factory.mktemp("peer"), python)


@pytest.mark.parametrize("case", sorted(CASES))
def test_status_document_is_venvstacks(stack: Path, case: str) -> None:
    document = run_case(ours(), case, stack)
    extra = document.pop("kernelstacks")
    assert document == golden(case)
    shown = {layer["build_name"] for layer in extra["layers"]}
    kinds = ("runtimes", "frameworks", "applications")
    listed = {entry["name"] for kind in kinds for entry in document[kind]}
    assert shown == listed  # our records cover the same layers


def test_json_only_shows(stack: Path) -> None:
    """``lock --json`` prints the document and locks nothing (venvstacks: json implies
    show-only unless --show)."""
    run_case(ours(), "lock", stack)
    assert not (stack.parent / "requirements").exists()


def same_tree(mine: str, theirs: str) -> bool:
    """Line by line equal, except that venvstacks cuts piped lines at 80 columns and we do not."""
    ours_lines, their_lines = mine.splitlines(), theirs.splitlines()
    return len(ours_lines) == len(their_lines) and all(
        a == b or (len(b) == 80 and a.startswith(b))
        for a, b in zip(ours_lines, their_lines, strict=True)
    )


@pytest.mark.parametrize("case", sorted(TREE_CASES))
def test_show_only_tree_is_venvstacks(stack: Path, case: str) -> None:
    expected = (GOLDEN / f"tree-{case}.txt").read_text()
    mine = run_tree_case(ours(), case, stack)
    assert same_tree(mine, expected), f"{mine}\n---\n{expected}"
    if case == "publish":  # the line venvstacks cuts short is whole here
        assert "framework-scipy@??? (lock-if-needed, build-if-needed, publish)" in mine


@pytest.mark.network
@pytest.mark.parametrize("case", sorted(TREE_CASES))
def test_golden_trees_are_the_peers_output(peer: Path, stack: Path, case: str) -> None:
    tree = run_tree_case([str(peer / "bin" / "venvstacks")], case, stack, peer_env())
    assert tree == (GOLDEN / f"tree-{case}.txt").read_text()


@pytest.mark.network
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_files_are_the_peers_output(peer: Path, stack: Path, case: str) -> None:
    assert run_case([str(peer / "bin" / "venvstacks")], case, stack, peer_env()) == golden(case)


INTROSPECT = """
import json, typer.main, venvstacks.cli as cli
root = typer.main.get_command(cli._cli)
def options(command):
    return sorted(o for p in command.params for o in (*p.opts, *p.secondary_opts) if o[0] == "-")
found = {name: options(sub) for name, sub in root.commands.items()}
found[""] = options(root)
print(json.dumps(found))
"""


def our_options() -> dict[str, set[str]]:
    root = cli_command()
    found = {
        name: {o for p in sub.params for o in (*p.opts, *p.secondary_opts) if o[0] == "-"}
        for name, sub in root.commands.items()
    }
    found[""] = {o for p in root.params for o in (*p.opts, *p.secondary_opts) if o[0] == "-"}
    return found


@pytest.mark.network
def test_every_venvstacks_command_and_option_exists(peer: Path) -> None:
    theirs = peer_python(peer, INTROSPECT)
    assert isinstance(theirs, dict)
    mine = our_options()
    missing = {
        command: sorted(set(options) - mine.get(command, set()))
        for command, options in theirs.items()
        if set(options) - mine.get(command, set())
    }
    assert not missing, f"venvstacks options kernelstacks lacks: {missing}"
    assert set(theirs) <= set(mine)


SCRIPT = """\
#!/bin/sh
# A CI job written for venvstacks: status for a dashboard, a fresh lock, build + publish.
set -eu
venvstacks --version
venvstacks show --json venvstacks.toml > status.json
venvstacks lock --reset-lock '*' venvstacks.toml
venvstacks lock --if-needed --show venvstacks.toml
venvstacks build --lock-if-needed --publish --tag-outputs venvstacks.toml
venvstacks publish --dry-run --tag-outputs venvstacks.toml > dry-run.txt
venvstacks -q publish --tag-outputs --include 'app-*' venvstacks.toml
"""

SMALL = """
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []

[[applications]]
name = "hello"
launch_module = "hello.py"
runtime = "cpython-3.11"
requirements = []
"""


@pytest.mark.slow
def test_a_venvstacks_script_runs_unchanged(tmp_path: Path) -> None:
    if local_python("3.11") is None:
        pytest.skip("no CPython 3.11 on this machine")
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "venvstacks.toml").write_text(textwrap.dedent(SMALL))
    (folder / "hello.py").write_text("print('hello from the app')\n")
    (folder / "ci.sh").write_text(SCRIPT)
    shim = tmp_path / "bin"
    shim.mkdir()
    tool = shutil.which("kernelstacks", path=str(Path(sys.executable).parent))
    assert tool is not None
    (shim / "venvstacks").symlink_to(tool)  # the swap: kernelstacks installed as "venvstacks"
    env = dict(os.environ, PATH=f"{shim}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        ["sh", "ci.sh"], cwd=folder, capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    status = json.loads((folder / "status.json").read_text())
    assert {e["name"] for e in status["applications"]} == {"app-hello"}
    assert status["runtimes"][0]["has_valid_lock"] is False  # shown before the first lock
    assert "(lock-if-needed)" in proc.stdout  # lock --show: venvstacks' status tree
    archives = sorted(p.name for p in (folder / "_artifacts").glob("*.tar.xz"))
    assert archives == ["app-hello-linux_x86_64-1.tar.xz", "cpython-3.11-linux_x86_64-1.tar.xz"]
    dry_run = (folder / "dry-run.txt").read_text().splitlines()
    assert dry_run[0] == "Archive creation skipped, reporting publishing request details:"
    request = json.loads("\n".join(dry_run[1:-2]))["layers"]  # venvstacks' request document
    app_request = request["applications"][0]
    assert app_request["archive_name"] == "app-hello-linux_x86_64-1.tar.xz"  # unchanged: same N
    assert app_request["layer_name"] == "app-hello" and app_request["archive_build"] == 1
    assert app_request["target_platform"] == "linux_x86_64"
    assert request["runtimes"][0]["install_target"] == "cpython-3.11"
    app = folder / "_build" / "app-hello" / "bin" / "python"
    run = subprocess.run([app, "-m", "hello"], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "hello from the app"

    def states(*args: str) -> dict[str, str]:
        proc = subprocess.run(
            [*ours(), *args, "--progress-json", str(folder / "venvstacks.toml")],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        return {e["layer"]: e["status"] for e in events if e.get("event") == "layer_finished"}

    publish = ["publish", "--tag-outputs", "--include", "app-*"]
    assert states(*publish) == {"app-hello": "unchanged"}
    assert states(*publish, "--force") == {"app-hello": "archived"}  # written again
    assert states("build", "--include", "app-*") == {"cpython-3.11": "unchanged"} | {
        "app-hello": "unchanged"
    }
    assert states("build", "--include", "app-*", "--clean")["app-hello"] == "built"
    assert states("build", "--no-build", "--lock-if-needed") == {
        "cpython-3.11": "valid",
        "app-hello": "valid",
    }
    relocked = states("lock", "--if-needed", "--reset-lock", "app-*")
    assert relocked == {"cpython-3.11": "valid", "app-hello": "locked"}


def write_golden(peer_tool: str) -> None:
    """Regenerate the golden files from a venvstacks 0.8.0b2 executable."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = write_stack(Path(tmp) / "stack")
        for case in CASES:
            document = run_case([peer_tool], case, spec)
            text = json.dumps(document, indent=2, sort_keys=True) + "\n"
            (GOLDEN / f"status-{case}.json").write_text(text)
        for case in TREE_CASES:
            (GOLDEN / f"tree-{case}.txt").write_text(run_tree_case([peer_tool], case, spec))


if __name__ == "__main__":
    write_golden(sys.argv[1])


def test_no_index_and_local_wheels(tmp_path: Path) -> None:
    """``--no-index --local-wheels DIR`` locks from a folder only (DIR relative to the stack)."""
    from index_server import build_wheel

    if local_python("3.11") is None:
        pytest.skip("no CPython 3.11 on this machine")
    folder = tmp_path / "stack"
    (folder / "wheels").mkdir(parents=True)
    build_wheel(folder / "wheels", "kst-local-only", "1.0", tag="local")
    (folder / "hello.py").write_text("")
    spec = folder / "venvstacks.toml"
    spec.write_text(
        textwrap.dedent(SMALL).replace("requirements = []", 'requirements = ["kst-local-only"]', 1)
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def lock(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ours(), "lock", str(spec), "--include", "cpython-3.11", *options],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=300,
        )

    failed = lock("--no-index")
    assert failed.returncode == 1
    assert "kst-local-only" in failed.stderr and "Traceback" not in failed.stderr
    assert failed.stderr.count("Cannot lock layer") == 1  # the error is said once
    done = lock("--no-index", "--local-wheels", "wheels")
    assert done.returncode == 0, done.stderr
    lock_text = next((folder / "requirements" / "cpython-3.11").glob("pylock.*.toml")).read_text()
    assert 'name = "kst-local-only"' in lock_text
    missing = lock("--local-wheels", "no-such-dir")
    assert missing.returncode == 1 and "no-such-dir: no such directory" in missing.stderr


@pytest.mark.network
def test_documents_match_the_peer_on_a_locked_stack(peer: Path, tmp_path: Path) -> None:
    """Locked by kernelstacks, then read by both tools: valid, stale and versioned layers."""
    if local_python("3.11") is None:
        pytest.skip("no CPython 3.11 on this machine")
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "hello.py").write_text("")
    spec = folder / "venvstacks.toml"
    spec.write_text(textwrap.dedent(SMALL) + "versioned = true\n")
    lock = subprocess.run([*ours(), "lock", str(spec)], capture_output=True, text=True)
    assert lock.returncode == 0, lock.stderr
    command_lines = (["show", "--json"], ["lock", "--json", "--if-needed"], ["build", "--json"])

    def both_agree() -> list[Any]:
        documents = []
        for args in command_lines:
            mine = json.loads(subprocess.check_output([*ours(), *args, str(spec)], text=True))
            mine.pop("kernelstacks")
            theirs = subprocess.run(
                [str(peer / "bin" / "venvstacks"), *args, str(spec)],
                capture_output=True,
                text=True,
                env=peer_env(),
            )
            assert theirs.returncode == 0, theirs.stderr
            assert mine == json.loads(theirs.stdout), args
            documents.append(mine)
        return documents

    shown = both_agree()[0]
    assert shown["applications"][0]["install_target"] == "app-hello@1"
    assert shown["applications"][0]["has_valid_lock"] is True
    text = spec.read_text()
    app_part = text.index("[[applications]]")
    stale = text[:app_part] + text[app_part:].replace(
        "requirements = []", 'requirements = ["attrs"]'
    )
    spec.write_text(stale)
    shown = both_agree()[0]
    assert shown["applications"][0]["has_valid_lock"] is False  # its requirements changed


@pytest.mark.network
def test_exit_statuses_match_the_peer(peer: Path, stack: Path, tmp_path: Path) -> None:
    """1 for a bad or missing stack file and an unmatched pattern, 2 for a usage error."""
    broken = tmp_path / "broken.toml"
    broken.write_text('[[runtimes]]\nname = "rt"\n')  # no python_implementation
    command_lines = {
        ("show", str(broken)): 1,
        ("lock", "--json", str(tmp_path / "missing.toml")): 1,
        ("show", "--include", "nothing", str(stack)): 1,
        ("lock", "--json", "--reset-lock", "nothing", str(stack)): 1,
        # framework-extra is above one included layer and below the other: conflicting orders
        (
            "build",
            "--json",
            "--include",
            "framework-scipy",
            "--include",
            "app-demo",
            "--build-derived",
            str(stack),
        ): 1,
        ("build", "--no-such-option", str(stack)): 2,
        ("publish",): 2,
    }
    for args, status in command_lines.items():
        theirs = subprocess.run(
            [str(peer / "bin" / "venvstacks"), *args], capture_output=True, env=peer_env()
        )
        mine = subprocess.run([*ours(), *args], capture_output=True, text=True)
        assert (mine.returncode, theirs.returncode) == (status, status), args
        assert "Traceback" not in mine.stderr


def test_quiet_and_verbose(tmp_path: Path) -> None:
    """``-q`` prints nothing on success, ``-v`` every step (venvstacks' root options)."""
    if local_python("3.11") is None:
        pytest.skip("no CPython 3.11 on this machine")
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "hello.py").write_text("")
    spec = folder / "venvstacks.toml"
    spec.write_text(textwrap.dedent(SMALL))

    def lock(*root: str) -> subprocess.CompletedProcess[str]:
        command = [*ours(), *root, "lock", "--if-needed", str(spec)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    normal = lock()
    assert normal.returncode == 0, normal.stderr
    assert "lock: 2 locked" in normal.stdout
    quiet = lock("-q")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    verbose = lock("-v")
    assert "lock: 2 valid" in verbose.stdout
    assert "locking app-hello" in verbose.stderr and "valid app-hello" in verbose.stderr
    assert subprocess.check_output([*ours(), "-V"], text=True).startswith("kernelstacks ")
