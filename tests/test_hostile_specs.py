"""Hostile stack files: every one is a located spec error, never a traceback, and loads fast.

Each case here crashed or crawled before (issue 15, item 7): TOML nested 1,000 deep and a
1,200-framework cycle raised RecursionError; a 400-deep chain took 38 s to load. A cycle is
reported once, not once per member (issue 13).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_helpers import ks, python_options
from helpers import BASE_RUNTIME, write_spec
from kernelstacks._support.errors import SpecError
from kernelstacks.spec import load_spec


def _problems(path: Path) -> list:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.problems


def _chain(n: int) -> str:
    body = '[[frameworks]]\nname = "f0"\nruntime = "rt"\nrequirements = []\n'
    for i in range(1, n):
        body += f'[[frameworks]]\nname = "f{i}"\nframeworks = ["f{i - 1}"]\nrequirements = []\n'
    return BASE_RUNTIME + body


def _cycle(n: int) -> str:
    body = ""
    for i in range(n):
        body += (
            f'[[frameworks]]\nname = "f{i}"\nframeworks = ["f{(i + 1) % n}"]\nrequirements = []\n'
        )
    return BASE_RUNTIME + body


@pytest.mark.parametrize(
    "nested",
    ["[" * 1000 + "]" * 1000, "{a = " * 1000 + "1" + "}" * 1000],
    ids=["arrays", "inline-tables"],
)
def test_toml_nested_1000_deep_is_a_located_syntax_error(tmp_path: Path, nested: str) -> None:
    path = write_spec(tmp_path, BASE_RUNTIME + f"deep = {nested}\n")
    (problem,) = _problems(path)
    assert "nested too deeply" in problem.message
    assert problem.file == str(path) and problem.line == 6


def test_cycle_of_1200_frameworks_is_reported_once(tmp_path: Path) -> None:
    path = write_spec(tmp_path, _cycle(1200))
    (problem,) = _problems(path)
    assert problem.key == "frameworks" and problem.layer == "framework 'f0'"
    assert "dependency cycle: 'f0' -> 'f1'" in problem.message
    assert "(1200 layers)" in problem.message and len(problem.message) < 400


def test_short_cycle_is_reported_once_with_its_path(tmp_path: Path) -> None:
    path = write_spec(tmp_path, _cycle(3))
    (problem,) = _problems(path)
    assert "'f0' -> 'f1' -> 'f2' -> 'f0'" in problem.message


def test_chain_of_1000_frameworks_loads_in_seconds(tmp_path: Path) -> None:
    path = write_spec(tmp_path, _chain(1000))
    start = time.perf_counter()
    spec = load_spec(path)
    elapsed = time.perf_counter() - start
    top = spec.layer("framework-f999")
    assert top.lower[0] == "framework-f998" and top.lower[-2:] == ("framework-f0", "rt")
    assert len(top.lower) == 1000
    assert elapsed < 10, f"1,000-layer chain took {elapsed:.1f}s (bench/spec_load.py: ~1 s)"


def test_deep_diamonds_keep_c3_order(tmp_path: Path) -> None:
    """The shared linearisation still gives Python's MRO on a deep lattice of diamonds."""
    body = BASE_RUNTIME + '[[frameworks]]\nname = "b0"\nruntime = "rt"\nrequirements = []\n'
    parents: dict[str, list[str]] = {"b0": []}
    for i in range(1, 60):
        for side in "lr":
            parents[f"{side}{i}"] = [f"b{i - 1}"]
            body += f'[[frameworks]]\nname = "{side}{i}"\nframeworks = ["b{i - 1}"]\n'
            body += "requirements = []\n"
        parents[f"b{i}"] = [f"l{i}", f"r{i}"]
        body += f'[[frameworks]]\nname = "b{i}"\nframeworks = ["l{i}", "r{i}"]\n'
        body += "requirements = []\n"
    spec = load_spec(write_spec(tmp_path, body))
    classes: dict[str, type] = {}
    for name in parents:  # parents come before children in this dict
        classes[name] = type(name, tuple(classes[p] for p in parents[name]) or (object,), {})
    mro = [c.__name__ for c in classes["b59"].__mro__[1:-1]]
    assert spec.layer("framework-b59").lower == (*(f"framework-{n}" for n in mro), "rt")


