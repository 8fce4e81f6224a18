"""Package index settings reach uv, when locking and when installing, exactly as venvstacks says.

Real uv against real package indexes served on 127.0.0.1 (``index_server``). Each index holds
versions of ``ksdemo`` that no other index (and not PyPI) has, so the version a lock ends up with
says which index uv used, and dropping any one setting changes it:

* ``main``     — the default index (replaces PyPI): ``ksdemo 1.0``, ``ksother 1.0``
* ``extra``    — explicit: ``ksdemo 2.0+extra``, ``ksother 9.0+extra``
* ``prio``     — explicit: ``ksdemo 4.0+prio``
* ``private``  — explicit, HTTP basic auth: ``kssecret 1.0+private`` (own instance per test)

Locks use this interpreter's Python (3.11) and no PyPI at all, so they run in the fast tier; the
end-to-end build is ``slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import ks
from helpers import write_spec
from index_server import LocalIndex
from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.uv import run_uv
from kernelstacks.build.install import InstallError, install_lock
from kernelstacks.lock.engine import lock_stack
from kernelstacks.lock.indexes import install_index_env, layer_uv_settings
from kernelstacks.lock.metadata import lock_path
from kernelstacks.spec import load_spec
from kernelstacks.spec.model import StackSpec

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
USER, PASSWORD = "alice", "s3cret-pw"


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocalIndex]]:
    """The three public test indexes, serving for the whole module."""
    root = tmp_path_factory.mktemp("indexes")
    main, extra, prio = (LocalIndex(root / n, n) for n in ("main", "extra", "prio"))
    main.add("ksdemo", "1.0")
    main.add("ksother", "1.0")
    extra.add("ksdemo", "2.0+extra")
    extra.add("ksother", "9.0+extra")
    prio.add("ksdemo", "4.0+prio")
    with main.serving(), extra.serving(), prio.serving():
        yield {"main": main, "extra": extra, "prio": prio}


@pytest.fixture
def private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIndex]:
    """A basic-auth index of its own (its own port and uv cache, so nothing is reused)."""
    index = LocalIndex(tmp_path / "private", "private", credentials=(USER, PASSWORD))
    index.add("kssecret", "1.0+private")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.delenv("UV_INDEX_PRIVATE_USERNAME", raising=False)
    monkeypatch.delenv("UV_INDEX_PRIVATE_PASSWORD", raising=False)
    with index.serving():
        yield index


def index_tables(indexes: dict[str, LocalIndex], private: LocalIndex | None = None) -> str:
    """``[[tool.uv.index]]`` tables: main is the default, the others explicit."""
    text = f'\n[[tool.uv.index]]\nname = "main"\nurl = "{indexes["main"].url}"\ndefault = true\n'
    others = [(n, indexes[n]) for n in ("extra", "prio")]
    if private is not None:
        others.append(("private", private))
    for name, index in others:
        text += f'\n[[tool.uv.index]]\nname = "{name}"\nurl = "{index.url}"\nexplicit = true\n'
    return text


def runtime(requirements: str = "", extra: str = "") -> str:
    return (
        f'[[runtimes]]\nname = "rt"\npython_implementation = "cpython@{PY}"\n'
        f"requirements = [{requirements}]\n{extra}\n"
    )


def layer(kind: str, name: str, on: str, requirements: str = "", extra: str = "") -> str:
    launch = 'launch_module = "app.py"\n' if kind == "applications" else ""
    return (
        f'\n[[{kind}]]\nname = "{name}"\n{launch}{on}\nrequirements = [{requirements}]\n{extra}\n'
    )


def lock(tmp_path: Path, body: str) -> StackSpec:
    """Write and lock a stack; every layer must lock."""
    stack = load_spec(write_spec(tmp_path, body, modules=("app.py",)))
    summary = lock_stack(stack)
    assert summary.ok, summary.errors
    return stack


def locked(stack: StackSpec, build_name: str) -> dict[str, tuple[str, str]]:
    """This layer's own packages in its lock: name -> (version, wheel URL)."""
    data = tomllib.loads(lock_path(stack, stack.layer(build_name)).read_text(encoding="utf-8"))
    found = {}
    for entry in data.get("packages", []):
        if "from_lower_layer" in str(entry.get("marker", "")):
            continue
        wheels = entry.get("wheels") or [{}]
        found[entry["name"]] = (str(entry["version"]), str(wheels[0].get("url", "")))
    return found


