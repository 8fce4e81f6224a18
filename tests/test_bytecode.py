"""Deploy's bytecode: the pycs it writes, its compile servers, and the scheduler lanes it uses.

The oracle for the pyc bytes is CPython's own ``py_compile`` (unchecked-hash mode); the servers
run as real processes of a real interpreter (this one, and a local 3.12 where present, whose
pycs must carry its own magic number).
"""

from __future__ import annotations

import importlib.util
import json
import os
import py_compile
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import local_python
from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.processes import stop_children
from kernelstacks._support.scheduler import run_in_order
from kernelstacks.build.postinstall import compile_file
from kernelstacks.distribute.bytecode_pool import BytecodePool

SOURCES = {
    "plain.py": "def f(x):\n    return [i * x for i in range(3)]\n",
    "latin.py": "# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n",
    "pkg/__init__.py": "from .mod import VALUE\n",
    "pkg/mod.py": "VALUE = 42\nclass C:\n    def m(self):\n        return VALUE\n",
    "warns.py": "if 1 is 1:\n    pass\n",  # a SyntaxWarning: still compiled
}
BROKEN = {"py2.py": "print 'hello'\n", "nul.py": "x = 1\0\n"}


def tree(root: Path, files: dict[str, str]) -> list[str]:
    """Write ``files`` (latin-1 where the file says so) under ``root``; their paths."""
    paths = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("latin-1" if "latin-1" in text else "utf-8"))
        paths.append(str(path))
    return paths


def reference_pyc(source: str, tmp: Path) -> bytes:
    """What py_compile writes for ``source`` in unchecked-hash mode."""
    out = tmp / "reference.pyc"
    py_compile.compile(
        source,
        cfile=str(out),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    return out.read_bytes()


@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # warns.py, as py_compile warns
def test_compile_file_writes_what_py_compile_writes(tmp_path: Path) -> None:
    paths = tree(tmp_path / "src", SOURCES)
    for path in paths:
        assert compile_file(path) is None
        pyc = Path(importlib.util.cache_from_source(path))
        assert pyc.read_bytes() == reference_pyc(path, tmp_path), path
        assert pyc.stat().st_mode & 0o777 == (Path(path).stat().st_mode | 0o200) & 0o666
    # run again over an existing pyc (a relink, an export's hard-linked copy): replaced whole
    first = Path(paths[0])
    pyc = Path(importlib.util.cache_from_source(paths[0]))
    linked = tmp_path / "linked.pyc"
    os.link(pyc, linked)
    first.write_text("VALUE = 'changed'\n")
    assert compile_file(paths[0]) is None
    assert pyc.read_bytes() == reference_pyc(paths[0], tmp_path)
    assert linked.read_bytes() != pyc.read_bytes()  # the other name kept the old bytes
    assert not list(pyc.parent.glob("*.tmp"))


def test_compile_file_skips_what_is_not_python_and_reports_write_errors(tmp_path: Path) -> None:
    for path in tree(tmp_path / "bad", BROKEN):
        assert compile_file(path) is None
        assert not Path(importlib.util.cache_from_source(path)).exists()
    (good,) = tree(tmp_path / "blocked", {"m.py": "x = 1\n"})
    (tmp_path / "blocked" / "__pycache__").write_text("a file where the folder goes")
    error = compile_file(good)
    assert error is not None and good in error and "Not a directory" in error


def interpreters() -> list[Path]:
    found = [Path(sys.executable)]
    other = local_python("3.12")
    if other is not None and Path(other).resolve() != Path(sys.executable).resolve():
        found.append(Path(other))
    return found


def magic_of(python: Path) -> bytes:
    code = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    out = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, check=True)
    return bytes.fromhex(out.stdout)