HOSTILE = {
    "deep-toml": BASE_RUNTIME + "deep = " + "[" * 1000 + "]" * 1000 + "\n",
    "cycle-1200": _cycle(1200),
    "index-name-5": BASE_RUNTIME
    + '[[tool.uv.index]]\nname = 5\nurl = "https://example.org/simple"\n',
    "name-newline": BASE_RUNTIME.replace('"rt"', '"rt\\n"'),
    "name-dotdot": BASE_RUNTIME.replace('"rt"', '".."'),
}


@pytest.mark.parametrize("command", ["show", "lock", "build"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_cli_reports_hostile_spec_without_traceback(
    tmp_path: Path, case: str, command: str
) -> None:
    path = write_spec(tmp_path, HOSTILE[case])
    proc = ks(command, path, check=False, timeout=120)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    for crash in ("Traceback", "RecursionError", "TypeError", "OSError"):
        assert crash not in out
    assert str(path) in out
    assert not (tmp_path / "_build").exists() and not (tmp_path / "requirements").exists()


def _read_only_mount(where: Path) -> bool:
    """Mount an empty read-only tmpfs at ``where`` (root in a container); False if we cannot."""
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(where)], capture_output=True
    )
    return proc.returncode == 0


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only directory that even root cannot write (permissions alone do not stop root)."""
    where = tmp_path / "ro"
    if not _read_only_mount(where):
        pytest.skip("cannot mount a read-only tmpfs here")
    yield where
    subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize("sub", ["", "sub"], ids=["build-dir-itself", "inside-it"])
def test_read_only_build_dir_is_a_message(read_only_dir: Path, tmp_path: Path, sub: str) -> None:
    path = write_spec(tmp_path / "stack", BASE_RUNTIME)
    build_dir = read_only_dir / sub if sub else read_only_dir
    ks("lock", path, *python_options())
    proc = ks("build", path, "--build-dir", build_dir, *python_options(), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out
    assert "Read-only file system" in out and str(build_dir) in out


def test_build_dir_that_is_a_file_is_a_message(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "stack", BASE_RUNTIME)
    (tmp_path / "stack" / "_build").write_text("not a folder")
    ks("lock", path, *python_options())
    proc = ks("build", path, *python_options(), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out
    assert "is a file; it must be a directory" in out


@pytest.mark.slow
def test_moved_stack_gives_advice_without_fatal_python_error(tmp_path: Path) -> None:
    """Issue 13: a moved stack printed "Fatal Python error: init_import_site" before the advice."""
    body = BASE_RUNTIME + (
        '[[applications]]\nname = "app"\nruntime = "rt"\nrequirements = []\n'
        'launch_module = "main.py"\n'
    )
    path = write_spec(tmp_path / "stack", body, modules=("main.py",))
    ks("lock", path, *python_options())
    ks("build", path, *python_options(), timeout=600)
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "stack" / "_build", moved, symlinks=True)
    proc = subprocess.run(
        [str(moved / "app-app" / "bin" / "python"), "-c", "print('ran')"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "ran" not in proc.stdout
    assert "moved or copied without redeploying" in proc.stderr
    assert "deploy --relink" in proc.stderr
    assert "Fatal Python error" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("kernelstacks: the Python layer")


def test_build_from_a_read_only_stack_folder(tmp_path: Path) -> None:
    """The stack lock is skipped where it cannot exist: a build only reads the stack folder."""
    source = write_spec(tmp_path / "src", BASE_RUNTIME)
    ks("lock", source, *python_options())
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        shutil.copytree(source.parent, ro / "stack")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        proc = ks(
            "build",
            ro / "stack" / "venvstacks.toml",
            "--build-dir",
            tmp_path / "_build",
            *python_options(),
            check=False,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (tmp_path / "_build" / "rt" / "bin" / "python3").exists()
    finally:
        subprocess.run(["umount", str(ro)], check=True)
