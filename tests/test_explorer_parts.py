"""The explorer's parts without a built stack: model, catalog, HTML, tool output, tree, panel.

``test_explorer.py`` drives the whole widget against a real stack (slow); these tests build a
small fake stack (layer metadata and ``.dist-info`` folders only) and a fake tool run, so the
rules of each part are checked in a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")

from kernelstacks_kernel.chain import LayerInfo
from kernelstacks_kernel.explorer import (
    JsonDocument,
    StackLayer,
    format_event,
    human_size,
    package_rows,
    render_table,
)
from kernelstacks_kernel.explorer.catalog import PackageCatalog
from kernelstacks_kernel.explorer.events import RunState, count_states, run_summary
from kernelstacks_kernel.explorer.model import layers_from_chain, layers_from_show, matches
from kernelstacks_kernel.explorer.panel import MAX_LOG_LINES, RunPanel
from kernelstacks_kernel.explorer.render import caption_html, header_html, tree_row_html
from kernelstacks_kernel.explorer.tree import StackTree
from kernelstacks_kernel.inventory import Dist
from kernelstacks_kernel.toolrun import ToolRun
from layer_fakes import make_chain


@pytest.fixture
def chain(tmp_path: Path) -> list[LayerInfo]:
    """app-lab on framework-data on cpython-3.12, plus app-plain (not in the chain)."""
    return make_chain(tmp_path)


def test_chain_fallback_tree_and_show_document(chain: list[LayerInfo]) -> None:
    names = ["app-lab", "framework-data", "cpython-3.12"]
    assert [layer.build_name for layer in chain] == names
    fallback = layers_from_chain(chain)
    assert [(x.build_name, x.kind, x.in_chain) for x in fallback] == [
        ("app-lab", "application", True),
        ("framework-data", "framework", True),
        ("cpython-3.12", "runtime", True),
    ]
    assert fallback[0].lower_layers == names[1:] and fallback[1].lower_layers == names[-1:]
    document = {
        "layers": [
            {"build_name": "app-plain", "kind": "application", "lock": {"state": "stale"}},
            {"build_name": "framework-data", "lock": "not a table"},
            {"no build name": True},
        ]
    }
    shown = layers_from_show(document, names)
    assert [(x.build_name, x.lock_state, x.in_chain) for x in shown] == [
        ("app-plain", "stale", False),
        ("framework-data", "unknown", True),
    ]


def test_catalog_reads_chain_layers_and_build_dir_layers(chain: list[LayerInfo]) -> None:
    build = Path(chain[0].path).parent
    layers = [*layers_from_chain(chain), StackLayer("app-plain", "application", "app-plain")]
    layers[-1].lower_layers = ["cpython-3.12"]
    catalog = PackageCatalog(chain, build, layers)
    assert catalog.find("app-plain") is layers[-1] and catalog.find("") is None

    lab = {row.name: row for row in catalog.packages(layers[0])}
    assert set(lab) == {"six", "tabulate"}
    assert lab["six"].shadows == ["framework-data"] and lab["six"].shared_with == ["framework-data"]
    data = {row.name: row for row in catalog.packages(layers[1])}
    assert data["six"].shadowed_by == "app-lab" and data["attrs"].size > 0
    plain = catalog.packages(layers[-1])  # site-packages found without metadata
    assert [row.name for row in plain] == ["idna"] and not plain[0].shared

    assert catalog.packages(layers[2]) == []
    assert "standard library only" in catalog.empty_text(layers[2])
    ghost = StackLayer("app-ghost", "application")
    assert catalog.empty_text(ghost).startswith("app-ghost is not built")
    catalog.replace_layers(layers[:1])
    assert catalog.find("app-plain") is None and catalog.elsewhere_index() == {
        "six": ["app-lab"],
        "tabulate": ["app-lab"],
    }


def test_table_marks_shared_and_shadowed_packages() -> None:
    mine = Dist("six", "six", "1.17.0", "app-x", 0, 0, shadows=["framework-a"])
    hidden = Dist("six", "six", "1.16.0", "framework-a", 1, 0, shadowed_by="app-x")
    plain = Dist("idna", "idna", "3.10", "app-x", 0, 0, required_by=["httpx"])
    elsewhere = {"six": ["app-x", "framework-a"], "idna": ["app-x"]}
    rows = package_rows([mine, plain], {"six": 2048, "idna": 5 * 1024**2}, elsewhere, "app-x")
    assert [r.name for r in rows] == ["idna", "six"]
    assert rows[1].shared and rows[1].shared_with == ["framework-a"] and not rows[1].shadowed
    assert rows[0].required_by == ["httpx"] and not rows[0].shared
    table = render_table(rows)
    assert "◆" in table and "also in framework-a" in table and "shadows the copy" in table
    assert "5.0 MiB" in table and "2.0 KiB" in table

    (shadowed,) = package_rows([hidden], {}, elsewhere, "framework-a")
    assert shadowed.shadowed and shadowed.shared_with == ["app-x"]
    assert "line-through" in render_table([shadowed]) and "shadowed by app-x" in render_table(
        [shadowed]
    )
    assert human_size(512) == "512 B" and human_size(3 * 1024**3) == "3.0 GiB"
    assert matches(rows[1], "SIX") and not matches(rows[1], "six idna")


def test_header_caption_and_tree_html() -> None:
    layer = StackLayer("framework-a", "framework", "framework-a@2", ["cpython-3.12"], "valid", 2)
    assert tree_row_html(layer).endswith(
        "lock: valid (v2)</span> → framework-a@2 "
        "<span style='color: var(--jp-ui-font-color2, #757575)'>on cpython-3.12</span>"
    )
    header = header_html("", None, ["app-<x>"], "a & b")
    assert header.startswith("<b>kernelstacks</b>") and "no stack file" in header
    assert "app-&lt;x&gt;" in header and "a &amp; b" in header
    rows = package_rows([Dist("six", "six", "1", "framework-a", 0, 1024)], {}, {}, "framework-a")
    caption = caption_html(layer, rows, 0, "zz")
    assert caption.startswith("<b>framework-a</b>: 0 of 1 package, 1.0 KiB")
    assert "as its own chain sees it" in caption


def test_tree_groups_layers_by_kind_and_reports_clicks() -> None:
    clicked: list[str] = []
    tree = StackTree(on_select=clicked.append)
    tree.render(
        [
            StackLayer("app-a", "application", in_chain=True),
            StackLayer("odd", "plugin"),
            StackLayer("cpython-3.12", "runtime"),
        ]
    )
    titles = [c.value for c in tree.box.children if not hasattr(c, "children")]
    assert titles == ["<b>Runtimes</b>", "<b>Applications</b>", "<b>Other layers</b>"]
    assert tree.rows["app-a"].button.description == "● app-a"
    tree.rows["odd"].button.click()
    tree.mark("odd")
    assert clicked == ["odd"] and tree.rows["odd"].button.button_style == "info"
    tree.render([])
    assert tree.rows == {} and "no layers found" in tree.box.children[0].value


def test_tool_output_parsing() -> None:
    document = JsonDocument()
    text = json.dumps({"error": "bad\nworse", "problems": [{"a": {}}]}, indent=2)
    assert not document.feed("a stderr line")
    assert all(document.feed(line.strip()) for line in text.splitlines())
    assert document.error == "bad\nworse"
    assert not document.feed("}")  # the document is complete
    done = {"event": "done", "layers": {"a": "built", "b": "unchanged", "c": "built"}, "ok": True}
    assert format_event(done) == "ok: 2 built, 1 unchanged"
    finished = {"event": "layer_finished", "layer": "a", "status": "built", "seconds": 1.25}
    assert format_event(finished) == "a: built (1.2s)"
    assert format_event({"event": "error", "layer": None, "message": "x"}) == "error: x"
    assert count_states({"event": "done", "layers": None}) == "no layers"


def test_run_state_and_summary() -> None:
    state = RunState("build")
    state.record({"event": "layer_finished", "layer": "a", "status": "built"})
    state.record({"event": "error", "layer": "b", "message": "no wheel"})
    state.record({"event": "note", "message": "ignored"})
    assert state.statuses == {"a": "built"} and state.errors == ["b: no wheel"]

    run = ToolRun(["build"], returncode=1, log=["first", "last line"])
    run.events = [{"event": "done", "layers": {"a": "built"}, "errors": {}, "ok": False}]
    assert run_summary(run, state) == (False, "build failed: b: no wheel")
    run.events[0]["errors"] = {"c": "two\nlines"}
    assert run_summary(run, state) == (False, "build failed: c: two (+1 more lines in the log)")
    assert run_summary(ToolRun(["x"], returncode=1, log=["last"]), RunState("x"))[1].endswith(
        "failed: last"
    )
    ok, text = run_summary(ToolRun(["x"], returncode=0), RunState("lock"))
    assert ok and text.startswith("lock done in ") and text.endswith("s: no summary")
    state.interrupted = True
    assert run_summary(run, state)[1] == "build interrupted: every working layer was kept"


def test_panel_follows_events_and_caps_the_log() -> None:
    panel = RunPanel()
    panel.begin("build")
    assert panel.status.value == "build: starting kernelstacks…" and panel.progress.max == 1
    panel.follow({"event": "start", "action": "build", "total": 2, "layers": ["a", "b"]})
    panel.follow({"event": "layer_started", "layer": "a", "action": "checking"})
    assert panel.status.value == "a: checking…"
    panel.follow({"event": "layer_started", "layer": "b", "action": "checking"})
    panel.follow({"event": "step", "layer": "a", "message": "installing packages"})
    # the layer whose step came last is named, not the last one that started
    assert panel.status.value == "a: installing packages… (+1 more in progress)"
    panel.follow({"event": "layer_finished", "layer": "a", "status": "built"})
    assert panel.status.value == "b: checking…"
    for _ in range(3):  # never past the end
        panel.follow({"event": "layer_finished", "layer": "a", "status": "built"})
    assert (panel.progress.value, panel.progress.max) == (2, 2)
    panel.show_result(False, "build failed: <x>")
    assert panel.progress.bar_style == "danger" and panel.text.endswith("build failed: <x>")
    # the log is HTML laid out bottom-up, so the browser keeps the newest line in view
    assert "flex-direction: column-reverse" in panel.log.value
    assert panel.log.value.count("build failed: &lt;x&gt;") == 1
    for n in range(MAX_LOG_LINES + 5):
        panel.write(str(n))
    lines = panel.text.splitlines()
    assert len(lines) == MAX_LOG_LINES and lines[-1] == str(MAX_LOG_LINES + 4)
    panel.begin("lock")  # a new run starts with an empty log
    assert panel.text == "" and panel.progress.value == 0
