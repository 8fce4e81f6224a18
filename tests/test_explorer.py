"""The ``%venvstacks explore`` widget, model-level (no browser), against a real built stack.

The explorer runs the real kernelstacks CLI (``show``, ``lock``, ``build``) as a subprocess, as
it does inside a layered kernel: the test process gets the environment variables a registered
kernel has, and reads the real layers of the session's ``kernel_stack``. Builds are no-ops
because the stack is prebuilt (``python_options()`` repeats the ``--python`` overrides it was
built with, which are part of the runtime's build inputs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import python_options

pytest.importorskip("ipywidgets")

from kernelstacks_kernel.chain import LayerInfo, current_chain
from kernelstacks_kernel.explorer import Explorer
from kernelstacks_kernel.inventory import locked_packages

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]

ALL_LAYERS = {"cpython-3.12", "framework-jupyter", "framework-data", "app-lab", "app-plain"}
LAB_CHAIN = {"app-lab", "framework-data", "framework-jupyter", "cpython-3.12"}


@pytest.fixture
def kernel_env(kernel_stack: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The variables kernel.json gives app-lab's kernel; returns the build dir."""
    build_dir = kernel_stack.parent / "_build"
    monkeypatch.setenv("KERNELSTACKS_SPEC", str(kernel_stack))
    monkeypatch.setenv("KERNELSTACKS_STACK", "kst")
    monkeypatch.setenv("KERNELSTACKS_LAYER", "app-lab")
    monkeypatch.setenv("KERNELSTACKS_BUILD_DIR", str(build_dir))
    monkeypatch.setenv("KERNELSTACKS_TOOL", json.dumps([sys.executable, "-m", "kernelstacks"]))
    return build_dir


@pytest.fixture
def chain(kernel_env: Path) -> list[LayerInfo]:
    """app-lab's chain, read from the built layers' metadata."""
    return current_chain(prefix=str(kernel_env / "app-lab"))


def explorer(chain: list[LayerInfo], **kwargs) -> Explorer:
    """An explorer whose background ``show`` has answered."""
    ex = Explorer(chain=chain, tool_options=python_options(), **kwargs)
    assert ex.wait(120), "kernelstacks show did not finish"
    return ex


def buttons_idle(ex: Explorer) -> bool:
    return not (ex.lock_button.disabled or ex.build_button.disabled) and ex.stop_button.disabled


def test_tree_shows_whole_stack_with_this_kernels_chain_highlighted(chain) -> None:
    ex = explorer(chain)
    assert set(ex.tree_rows) == ALL_LAYERS
    highlighted = {n for n, row in ex.tree_rows.items() if row.button.style.font_weight == "bold"}
    assert highlighted == LAB_CHAIN
    assert {n for n, row in ex.tree_rows.items() if row.layer.in_chain} == LAB_CHAIN
    assert ex.tree_rows["app-lab"].button.description.startswith("●")
    assert not ex.tree_rows["app-plain"].button.description.startswith("●")
    for row in ex.tree_rows.values():
        assert row.layer.lock_state == "valid"
        assert "lock: valid" in row.badge.value
    assert ex.tree_rows["framework-data"].layer.kind == "framework"
    assert "from kernelstacks show" in ex.header.value and "kst" in ex.header.value
    titles = [c.value for c in ex.tree.children if not hasattr(c, "children")]
    assert titles == ["<b>Runtimes</b>", "<b>Frameworks</b>", "<b>Applications</b>"]
    # this kernel's app layer is selected first
    assert ex.selected == "app-lab"
    assert ex.tree_rows["app-lab"].button.button_style == "info"
    assert [row.name for row in ex.table_rows] == ["tabulate"]


def test_before_show_answers_the_tree_is_this_kernels_chain(chain) -> None:
    ex = Explorer(chain=chain, load=False)
    assert set(ex.tree_rows) == LAB_CHAIN
    assert all(row.layer.lock_state == "unknown" for row in ex.tree_rows.values())
    assert "lock: not checked" in ex.tree_rows["app-lab"].badge.value
    assert "framework-data" in ex.tree_rows["app-lab"].badge.value  # its lower layers
    assert "tabulate" in ex.package_table.value


def test_selecting_a_layer_shows_its_packages(chain) -> None:
    ex = explorer(chain)
    layer = ex.select_layer("framework-data")
    assert layer.build_name == "framework-data" and ex.selected == "framework-data"
    assert ex.tree_rows["framework-data"].button.button_style == "info"
    assert ex.tree_rows["app-lab"].button.button_style == ""
    rows = {row.name: row for row in ex.table_rows}
    locked = locked_packages("framework-data")
    assert locked is not None and "attrs" in rows
    assert rows["attrs"].version == locked["attrs"]
    assert rows["attrs"].size > 0 and not rows["attrs"].shadowed
    assert "ipykernel" not in rows
    table = ex.package_table.value
    assert "attrs" in table and locked["attrs"] in table and "KiB" in table
    assert "framework-data" in ex.table_caption.value

    # a tree click does the same; short names work too
    ex.tree_rows["framework-jupyter"].button.click()
    assert ex.selected == "framework-jupyter"
    assert ex.select_layer("data").build_name == "framework-data"
    with pytest.raises(ValueError, match="no layer"):
        ex.select_layer("nope")