def test_pool_compiles_with_each_runtimes_own_interpreter(tmp_path: Path) -> None:
    pythons = interpreters()
    layers = {}
    for i, python in enumerate(pythons):
        files = {f"pkg{n}/m{k}.py": f"X = {n * k}\n" for n in range(6) for k in range(9)}
        layers[python] = tree(tmp_path / f"layer{i}", {**files, **BROKEN})
    with BytecodePool(workers=2) as pool:
        threads = [
            threading.Thread(target=pool.compile, args=(python, paths, f"layer{i}"))
            for i, (python, paths) in enumerate(layers.items())
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for python, paths in layers.items():
        magic = magic_of(python)
        for path in paths:
            pycs = list(Path(path).parent.glob(f"__pycache__/{Path(path).stem}.*.pyc"))
            if Path(path).name in BROKEN:
                assert not pycs
            else:
                (pyc,) = pycs
                assert pyc.read_bytes()[:4] == magic


def test_pool_names_the_layer_and_the_file_it_cannot_write(tmp_path: Path) -> None:
    paths = tree(tmp_path / "blocked", {f"m{k}.py": "x = 1\n" for k in range(40)})
    (tmp_path / "blocked" / "__pycache__").write_text("a file where the folder goes")
    with BytecodePool(workers=2) as pool, pytest.raises(KernelstacksError) as caught:
        pool.compile(Path(sys.executable), paths, "framework-sci")
    message = str(caught.value)
    assert message.startswith("framework-sci: cannot compile bytecode: ")
    assert "Not a directory" in message and "(and 39 more)" in message


def test_pool_reports_a_server_that_dies_and_one_that_cannot_start(tmp_path: Path) -> None:
    paths = tree(tmp_path / "many", {f"m{k}.py": "x = [1] * 10\n" * 2000 for k in range(300)})
    pool = BytecodePool(workers=2)

    def kill_when_started() -> None:  # as an interruption would end them, mid-way
        while not list((tmp_path / "many" / "__pycache__").glob("*.pyc")):
            time.sleep(0.01)
        stop_children()

    killer = threading.Thread(target=kill_when_started, daemon=True)
    killer.start()
    try:
        with pytest.raises(KernelstacksError) as caught:
            pool.compile(Path(sys.executable), paths, "app-one")
    finally:
        pool.close(kill=True)
    killer.join()
    assert len(list((tmp_path / "many" / "__pycache__").glob("*.pyc"))) < len(paths)
    assert "app-one: cannot compile bytecode: the bytecode compiler" in str(caught.value)
    assert "stopped" in str(caught.value)
    with BytecodePool(workers=1) as pool, pytest.raises(KernelstacksError) as caught:
        pool.compile(tmp_path / "no-python", paths[:1], "app-two")
    assert "cannot run" in str(caught.value) and "no-python" in str(caught.value)


def test_lanes_limit_their_tasks_and_leave_others_free() -> None:
    running: set[str] = set()
    most = {"unpack": 0, "post": 0}
    guard = threading.Lock()

    def work(task: str) -> None:
        lane = task.partition(":")[0]
        with guard:
            running.add(task)
            most[lane] = max(most[lane], sum(1 for t in running if t.startswith(lane)))
        time.sleep(0.02 if lane == "unpack" else 0.3)  # finished layers pile up
        with guard:
            running.discard(task)

    names = [f"unpack:{i}" for i in range(6)] + [f"post:{i}" for i in range(6)]
    outcomes = run_in_order(
        names,
        lambda task: [f"unpack:{task.partition(':')[2]}"] if task.startswith("post") else [],
        work,
        jobs=len(names),
        lanes={"unpack": 2},
    )
    assert all(o.ok for o in outcomes.values())
    assert most["unpack"] == 2 and most["post"] >= 4


def test_test_suites_are_left_as_source_unless_asked(tmp_path: Path) -> None:
    from kernelstacks.build.postinstall import METADATA, bytecode_files

    layer = tmp_path / "framework-sci"
    site = "lib/python3.12/site-packages"
    files = {
        f"{site}/pkg/__init__.py": "",
        f"{site}/pkg/tests/test_a.py": "",
        f"{site}/pkg/sub/test/test_b.py": "",
        f"{site}/pkg/testing/helpers.py": "",  # an API (numpy.testing), not a suite
        f"{site}/tests/conftest.py": "",  # a stray top-level suite
    }
    tree(layer, files)
    (layer / METADATA).parent.mkdir(parents=True)
    meta = {"python": "bin/python", "base_python": "../rt/bin/python3", "site_dir": site}
    (layer / METADATA).write_text(json.dumps(meta))
    rel = lambda found: sorted(str(Path(f).relative_to(layer / site)) for f in found)  # noqa: E731
    assert rel(bytecode_files(layer)) == ["pkg/__init__.py", "pkg/testing/helpers.py"]
    assert rel(bytecode_files(layer, tests=True)) == sorted(
        str(Path(f).relative_to(site)) for f in files
    )
