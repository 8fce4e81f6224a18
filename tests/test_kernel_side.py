"""The kernel side's rules without a kernel: output bundles, errors, pip, TOML, dependencies.

These run in the test interpreter against the fake stack of :mod:`layer_fakes`; the same code runs
inside real layered kernels in ``test_kernels.py`` and ``test_kernel_versions.py``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from kernelstacks_kernel import contract, display, inventory, pipshim, tomlsubset
from kernelstacks_kernel.chain import LayerInfo
from kernelstacks_kernel.display import KernelRestarting, VenvstacksError
from layer_fakes import make_chain

DEMO_SPEC = (
    Path(__file__).resolve().parents[1] / "src" / "kernelstacks" / "demo" / "venvstacks.toml"
)


@pytest.fixture
def fake_chain(tmp_path: Path) -> list[LayerInfo]:
    """app-lab on framework-data on cpython-3.12 (see layer_fakes)."""
    return make_chain(tmp_path)


def test_tables_are_html_and_text_never_application_json() -> None:
    bundle = display.table_bundle("t <1>", ["a", "b"], [["x", None], ["<y>", 2]], highlight=0)
    assert set(bundle) == {"text/html", "text/plain"}
    assert "<table>" in bundle["text/html"] and "&lt;y&gt;" in bundle["text/html"]
    assert bundle["text/plain"].splitlines()[0] == "t <1>"
    data = {"layers": [{"name": "app-x"}]}
    asked = display.json_bundle(data)
    assert set(asked) == {contract.JSON_MIME, "text/plain"}
    assert asked[contract.JSON_MIME] == data and json.loads(asked["text/plain"]) == data
    assert contract.JSON_MIME != "application/json" and not contract.JSON_MIME.endswith("/json")


def test_errors_render_as_one_line() -> None:
    lines = VenvstacksError("no layer 'x'")._render_traceback_()
    assert len(lines) == 1 and lines[0].endswith("VenvstacksError\x1b[0m: no layer 'x'")
    assert "KernelRestarting" in KernelRestarting("run again")._render_traceback_()[0]
    assert issubclass(KernelRestarting, VenvstacksError)


def test_requires_are_listed_once_and_extras_left_out(fake_chain: list[LayerInfo]) -> None:
    dists = {(d.name, d.layer): d for d in inventory.inventory(fake_chain)}
    assert dists[("attrs", "framework-data")].requires == ["six"]
    assert dists[("six", "app-lab")].required_by == ["attrs"]


@pytest.fixture
def pip_chain(fake_chain: list[LayerInfo], monkeypatch: pytest.MonkeyPatch) -> list[LayerInfo]:
    """The pip shim sees the fake chain as this interpreter's."""
    monkeypatch.setattr(pipshim, "current_chain", lambda: fake_chain)
    return fake_chain


def test_pip_reads_the_stack(pip_chain: list[LayerInfo]) -> None:
    status, out, err = pipshim.run(["list"])
    assert status == 0 and err == ""
    rows = [line.split() for line in out.splitlines()[2:]]
    assert rows == [
        ["attrs", "24.2.0", "framework-data"],
        ["six", "1.17.0", "app-lab"],  # the copy that imports win
        ["tabulate", "0.9.0", "app-lab"],
    ]
    assert pipshim.run(["freeze"])[1].splitlines() == [
        "attrs==24.2.0",
        "six==1.17.0",
        "tabulate==0.9.0",
    ]
    listed = json.loads(pipshim.run(["list", "--format=json"])[1])
    assert {"name": "attrs", "version": "24.2.0", "layer": "framework-data"} in listed
    status, out, _ = pipshim.run(["show", "attrs"])
    assert status == 0 and "Summary: the attrs package" in out
    assert "Layer: framework-data" in out and "Requires: six" in out
    status, out, err = pipshim.run(["show", "attrs", "nope"])
    assert status == 1 and "Name: attrs" in out and "not found: nope" in err
    assert pipshim.run(["--version"])[1].startswith(
        "pip (kernelstacks, read-only) for layer app-lab"
    )
    assert "install / uninstall" in pipshim.run([])[1]


def test_pip_refuses_changes_and_says_what_to_do(pip_chain: list[LayerInfo]) -> None:
    status, out, err = pipshim.run(["install", "-U", "humanize", "rich"])
    assert status == 1 and out == ""
    assert "%venvstacks add humanize rich" in err and "%venvstacks build" in err
    status, _, err = pipshim.run(["uninstall", "-y", "six"])
    assert status == 1 and "%venvstacks remove six" in err
    status, _, err = pipshim.run(["config", "list"])
    assert status == 1 and "read-only commands: list, freeze, show" in err
    assert pipshim.run(["list", "--format", "yaml"])[0] == 1


LOCK = """
lock-version = "1.0"
created-by = "uv"
requires-python = "==3.12.*"

[[packages]]
name = "attrs"
version = "25.3.0"
index = "https://pypi.org/simple"

[[packages.wheels]]
url = "https://example.invalid/attrs-25.3.0-py3-none-any.whl"
upload-time = 2025-03-17T00:02:52Z
size = 100916

[packages.wheels.hashes]
sha256 = "9f76d541"

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
wheels = [
    { url = "https://example.invalid/colorama.whl", hashes = { sha256 = "ab" } },
]

[[packages]]
name = "six"
version = "1.17.0"
marker = "sys_platform == 'from_lower_layer'"
"""


@pytest.mark.parametrize("text", [LOCK, DEMO_SPEC.read_text(encoding="utf-8")])
def test_toml_subset_reads_what_the_kernel_needs(text: str) -> None:
    """Pythons before 3.11 have no tomllib: the subset reader must agree with it on our keys."""
    full, subset = tomllib.loads(text), tomlsubset.loads(text)
    for key in ("packages", "runtimes", "frameworks", "applications"):
        expected = [
            {k: v for k, v in t.items() if k in ("name", "version", "marker", "requirements")}
            for t in full.get(key, [])
        ]
        got = [
            {k: v for k, v in t.items() if k in ("name", "version", "marker", "requirements")}
            for t in subset.get(key, [])
        ]
        assert got == expected, key


def test_toml_subset_skips_what_it_does_not_understand() -> None:
    doc = tomlsubset.loads('a = 1\nb = """x"""\nc = ["p", 2, "q"] # c\n[t]\nname = \'lit\'\n')
    assert doc == {"c": ["p", "q"], "t": {"name": "lit"}}


def test_progress_bar_starts_each_phase_from_zero(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ipywidgets")
    from kernelstacks_kernel.progress_view import ProgressView

    view = ProgressView("build")
    view.event({"event": "start", "action": "lock", "total": 2, "layers": ["a", "b"]})
    for layer in ("a", "b"):
        view.event({"event": "layer_finished", "layer": layer, "status": "locked", "seconds": 0})
    assert view.bar.value == view.bar.max == 2
    view.event({"event": "start", "action": "build", "total": 3, "layers": ["a", "b", "c"]})
    assert (view.bar.value, view.bar.max, view.bar.description) == (0, 3, "build:")