def test_layer_outside_this_kernel_is_read_from_the_build_dir(chain) -> None:
    ex = explorer(chain)
    ex.select_layer("app-plain")
    assert [row.name for row in ex.table_rows] == ["idna"]
    assert "as its own chain sees it" in ex.table_caption.value
    ex.select_layer("cpython-3.12")
    assert ex.table_rows == []
    assert "standard library only" in ex.package_table.value


def test_filter_narrows_the_table(chain) -> None:
    ex = explorer(chain)
    ex.select_layer("framework-jupyter")
    everything = len(ex.table_rows)
    assert everything > 5
    rows = {row.name: row for row in ex.table_rows}
    assert "ipywidgets" in rows["traitlets"].required_by

    ex.filter.value = "ipyw"
    assert [row.name for row in ex.table_rows] == ["ipywidgets"]
    assert "ipykernel" not in ex.package_table.value
    assert f"1 of {everything}" in ex.table_caption.value
    ex.filter.value = "Jupyter_Client"  # case and -/_ do not matter
    assert [row.name for row in ex.table_rows] == ["jupyter-client"]
    ex.filter.value = "no-such-package"
    assert ex.table_rows == [] and "no package matches" in ex.package_table.value
    ex.filter.value = ""
    assert len(ex.table_rows) == everything


def test_build_button_runs_the_real_tool(chain) -> None:
    ex = explorer(chain)
    ex.build_button.click()
    assert ex.busy and ex.build_button.disabled and ex.lock_button.disabled
    assert not ex.stop_button.disabled
    assert ex.build() is None  # a second run is refused while one is going
    assert ex.wait(300)
    assert not ex.busy and buttons_idle(ex)
    assert ex.progress.value == ex.progress.max == len(ALL_LAYERS)
    assert ex.progress.bar_style == "success"
    log = ex.panel.text
    assert "app-lab" in log and "framework-data" in log and "unchanged" in log
    assert ex.status.value.startswith("build done") and "5 unchanged" in ex.status.value
    assert ex.notice.value == ""  # nothing of this kernel was rebuilt: no restart needed
    assert set(ex.tree_rows) == ALL_LAYERS  # the tree was re-read afterwards
    assert ex.run_state is not None and ex.run_state.statuses["app-lab"] == "unchanged"


def test_lock_button_and_scope(chain) -> None:
    ex = explorer(chain)
    ex.lock_button.click()
    assert ex.wait(300) and buttons_idle(ex)
    assert ex.progress.value == ex.progress.max == len(ALL_LAYERS)
    assert ex.status.value.startswith("lock done") and "5 valid" in ex.status.value
    assert "app-plain: valid" in ex.panel.text

    # "selected layer" passes --include: app-plain is neither below nor above framework-data
    ex.select_layer("framework-data")
    ex.scope.value = "selected"
    ex.lock_button.click()
    assert ex.wait(300)
    assert 2 <= ex.progress.value == ex.progress.max < len(ALL_LAYERS)
    assert "framework-data" in ex.panel.text and "app-plain" not in ex.panel.text


def test_failing_stack_file_is_reported_not_raised(
    chain, kernel_stack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "venvstacks.toml"
    text = kernel_stack.read_text()
    broken.write_text(text.replace('runtime = "cpython-3.12"', 'runtime = "cpython-3.21"'))
    monkeypatch.setenv("KERNELSTACKS_SPEC", str(broken))

    ex = explorer(chain)
    assert set(ex.tree_rows) == LAB_CHAIN  # show failed: this kernel's chain only
    assert "show failed" in ex.header.value
    assert "unknown runtime 'cpython-3.21'" in ex.panel.text
    assert "show failed" in ex.status.value

    ex.build_button.click()
    assert ex.wait(300) and buttons_idle(ex)
    assert ex.status.value.startswith("build failed")
    assert "problems in the stack file" in ex.status.value
    assert "did you mean 'cpython-3.12'" in ex.panel.text
    assert ex.progress.bar_style == "danger" and ex.notice.value == ""


def test_without_a_registered_stack_the_buttons_are_off(
    chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KERNELSTACKS_SPEC")
    ex = Explorer(chain=chain)
    assert ex.wait(10)
    assert ex.lock_button.disabled and ex.build_button.disabled
    assert "KERNELSTACKS_SPEC" in ex.status.value
    assert ex.lock() is None
    assert set(ex.tree_rows) == LAB_CHAIN and "tabulate" in ex.package_table.value
