"""Interrupting kernelstacks: SIGTERM is Ctrl-C, children stop, the user hears what was kept.

Issue 15, item 8: ``kill <pid>`` left uv and compile workers running for seconds, temporary
install folders leaked into /tmp, Ctrl-C printed a blank line, and ``lock``/``publish`` ran
alongside ``build``. Real builds of a small stack (a local CPython 3.11 runtime, numpy in a
framework) are interrupted at chosen steps, watched through their ``--progress-json`` events.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import EXCLUDE_NEWER, ks, python_options
from helpers import write_spec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.11") is None, reason="needs a local CPython 3.11"),
]

STACK = f"""
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.11"
requirements = []

[[frameworks]]
name = "sci"
runtime = "rt"
requirements = ["numpy"]
platforms = ["linux_x86_64"]

[[applications]]
name = "app"
frameworks = ["sci"]
requirements = ["idna"]
launch_module = "main.py"

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""


@pytest.fixture(scope="module")
def locked_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack, locked once (interruptions are of builds)."""
    path = write_spec(tmp_path_factory.mktemp("signals") / "stack", STACK, modules=("main.py",))
    ks("lock", path, *python_options(), timeout=600)
    return path


def _start(*args: str | os.PathLike[str], tmpdir: Path | None = None) -> subprocess.Popen[str]:
    """kernelstacks in the background; ``tmpdir`` (TMPDIR) shows what it leaves in temp dirs."""
    cmd = [sys.executable, "-m", "kernelstacks", *map(os.fspath, args)]
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir else None
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _events(proc: subprocess.Popen[str]) -> Iterator[dict]:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            yield json.loads(line)


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (our children name the build dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and "pytest" not in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def _interrupt_at(
    spec: Path, build_dir: Path, sig: int, layer: str, step: str, tmpdir: Path
) -> tuple[int, list[dict], str]:
    """Build; send ``sig`` 0.3 s after ``layer`` reports ``step``: status, events, stderr."""
    args = ("build", spec, "--build-dir", build_dir, "--progress-json", *python_options())
    proc = _start(*args, tmpdir=tmpdir)
    seen: list[dict] = []
    sent = False
    for event in _events(proc):
        seen.append(event)
        if not sent and event.get("layer") == layer and event.get("message", "").startswith(step):
            time.sleep(0.3)
            proc.send_signal(sig)
            sent = True
    status = proc.wait(timeout=60)
    assert sent, f"never saw {layer}: {step}"
    assert proc.stderr is not None
    return status, seen, proc.stderr.read()


@pytest.mark.parametrize(
    ("sig", "layer", "step", "kept"),
    [
        (signal.SIGTERM, "rt", "runtime pkgconfig", "none"),  # compile workers running
        (signal.SIGTERM, "framework-sci", "installing packages", "rt (built)"),  # uv running
        (signal.SIGINT, "framework-sci", "installing packages", "rt (built)"),
    ],
    ids=["term-compile", "term-uv", "int-uv"],
)
def test_interrupt_stops_children_and_says_what_was_kept(
    locked_stack: Path, tmp_path: Path, sig: int, layer: str, step: str, kept: str
) -> None:
    build_dir = tmp_path / "_build"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    started = time.monotonic()
    status, events, stderr = _interrupt_at(locked_stack, build_dir, sig, layer, step, tmpdir)
    assert time.monotonic() - started < 60
    assert status == 130, stderr
    notes = [e["message"] for e in events if e["event"] == "note"]
    said = [n for n in notes if n.startswith("interrupted:")]
    assert said == [
        f"interrupted: kept: {kept}; discarded: "
        + ", ".join(n for n in ("rt", "framework-sci", "app-app") if n not in kept)
        + " (not finished)"
    ], notes
    assert "Traceback" not in stderr
    time.sleep(0.5)
    assert _processes_mentioning(str(build_dir)) == []  # no uv, no compile worker left behind
    assert list(tmpdir.iterdir()) == []  # no kernelstacks-install-* left in the temp dir
    # nothing half-made is visible: only finished layers and hidden leftovers
    visible = sorted(p.name for p in build_dir.iterdir() if not p.name.startswith("."))
    assert visible == (["rt"] if kept != "none" else [])
    # the next build cleans up and finishes the job
    ks("build", locked_stack, "--build-dir", build_dir, *python_options(), timeout=600)
    assert not [p for p in build_dir.iterdir() if "~" in p.name]


def test_lock_build_and_publish_of_one_stack_take_turns(locked_stack: Path, tmp_path: Path) -> None:
    """lock ‖ build ‖ publish: the later ones wait, saying for whom, and all succeed."""
    build_dir = tmp_path / "_build"
    build = _start(
        "build", locked_stack, "--build-dir", build_dir, "--progress-json", *python_options()
    )
    for event in _events(build):  # the build holds the stack lock once it has started
        if event["event"] == "start":
            break
    lock = _start("lock", locked_stack, *python_options())
    publish = _start(
        "publish", locked_stack, "--build-dir", build_dir, "--output-dir", tmp_path / "out"
    )
    outputs = {
        name: p.communicate(timeout=600)
        for name, p in (("build", build), ("lock", lock), ("publish", publish))
    }
    statuses = {
        name: p.returncode for name, p in (("build", build), ("lock", lock), ("publish", publish))
    }
    assert statuses == {"build": 0, "lock": 0, "publish": 0}, outputs
    waiting = f"waiting for another kernelstacks (pid {build.pid}) building {build_dir} ..."
    assert waiting in outputs["lock"][1], outputs["lock"]
    assert "waiting for another kernelstacks (pid " in outputs["publish"][1]
    assert list((tmp_path / "out").glob("*.tar.xz"))


def test_waiting_command_says_who_it_waits_for_and_that_it_was_interrupted(
    locked_stack: Path,
) -> None:
    """SIGTERM while waiting for the stack lock: exit 130 with "interrupted", not silence."""
    from kernelstacks._support.filelocks import exclusive, stack_lock

    with exclusive(stack_lock(locked_stack.parent), lambda _: None, "testing the lock"):
        proc = _start("lock", locked_stack, *python_options())
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.strip() == (
            f"note: waiting for another kernelstacks (pid {os.getpid()}) testing the lock ..."
        )
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert rest.strip() == "interrupted"


HOLDER = """
import sys, time
from pathlib import Path
from kernelstacks._support.filelocks import exclusive
with exclusive(Path(sys.argv[1]), print, "holding it for a test"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_one_waiting_message_for_every_user_of_the_lock(tmp_path: Path) -> None:
    """The helper itself names the holder; taking a lock this process holds does not wait."""
    from kernelstacks._support.filelocks import exclusive

    lock = tmp_path / "state" / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    said: list[str] = []

    def waiter(message: str) -> None:
        said.append(message)
        holder.terminate()  # the other process goes away; the lock is ours

    with (
        exclusive(lock, waiter, "testing"),
        exclusive(lock, lambda _: pytest.fail("re-entry must not wait"), "again"),
    ):
        assert (lock.parent / "x.lock.owner").read_text().count(str(os.getpid())) == 1
    holder.wait(10)
    expected = f"waiting for another kernelstacks (pid {holder.pid}) holding it for a test ..."
    assert said == [expected]
    assert not (lock.parent / "x.lock.owner").exists()


def test_interrupted_deploy_stops_its_compile_servers_and_keeps_the_old_deployment(
    locked_stack: Path, tmp_path: Path
) -> None:
    """SIGTERM while deploy compiles bytecode (its compile servers running): exit 130, no
    server left, no staging directory visible, the deployment already there untouched."""
    build_dir, out, target = tmp_path / "_build", tmp_path / "out", tmp_path / "deployed"
    ks("build", locked_stack, "--build-dir", build_dir, *python_options(), timeout=600)
    ks("publish", locked_stack, "--build-dir", build_dir, "-o", out, "--format", "tar.zst")
    ks("deploy", out, target)
    before = sorted(p.name for p in target.iterdir())
    (target / "app-app" / "marker").write_text("the old deployment")
    proc = _start("deploy", out, target, "--replace")  # --replace: every layer again
    deadline = time.monotonic() + 120
    while not [p for p in target.glob(".*/**/__pycache__/*.pyc")]:  # compiling, staged
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr, stderr
    time.sleep(0.5)
    assert _processes_mentioning("--compile-server") == []
    assert sorted(p.name for p in target.iterdir()) == before
    assert (target / "app-app" / "marker").read_text() == "the old deployment"
    ks("deploy", out, tmp_path / "again")
