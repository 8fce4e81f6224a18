"""The ``%venvstacks explore`` widget: plain ipywidgets, no custom front-end code.

It runs in the kernel's interpreter (stdlib + IPython + ipywidgets only), so it renders wherever
``jupyterlab_widgets`` does (JupyterLab, Notebook 7, VS Code) with nothing installed into the
layers. Three parts:

- a tree (:class:`StackTree`) of the whole stack from ``kernelstacks show --json``, run in a
  background thread; until it answers, or when it fails, the tree holds only this kernel's
  chain (read from the layers' own metadata), so the widget is never empty;
- a searchable package table for the selected layer (:class:`PackageCatalog` reads it);
- Lock / Build buttons running the tool as a subprocess (:class:`ToolRun`) in a thread, so the
  kernel keeps answering while a progress bar, a status line and a log (:class:`RunPanel`)
  follow the ``--json`` events.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from kernelstacks_kernel import contract
from kernelstacks_kernel.chain import LayerInfo, current_chain
from kernelstacks_kernel.chain import spec_path as default_spec_path
from kernelstacks_kernel.explorer.catalog import PackageCatalog
from kernelstacks_kernel.explorer.events import RunState, run_summary, show_stack
from kernelstacks_kernel.explorer.model import (
    PackageRow,
    StackLayer,
    layers_from_chain,
    layers_from_show,
    matches,
)
from kernelstacks_kernel.explorer.panel import RunPanel
from kernelstacks_kernel.explorer.render import (
    caption_html,
    header_html,
    render_table,
    restart_notice_html,
)
from kernelstacks_kernel.explorer.tree import StackTree, TreeRow
from kernelstacks_kernel.toolrun import Event, ToolRun

#: The build directory's name beside the stack file when the kernel does not name one.
DEFAULT_BUILD_DIR = contract.DEFAULT_BUILD_DIR


class Explorer:
    """``%venvstacks explore``: the stack tree, package tables and Lock/Build buttons.

    ``chain`` defaults to this kernel's chain; ``tool_options`` are appended to ``lock`` and
    ``build`` (e.g. the ``--python`` overrides the stack was built with, so that a no-op build
    stays a no-op); ``load=False`` skips the background ``show`` (the tree then holds this
    kernel's chain only).
    """

    def __init__(
        self,
        chain: list[LayerInfo] | None = None,
        tool_options: Sequence[str] = (),
        load: bool = True,
    ) -> None:
        self.chain = current_chain() if chain is None else list(chain)
        self.spec = default_spec_path()
        self.build_dir = self._find_build_dir()
        self.catalog = PackageCatalog(self.chain, self.build_dir, layers_from_chain(self.chain))
        self.chain_names = self.catalog.chain_names
        self.this_layer = os.environ.get(contract.ENV_LAYER) or (self.chain_names or [""])[0]
        self.tool_options = list(tool_options)
        self.stack_name = os.environ.get(contract.ENV_STACK, "")
        self.source_note = "this kernel's chain only (loading the whole stack…)"
        self.selected: str | None = None
        self.table_rows: list[PackageRow] = []
        self.all_rows: list[PackageRow] = []
        self.run: ToolRun | None = None
        self.run_state: RunState | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()
        self._make_widgets()
        self._render_tree()
        self._select_default()
        self._check_registered()
        if load and self.spec is not None:
            self.refresh()

    # -- construction ----------------------------------------------------------------------------

    def _find_build_dir(self) -> Path | None:
        """Where the stack's layers live: the kernel's setting, else ``_build`` by the spec."""
        value = os.environ.get(contract.ENV_BUILD_DIR)
        if value:
            return Path(value)
        if self.spec is not None:
            return self.spec.parent / DEFAULT_BUILD_DIR
        return Path(self.chain[0].path).parent if self.chain else None

    def _make_widgets(self) -> None:
        """Create every widget once; later updates only change their values."""
        self.header = widgets.HTML()
        self.stack_tree = StackTree(on_select=self.select_layer)
        self.tree = self.stack_tree.box
        self.filter = widgets.Text(
            placeholder="filter packages (name)", description="filter", continuous_update=True
        )
        self.filter.observe(lambda _change: self._render_table(), names="value")
        self.table_caption = widgets.HTML()
        self.package_table = widgets.HTML()
        self.lock_button = self._button("Lock", "lock", "lock the stack (only invalid locks)")
        self.build_button = self._button("Build", "hammer", "lock if needed, then build")
        self.refresh_button = self._button("Refresh", "refresh", "re-read the stack")
        self.stop_button = self._button("Stop", "stop", "interrupt the running lock/build")
        self.stop_button.disabled = True
        self.lock_button.on_click(lambda _b: self.lock())
        self.build_button.on_click(lambda _b: self.build())
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.stop_button.on_click(lambda _b: self.stop())
        self.scope = widgets.Dropdown(
            options=[
                ("whole stack", "stack"),
                ("this kernel's layers", "kernel"),
                ("selected layer", "selected"),
            ],
            value="stack",
            description="scope",
            layout=widgets.Layout(width="16em"),
        )
        self.panel = RunPanel()
        self.progress, self.status = self.panel.progress, self.panel.status
        self.notice, self.log = self.panel.notice, self.panel.log
        self.widget = self._layout()

    def _button(self, text: str, icon: str, tooltip: str) -> widgets.Button:
        return widgets.Button(description=text, icon=icon, tooltip=tooltip)

    def _layout(self) -> widgets.VBox:
        table = widgets.VBox(
            [self.filter, self.table_caption, self.package_table],
            layout=widgets.Layout(flex="1 1 auto"),
        )
        buttons = widgets.HBox(
            [self.lock_button, self.build_button, self.scope, self.refresh_button, self.stop_button]
        )
        return widgets.VBox(
            [
                self.header,
                widgets.HBox([self.tree, table]),
                buttons,
                widgets.HBox([self.progress, self.status]),
                self.notice,
                self.log,
            ]
        )

    def _check_registered(self) -> None:
        """Without a spec the tool cannot be run: say so instead of failing on a click."""
        if self.spec is None:
            self.lock_button.disabled = self.build_button.disabled = True
            self.refresh_button.disabled = True
            self._set_status(
                f"{contract.ENV_SPEC} is not set: this kernel was not registered by kernelstacks,"
                " so Lock and Build are unavailable"
            )
        if not self.chain:
            self._set_status("this interpreter is not a kernelstacks layer (no layer metadata)")

    # -- tree ------------------------------------------------------------------------------------

    @property
    def layers(self) -> list[StackLayer]:
        """The layers the tree shows (the whole stack once ``show`` answered)."""
        return self.catalog.layers

    def _render_header(self) -> None:
        self.header.value = header_html(
            self.stack_name, self.spec, self.chain_names, self.source_note
        )

    @property
    def tree_rows(self) -> dict[str, TreeRow]:
        """The tree's rows by build name."""
        return self.stack_tree.rows

    def _render_tree(self) -> None:
        """Rebuild the tree's rows from ``self.layers`` (after a load or a build)."""
        with self._lock:
            self.stack_tree.render(self.layers)
            self._render_header()
            self._mark_selected()

    def _mark_selected(self) -> None:
        self.stack_tree.mark(self.selected)

    def _layer(self, name: str) -> StackLayer | None:
        """A layer by build name, name or deploy name."""
        return self.catalog.find(name)

    def _select_default(self) -> None:
        with self._lock:
            if self.selected and self._layer(self.selected):
                self._render_table()
                return
            default = self._layer(self.this_layer) or (self.layers[0] if self.layers else None)
            if default is None:
                self.selected = None
                self._render_table()
            else:
                self.select_layer(default.build_name)

    def select_layer(self, name: str) -> StackLayer:
        """Show one layer's packages (by build name, name or deploy name)."""
        with self._lock:
            layer = self._layer(name)
            if layer is None:
                known = ", ".join(x.build_name for x in self.layers)
                raise ValueError(f"no layer {name!r} in the explorer (layers: {known})")
            self.selected = layer.build_name
            self._mark_selected()
            self._render_table()
            return layer

    # -- package table ---------------------------------------------------------------------------

    def packages(self, name: str) -> list[PackageRow]:
        """Every package of one layer, as table rows (cached until the next build/refresh)."""
        with self._lock:
            layer = self._layer(name)
            if layer is None:
                return []
            return self.catalog.packages(layer)

    def _render_table(self) -> None:
        """Fill the package table for the selected layer and the current filter."""
        with self._lock:
            layer = self._layer(self.selected) if self.selected else None
            if layer is None:
                self.all_rows = self.table_rows = []
                self.table_caption.value = ""
                self.package_table.value = render_table([], "select a layer")
                return
            self.all_rows = self.packages(layer.build_name)
            text = self.filter.value.strip()
            self.table_rows = [row for row in self.all_rows if matches(row, text)]
            shown = len(self.table_rows)
            self.table_caption.value = caption_html(layer, self.all_rows, shown, text)
            empty = self.catalog.empty_text(layer) if not self.all_rows else "no package matches"
            self.package_table.value = render_table(self.table_rows, empty)

    # -- loading the stack -----------------------------------------------------------------------

    def refresh(self) -> threading.Thread:
        """Re-read the whole stack with ``show --json`` in a background thread."""
        thread = threading.Thread(target=self._load_stack, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _load_stack(self) -> None:
        """Run ``show --json`` (blocking: call it in a thread) and rebuild the tree."""
        if self.spec is None:
            return
        shown = show_stack(self.spec)
        if shown.document is not None:
            self._apply_stack(shown.document)
        else:
            self._show_failed(shown.reason, shown.lines)

    def _apply_stack(self, document: dict[str, Any]) -> None:
        with self._lock:
            self.catalog.replace_layers(layers_from_show(document, self.chain_names) or self.layers)
            self.stack_name = str(document.get("stack") or self.stack_name)
            self.source_note = "the whole stack, from kernelstacks show"
            if self.run is None and self.status.value.startswith("showing this kernel's"):
                self._set_status("")
            self._render_tree()
            self._select_default()

    def _show_failed(self, reason: str, lines: Sequence[str]) -> None:
        first = reason.strip().splitlines()[0] if reason.strip() else "unknown error"
        with self._lock:
            self.source_note = f"this kernel's chain only: kernelstacks show failed ({first})"
            self._render_header()
        for line in [*lines, f"show failed: {reason}"]:
            self._log(line)
        if self.run is None:
            self._set_status(f"showing this kernel's chain only: show failed: {first}")

    # -- lock / build ----------------------------------------------------------------------------

    def _scope_options(self) -> list[str]:
        """``--include`` for the chosen scope (the tool adds the layers below by itself)."""
        if self.scope.value == "kernel" and self.this_layer:
            return ["--include", self.this_layer]
        if self.scope.value == "selected" and self.selected:
            return ["--include", self.selected]
        return []

    def _common_options(self) -> list[str]:
        build_dir = ["--build-dir", str(self.build_dir)] if self.build_dir else []
        return [*self._scope_options(), *build_dir, *self.tool_options]

    def lock(self) -> threading.Thread | None:
        """Lock the stack in the background (``lock --if-needed``: only invalid locks)."""
        args = ["lock", str(self.spec), "--progress-json", "--if-needed", *self._common_options()]
        return self._start("lock", args)

    def build(self) -> threading.Thread | None:
        """Build in the background (``--lock-if-needed``; unchanged layers are skipped)."""
        args = [
            "build",
            str(self.spec),
            "--progress-json",
            "--lock-if-needed",
            *self._common_options(),
        ]
        return self._start("build", args)

    @property
    def busy(self) -> bool:
        """A lock or build is running."""
        return self.run is not None

    def _start(self, action: str, args: list[str]) -> threading.Thread | None:
        with self._lock:
            if self.run is not None:
                running = self.run_state.action if self.run_state else "run"
                self._set_status(f"busy: a {running} is running")
                return None
            if self.spec is None:
                return None
            self._begin(action)
            self.run_state = RunState(action)
            self.run = ToolRun(args, on_event=self._on_event, on_line=self._on_line)
            thread = self.run.run_in_thread(self._on_done)
            self._threads.append(thread)
            return thread

    def _begin(self, action: str) -> None:
        """Reset progress, log and notice, and disable the buttons."""
        self._set_busy(True)
        self.panel.begin(action)

    def _set_busy(self, busy: bool) -> None:
        for button in (self.lock_button, self.build_button, self.refresh_button, self.scope):
            button.disabled = busy
        self.stop_button.disabled = not busy

    def stop(self) -> None:
        """Interrupt the running tool like Ctrl-C (it keeps every working layer)."""
        run, state = self.run, self.run_state
        if run is not None and state is not None:
            state.interrupted = True
            self._set_status(f"{state.action}: interrupting…")
            run.interrupt()

    def _on_event(self, event: Event) -> None:
        """Follow one ``--json`` event (called from the tool's reader thread)."""
        if self.run_state is not None:
            self.run_state.record(event)
        self.panel.follow(event)

    def _on_line(self, line: str) -> None:
        """A non-event line: part of an error document, or stderr (uv's messages)."""
        state = self.run_state
        if state is not None and state.document.feed(line):
            return
        self._log(line)

    def _on_done(self, run: ToolRun) -> None:
        """End of a run (tool thread): summary, restart notice, fresh tree, buttons back."""
        try:
            self._finish(run)
            self._load_stack()
        except Exception as exc:  # never let a widget update kill the thread silently
            self._log(f"explorer error: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self.run = None
                self._set_busy(False)

    def _finish(self, run: ToolRun) -> None:
        state = self.run_state or RunState("run")
        if state.document.error:
            for line in state.document.error.splitlines():
                self._log(f"error: {line}")
        self.panel.show_result(*run_summary(run, state))
        rebuilt = [n for n in self.chain_names if state.statuses.get(n) == "built"]
        if rebuilt:
            self.notice.value = restart_notice_html(rebuilt)
        with self._lock:
            self.catalog.forget()
            self._render_table()

    # -- log, status, waiting --------------------------------------------------------------------

    def _log(self, line: str) -> None:
        self.panel.write(line)

    def _set_status(self, text: str) -> None:
        self.panel.set_status(text)

    def wait(self, timeout: float | None = 300) -> bool:
        """Join the background threads (show, lock, build); True when all have finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                self._threads = []
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            alive[0].join(remaining)