# -- one test per setting -----------------------------------------------------------------------


def test_tool_uv_index_replaces_pypi(tmp_path: Path, indexes: dict[str, LocalIndex]) -> None:
    stack = lock(tmp_path, runtime('"ksother"') + index_tables(indexes))
    version, url = locked(stack, "rt")["ksother"]
    assert (version, url.startswith(indexes["main"].url.removesuffix("simple/"))) == ("1.0", True)


def test_common_sources_send_a_package_to_an_explicit_index(
    tmp_path: Path, indexes: dict[str, LocalIndex]
) -> None:
    sources = '\n[tool.uv.sources]\nksother = { index = "extra" }\n'
    stack = lock(tmp_path, runtime('"ksother"') + index_tables(indexes) + sources)
    assert locked(stack, "rt")["ksother"][0] == "9.0+extra"


def test_package_indexes_apply_to_the_layer_and_every_layer_above(
    tmp_path: Path, indexes: dict[str, LocalIndex]
) -> None:
    body = (
        runtime()
        + layer(
            "frameworks",
            "fw",
            'runtime = "rt"',
            '"ksdemo"',
            'package_indexes = { ksdemo = "extra" }',
        )
        + layer(
            "frameworks", "empty", 'runtime = "rt"', "", 'package_indexes = { KSDemo = "extra" }'
        )
        + layer("applications", "above", 'frameworks = ["empty"]', '"ksdemo"')
        + layer("applications", "beside", 'runtime = "rt"', '"ksdemo"')
        + index_tables(indexes)
    )
    stack = lock(tmp_path, body)
    assert locked(stack, "framework-fw")["ksdemo"][0] == "2.0+extra"
    assert locked(stack, "app-above")["ksdemo"][0] == "2.0+extra", "not inherited"
    assert locked(stack, "app-beside")["ksdemo"][0] == "1.0"


def test_priority_indexes_come_first_for_that_layer_only(
    tmp_path: Path, indexes: dict[str, LocalIndex]
) -> None:
    body = (
        runtime()
        + layer("frameworks", "fw", 'runtime = "rt"', "", 'priority_indexes = ["prio", "extra"]')
        + layer("applications", "prio", 'runtime = "rt"', '"ksdemo"', 'priority_indexes = ["prio"]')
        + layer("applications", "above", 'frameworks = ["fw"]', '"ksdemo"')
        + index_tables(indexes)
    )
    stack = lock(tmp_path, body)
    assert locked(stack, "app-prio")["ksdemo"][0] == "4.0+prio"
    assert locked(stack, "app-above")["ksdemo"][0] == "1.0", "priority_indexes were inherited"
    settings = layer_uv_settings(stack, stack.layer("framework-fw"))
    assert [(i["name"], i.get("explicit")) for i in settings["index"]] == [
        ("prio", False),
        ("extra", False),
        ("main", None),
    ]


def test_index_overrides_accept_replacing_an_inherited_index(
    tmp_path: Path, indexes: dict[str, LocalIndex]
) -> None:
    fws = layer(
        "frameworks", "cpu", 'runtime = "rt"', "", 'package_indexes = { ksdemo = "extra" }'
    ) + layer("frameworks", "cuda", 'runtime = "rt"', "", 'package_indexes = { ksdemo = "prio" }')
    apps = layer(
        "applications",
        "own",
        'frameworks = ["cpu"]',
        '"ksdemo"',
        'package_indexes = { ksdemo = "prio" }\nindex_overrides = { extra = "prio" }',
    ) + layer(
        "applications",
        "both",
        'frameworks = ["cuda", "cpu"]',
        '"ksdemo"',
        'index_overrides = { extra = "prio" }',
    )
    stack = lock(tmp_path, runtime() + fws + apps + index_tables(indexes))
    assert locked(stack, "app-own")["ksdemo"][0] == "4.0+prio"
    assert locked(stack, "app-both")["ksdemo"][0] == "4.0+prio"
    without = (runtime() + fws + apps + index_tables(indexes)).replace(
        'index_overrides = { extra = "prio" }', ""
    )
    with pytest.raises(KernelstacksError, match=r'index_overrides = \{ extra = "prio" \}'):
        load_spec(write_spec(tmp_path / "without", without, modules=("app.py",)))


# -- credentials, uv's way ------------------------------------------------------------------------


def _private_stack(indexes: dict[str, LocalIndex], private: LocalIndex) -> str:
    return runtime('"kssecret"', 'package_indexes = { kssecret = "private" }') + index_tables(
        indexes, private
    )


def test_private_index_credentials_from_uv_environment_variables(
    tmp_path: Path,
    indexes: dict[str, LocalIndex],
    private: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path / "stack", _private_stack(indexes, private))
    stack = load_spec(spec)
    assert "alice" not in spec.read_text() and PASSWORD not in spec.read_text()
    refused = lock_stack(stack)
    assert not refused.ok and private.refused and not private.requests
    assert "kssecret" in refused.errors["rt"]

    monkeypatch.setenv("UV_INDEX_PRIVATE_USERNAME", USER)
    monkeypatch.setenv("UV_INDEX_PRIVATE_PASSWORD", PASSWORD)
    assert lock_stack(stack).ok
    assert locked(stack, "rt")["kssecret"][0] == "1.0+private"

    venv = tmp_path / "venv"
    run_uv(["venv", "--python", sys.executable, venv])
    python = venv / "bin" / "python"
    lock_file = lock_path(stack, stack.layer("rt"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "install-cache"))
    with pytest.raises(InstallError):  # the credentials alone: uv does not know the URL's index
        install_lock(python, lock_file, exact=True)
    install_lock(python, lock_file, exact=True, index_env=install_index_env(stack))
    code = "import kssecret; print(kssecret.INDEX, kssecret.VERSION)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["private", "1.0+private"]

    monkeypatch.delenv("UV_INDEX_PRIVATE_PASSWORD")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "no-password-cache"))
    run_uv(["venv", "--python", sys.executable, tmp_path / "venv2"])
    with pytest.raises(InstallError, match="UV_INDEX_<NAME>_USERNAME"):
        install_lock(
            tmp_path / "venv2" / "bin" / "python",
            lock_file,
            exact=True,
            index_env=install_index_env(stack),
        )


def test_install_index_env_names_every_index(
    indexes: dict[str, LocalIndex], tmp_path: Path
) -> None:
    stack = load_spec(write_spec(tmp_path, runtime() + index_tables(indexes)))
    entries = install_index_env(stack)["UV_INDEX"].split()
    assert entries == [f"{n}={indexes[n].url}" for n in ("main", "extra", "prio")]


# -- end to end: kernelstacks lock + build --------------------------------------------------------


@pytest.mark.slow
def test_built_layers_come_from_the_indexes_the_spec_names(
    tmp_path: Path,
    indexes: dict[str, LocalIndex],
    private: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    python = local_python(PY)
    assert python is not None
    body = (
        runtime()
        + layer(
            "frameworks",
            "secret",
            'runtime = "rt"',
            '"kssecret"',
            'package_indexes = { kssecret = "private" }',
        )
        + layer(
            "applications",
            "demo",
            'frameworks = ["secret"]',
            '"ksdemo"',
            'priority_indexes = ["prio"]',
        )
        + index_tables(indexes, private)
    )
    spec = write_spec(tmp_path / "stack", body, modules=("app.py",))
    monkeypatch.setenv("UV_INDEX_PRIVATE_USERNAME", USER)
    monkeypatch.setenv("UV_INDEX_PRIVATE_PASSWORD", PASSWORD)
    ks("lock", spec)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "build-cache"))
    ks("build", spec, "--python", f"cpython@{PY}={python}")
    app_python = tmp_path / "stack" / "_build" / "app-demo" / "bin" / "python"
    code = "import ksdemo, kssecret; print(ksdemo.INDEX, ksdemo.VERSION, kssecret.INDEX)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    out = subprocess.run([app_python, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["prio", "4.0+prio", "private"], out.stderr
