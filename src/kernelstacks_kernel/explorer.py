"""The layer explorer of ``%venvstacks explore``: plain ipywidgets, no custom front-end code.

It runs in the kernel's interpreter (stdlib + IPython + ipywidgets only), so it renders wherever
``jupyterlab_widgets`` does (JupyterLab, Notebook 7, VS Code) with nothing installed into the
layers. Three parts:

- a tree of the whole stack (Runtimes, Frameworks, Applications) from ``kernelstacks show
  --json``, run in a background thread; until it answers, or when it fails, the tree holds only
  this kernel's chain (read from the layers' own metadata), so the widget is never empty;
- a searchable package table for the selected layer: this kernel's layers are shown as this
  kernel sees them (shadowing in ``sys.path`` order), other layers as their own chain sees them,
  read from their site-packages in the build directory;
- Lock / Build buttons running the tool as a subprocess (:class:`ToolRun`) in a thread, so the
  kernel keeps answering while a progress bar, a status line and a log follow the ``--json``
  events.
"""

from __future__ import annotations

import html
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from kernelstacks_kernel.chain import LAYER_METADATA, LayerInfo, current_chain, describe_layer
from kernelstacks_kernel.chain import spec_path as default_spec_path
from kernelstacks_kernel.inventory import Dist, canonical, inventory, layer_dists
from kernelstacks_kernel.toolrun import Event, ToolRun

KINDS = (("runtime", "Runtimes"), ("framework", "Frameworks"), ("application", "Applications"))
CHAIN_MARK = "●"
MAX_LOG_LINES = 2000
RESTART_NOTICE = (
    "Restart this kernel to use the new layers (Kernel → Restart, or <code>%venvstacks restart"
    "</code>)."
)
LOCK_COLOURS = {
    "valid": "#2e7d32",
    "stale": "#ef6c00",
    "missing": "#9e9e9e",
    "corrupt": "#c62828",
}
DIM = "color: var(--jp-ui-font-color2, #757575)"


# -- the stack model ------------------------------------------------------------------------------


@dataclass
class StackLayer:
    """One layer as the tree shows it: from ``show --json``, or from this kernel's chain."""

    build_name: str
    kind: str
    deploy_name: str = ""
    lower_layers: list[str] = field(default_factory=list)
    lock_state: str = "unknown"
    lock_version: int | None = None
    in_chain: bool = False
    name: str = ""


def chain_build_names(chain: Sequence[LayerInfo]) -> list[str]:
    """Build names of a chain (a deployed layer dir may be ``name@version``)."""
    return [layer.extra.get("build_name", layer.name) for layer in chain]


def layers_from_show(document: dict[str, Any], chain_names: Sequence[str]) -> list[StackLayer]:
    """The tree's layers from the ``show --json`` document."""
    layers = []
    for record in document.get("layers", []):
        if not isinstance(record, dict) or "build_name" not in record:
            continue
        lock = record.get("lock") if isinstance(record.get("lock"), dict) else {}
        layers.append(
            StackLayer(
                build_name=record["build_name"],
                kind=str(record.get("kind", "")),
                deploy_name=str(record.get("deploy_name") or record["build_name"]),
                lower_layers=[str(x) for x in record.get("lower_layers", [])],
                lock_state=str(lock.get("state", "unknown")),
                lock_version=lock.get("lock_version"),
                in_chain=record["build_name"] in chain_names,
                name=str(record.get("name", "")),
            )
        )
    return layers


def _layer_metadata(path: str) -> dict[str, Any]:
    try:
        data = json.loads((Path(path) / LAYER_METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def layers_from_chain(chain: Sequence[LayerInfo]) -> list[StackLayer]:
    """The fallback tree: this kernel's layers only, lock state not checked (no tool needed)."""
    names = chain_build_names(chain)
    layers = []
    for position, (layer, build_name) in enumerate(zip(chain, names, strict=True)):
        ks_meta = _layer_metadata(layer.path).get("kernelstacks", {})
        lower = ks_meta.get("lower_layers") if isinstance(ks_meta, dict) else None
        if not isinstance(lower, list):
            lower = names[position + 1 :] if position == 0 else names[-1:]
        layers.append(
            StackLayer(
                build_name=build_name,
                kind=layer.kind,
                deploy_name=layer.name,
                lower_layers=[str(x) for x in lower if x != build_name],
                lock_state="unknown",
                lock_version=layer.lock_version,
                in_chain=True,
            )
        )
    return layers


def find_site_packages(layer_dir: Path) -> Path | None:
    """A layer's site-packages when its metadata does not say (POSIX and Windows layouts)."""
    found = sorted(layer_dir.glob("lib/python*/site-packages"))
    found += [p for p in [layer_dir / "Lib" / "site-packages"] if p.is_dir()]
    return found[0] if found else None


def layer_info_at(path: Path, kind: str) -> LayerInfo:
    """Describe a layer that is not in this kernel's chain, from its directory."""
    info = describe_layer(path, kind)
    if not info.site_dir and path.is_dir():
        site = find_site_packages(path)
        info.site_dir = str(site) if site else ""
    return info


# -- the package table ----------------------------------------------------------------------------


@dataclass
class PackageRow:
    """One line of the package table."""

    name: str
    display_name: str
    version: str
    size: int
    required_by: list[str] = field(default_factory=list)
    shared_with: list[str] = field(default_factory=list)
    shadowed_by: str | None = None
    shadows: list[str] = field(default_factory=list)

    @property
    def shared(self) -> bool:
        """Present in another layer of the stack as well."""
        return bool(self.shared_with)

    @property
    def shadowed(self) -> bool:
        """Hidden by a copy in a layer earlier in ``sys.path``."""
        return self.shadowed_by is not None


def package_rows(
    dists: Sequence[Dist], sizes: dict[str, int], elsewhere: dict[str, list[str]], layer: str
) -> list[PackageRow]:
    """Table rows of one layer; ``elsewhere`` maps a name to every layer holding it."""
    return [
        PackageRow(
            name=d.name,
            display_name=d.display_name,
            version=d.version,
            size=sizes.get(d.name, d.size),
            required_by=sorted(d.required_by),
            shared_with=[other for other in elsewhere.get(d.name, []) if other != layer],
            shadowed_by=d.shadowed_by,
            shadows=list(d.shadows),
        )
        for d in sorted(dists, key=lambda d: d.name)
    ]


def human_size(size: int) -> str:
    """Bytes as a short human-readable figure (binary units, like ``du -h``)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - loop always returns


def matches(row: PackageRow, text: str) -> bool:
    """Filter rule: every word of the filter is part of the name (``-``/``_``/``.`` alike)."""
    name = f"{row.name} {row.display_name.lower()}"
    return all(canonical(word) in name for word in text.split())


def _notes(row: PackageRow) -> str:
    notes = []
    if row.shadowed_by:
        notes.append(f"✕ shadowed by {row.shadowed_by}")
    if row.shadows:
        notes.append(f"shadows the copy in {', '.join(row.shadows)}")
    if row.shared_with:
        notes.append(f"◆ also in {', '.join(row.shared_with)}")
    return html.escape("; ".join(notes))


def _row_html(row: PackageRow) -> str:
    style = " style='text-decoration: line-through; opacity: 0.6'" if row.shadowed else ""
    marks = ("◆ " if row.shared else "") + ("✕ " if row.shadowed else "")
    required = ", ".join(row.required_by[:8]) + (" …" if len(row.required_by) > 8 else "")
    cells = [
        f"{marks}<b>{html.escape(row.display_name)}</b>",
        html.escape(row.version),
        human_size(row.size) if row.size else "",
        html.escape(required),
        _notes(row),
    ]
    tds = "".join(f"<td style='text-align:left; padding:1px 8px'>{c}</td>" for c in cells)
    return f"<tr{style}>{tds}</tr>"


def render_table(rows: Sequence[PackageRow], empty: str = "no packages") -> str:
    """The HTML of the package table (inline styles: no CSS to install in the front-end)."""
    if not rows:
        return f"<i style='{DIM}'>{html.escape(empty)}</i>"
    columns = ["package", "version", "size", "required by", "notes"]
    head = "".join(f"<th style='text-align:left; padding:1px 8px'>{c}</th>" for c in columns)
    body = "".join(_row_html(row) for row in rows)
    return (
        "<div style='max-height: 24em; overflow: auto'>"
        f"<table style='border-collapse: collapse'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def lock_badge(layer: StackLayer) -> str:
    """A coloured ``lock: <state>`` badge (grey "not checked" until ``show`` answered)."""
    state = layer.lock_state
    colour = LOCK_COLOURS.get(state, "#9e9e9e")
    text = "lock: not checked" if state == "unknown" else f"lock: {state}"
    if layer.lock_version is not None and state in ("valid", "stale", "unknown"):
        text += f" (v{layer.lock_version})"
    return (
        f"<span style='background:{colour}; color:white; border-radius:4px; padding:0 5px;"
        f" font-size:85%'>{html.escape(text)}</span>"
    )


# -- tool output ----------------------------------------------------------------------------------


class JsonDocument:
    """Collects a pretty-printed JSON document from the tool's non-event stdout lines.

    ``show --json`` prints one indented document, and so does any command whose stack file is
    invalid (``{"error": ..., "problems": [...]}``). :class:`ToolRun` hands such lines over one
    at a time (stripped), so they are gathered here until they parse.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.document: dict[str, Any] | None = None

    def feed(self, line: str) -> bool:
        """Take a line if it belongs to the document; False for other (stderr) lines."""
        if self.document is not None or (not self.lines and line.strip() != "{"):
            return False
        self.lines.append(line)
        if line.lstrip().startswith("}"):
            try:
                parsed = json.loads("\n".join(self.lines))
            except ValueError:
                return True
            self.document = parsed if isinstance(parsed, dict) else {}
        return True

    @property
    def error(self) -> str | None:
        """The tool's error message, when the document is one."""
        if self.document and isinstance(self.document.get("error"), str):
            return self.document["error"]
        return None


def format_event(event: Event) -> str:
    """One log line for one ``--json`` event."""
    kind = event.get("event")
    layer = event.get("layer") or ""
    if kind == "start":
        layers = ", ".join(event.get("layers", []))
        return f"{event.get('action', '')}: {event.get('total', 0)} layers ({layers})"
    if kind == "layer_started":
        return f"{layer}: {event.get('action', '')}"
    if kind == "step":
        return f"{layer}: {event.get('message', '')}"
    if kind == "layer_finished":
        extra = f"  {event['message']}" if event.get("message") else ""
        seconds = float(event.get("seconds") or 0)
        return f"{layer}: {event.get('status', '')} ({seconds:.1f}s){extra}"
    if kind == "note":
        return f"note: {event.get('message', '')}"
    if kind == "error":
        return f"error: {layer + ': ' if layer else ''}{event.get('message', '')}"
    if kind == "done":
        return f"{'ok' if event.get('ok', True) else 'failed'}: {count_states(event)}"
    return json.dumps(event, default=str)


def count_states(done: Event) -> str:
    """``2 built, 3 unchanged`` from a ``done`` event."""
    layers = done.get("layers") if isinstance(done.get("layers"), dict) else {}
    counts = Counter(layers.values())
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no layers"


@dataclass
class RunState:
    """What one lock/build run has reported so far."""

    action: str
    statuses: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    document: JsonDocument = field(default_factory=JsonDocument)
    interrupted: bool = False
    started: float = field(default_factory=time.monotonic)


def first_error(run: ToolRun, state: RunState) -> str:
    """The most useful one-line reason for a failed run."""
    done = run.summary or {}
    errors = done.get("errors") if isinstance(done.get("errors"), dict) else {}
    if errors:
        layer, message = next(iter(errors.items()))
        return f"{layer}: {message}"
    if state.errors:
        return state.errors[0]
    if state.document.error:
        return state.document.error
    last = next((line for line in reversed(run.log) if line.strip()), "")
    return last or f"exit status {run.returncode}"


def run_summary(run: ToolRun, state: RunState) -> tuple[bool, str]:
    """(ok, status line) once a run has ended."""
    seconds = time.monotonic() - state.started
    if state.interrupted:
        return False, f"{state.action} interrupted: every working layer was kept"
    done = run.summary
    ok = run.returncode == 0 and bool(done is None or done.get("ok", True))
    counts = count_states(done) if done else "no summary"
    if ok:
        return True, f"{state.action} done in {seconds:.1f}s: {counts}"
    reason = first_error(run, state).strip().splitlines()
    more = f" (+{len(reason) - 1} more lines in the log)" if len(reason) > 1 else ""
    return False, f"{state.action} failed: {reason[0] if reason else '?'}{more}"


# -- the widget -----------------------------------------------------------------------------------


@dataclass
class TreeRow:
    """One clickable layer of the tree."""

    layer: StackLayer
    button: widgets.Button
    badge: widgets.HTML
    box: widgets.HBox


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
        self.chain_names = chain_build_names(self.chain)
        self.spec = default_spec_path()
        self.build_dir = self._find_build_dir()
        self.this_layer = os.environ.get("KERNELSTACKS_LAYER") or (self.chain_names or [""])[0]
        self.tool_options = list(tool_options)
        self.layers = layers_from_chain(self.chain)
        self.stack_name = os.environ.get("KERNELSTACKS_STACK", "")
        self.source_note = "this kernel's chain only (loading the whole stack…)"
        self.selected: str | None = None
        self.tree_rows: dict[str, TreeRow] = {}
        self.table_rows: list[PackageRow] = []
        self.all_rows: list[PackageRow] = []
        self.run: ToolRun | None = None
        self.run_state: RunState | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()
        self._log_lock = threading.Lock()
        self._log_lines: list[str] = []
        self._packages: dict[str, list[PackageRow]] = {}
        self._elsewhere: dict[str, list[str]] | None = None
        self._make_widgets()
        self._render_tree()
        self._select_default()
        self._check_registered()
        if load and self.spec is not None:
            self.refresh()

    # -- construction ----------------------------------------------------------------------------

    def _find_build_dir(self) -> Path | None:
        """Where the stack's layers live: the kernel's setting, else ``_build`` by the spec."""
        value = os.environ.get("KERNELSTACKS_BUILD_DIR")
        if value:
            return Path(value)
        if self.spec is not None:
            return self.spec.parent / "_build"
        return Path(self.chain[0].path).parent if self.chain else None

    def _make_widgets(self) -> None:
        """Create every widget once; later updates only change their values."""
        self.header = widgets.HTML()
        self.tree = widgets.VBox(layout=widgets.Layout(min_width="22em", margin="0 1em 0 0"))
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
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="idle")
        self.status = widgets.Label(value="")
        self.notice = widgets.HTML()
        self.log = widgets.Textarea(
            value="", disabled=True, rows=8, layout=widgets.Layout(width="100%")
        )
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
                "KERNELSTACKS_SPEC is not set: this kernel was not registered by kernelstacks,"
                " so Lock and Build are unavailable"
            )
        if not self.chain:
            self._set_status("this interpreter is not a kernelstacks layer (no layer metadata)")

    # -- tree ------------------------------------------------------------------------------------

    def _render_header(self) -> None:
        chain = " → ".join(html.escape(n) for n in self.chain_names) or "(none)"
        name = html.escape(self.stack_name or "kernelstacks")
        spec = html.escape(str(self.spec or "no stack file"))
        self.header.value = (
            f"<b>{name}</b> <span style='{DIM}'>{spec}</span><br>"
            f"{CHAIN_MARK} this kernel: {chain} <span style='{DIM}'>"
            f"· {html.escape(self.source_note)}</span>"
        )

    def _render_tree(self) -> None:
        """Rebuild the tree's rows from ``self.layers`` (after a load or a build)."""
        with self._lock:
            rows: dict[str, TreeRow] = {}
            children: list[widgets.Widget] = []
            known = {kind for kind, _title in KINDS}
            groups = [*KINDS, ("other", "Other layers")]
            for kind, title in groups:
                members = [
                    layer
                    for layer in self.layers
                    if layer.kind == kind or (kind == "other" and layer.kind not in known)
                ]
                if not members:
                    continue
                children.append(widgets.HTML(f"<b>{title}</b>"))
                for layer in members:
                    rows[layer.build_name] = self._tree_row(layer)
                    children.append(rows[layer.build_name].box)
            if not children:
                children.append(widgets.HTML(f"<i style='{DIM}'>no layers found</i>"))
            self.tree_rows = rows
            self.tree.children = children
            self._render_header()
            self._mark_selected()

    def _tree_row(self, layer: StackLayer) -> TreeRow:
        label = f"{CHAIN_MARK} {layer.build_name}" if layer.in_chain else layer.build_name
        button = widgets.Button(
            description=label,
            tooltip="in this kernel's chain" if layer.in_chain else "not used by this kernel",
            layout=widgets.Layout(width="auto", min_width="12em"),
        )
        button.style.font_weight = "bold" if layer.in_chain else "normal"
        button.on_click(lambda _b, name=layer.build_name: self.select_layer(name))
        extra = ""
        if layer.deploy_name and layer.deploy_name != layer.build_name:
            extra += f" → {html.escape(layer.deploy_name)}"
        if layer.lower_layers:
            extra += f" <span style='{DIM}'>on {html.escape(', '.join(layer.lower_layers))}</span>"
        badge = widgets.HTML(f"{lock_badge(layer)}{extra}")
        box = widgets.HBox([button, badge], layout=widgets.Layout(margin="0 0 0 1em"))
        return TreeRow(layer, button, badge, box)

    def _mark_selected(self) -> None:
        for name, row in self.tree_rows.items():
            row.button.button_style = "info" if name == self.selected else ""

    def _layer(self, name: str) -> StackLayer | None:
        """A layer by build name, name or deploy name."""
        for attr in ("build_name", "name", "deploy_name"):
            for layer in self.layers:
                if name and getattr(layer, attr) == name:
                    return layer
        return None

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

    def _view_chain(self, layer: StackLayer) -> tuple[list[LayerInfo], int]:
        """The chain a layer is seen through: this kernel's, else the layer's own."""
        if layer.build_name in self.chain_names:
            return self.chain, self.chain_names.index(layer.build_name)
        names = [layer.build_name, *layer.lower_layers]
        return [self._layer_info(name) for name in names], 0

    def _layer_info(self, build_name: str) -> LayerInfo:
        """Where a layer's files are: this kernel's chain, else the build directory."""
        if build_name in self.chain_names:
            return self.chain[self.chain_names.index(build_name)]
        record = self._layer(build_name)
        kind = record.kind if record else ""
        candidates = [record.deploy_name] if record and record.deploy_name else []
        for folder in [*candidates, build_name]:
            path = self.build_dir / folder if self.build_dir else Path(folder)
            if path.is_dir():
                return layer_info_at(path, kind)
        missing = self.build_dir / build_name if self.build_dir else Path(build_name)
        return layer_info_at(missing, kind)

    def _elsewhere_index(self) -> dict[str, list[str]]:
        """name -> every layer of the stack holding it (for the "shared" marks)."""
        if self._elsewhere is None:
            index: dict[str, list[str]] = {}
            for layer in list(self.layers):
                info = self._layer_info(layer.build_name)
                for dist in layer_dists(info, 0, with_size=False):
                    index.setdefault(dist.name, []).append(layer.build_name)
            self._elsewhere = index
        return self._elsewhere

    def packages(self, name: str) -> list[PackageRow]:
        """Every package of one layer, as table rows (cached until the next build/refresh)."""
        with self._lock:
            layer = self._layer(name)
            if layer is None:
                return []
            if layer.build_name not in self._packages:
                chain, index = self._view_chain(layer)
                dists = [d for d in inventory(chain, with_size=False) if d.layer_index == index]
                sizes = {d.name: d.size for d in layer_dists(chain[index], index)}
                rows = package_rows(dists, sizes, self._elsewhere_index(), layer.build_name)
                self._packages[layer.build_name] = rows
            return self._packages[layer.build_name]

    def _empty_text(self, layer: StackLayer) -> str:
        info = self._view_chain(layer)
        where = info[0][info[1]]
        if not where.present or not Path(where.path).is_dir():
            return f"{layer.build_name} is not built (no {where.path})"
        if layer.kind == "runtime":
            return "no packages in the runtime's site-packages (standard library only)"
        return "no packages in this layer"

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
            self.table_caption.value = self._caption(layer, text)
            empty = self._empty_text(layer) if not self.all_rows else "no package matches"
            self.package_table.value = render_table(self.table_rows, empty)

    def _caption(self, layer: StackLayer, text: str) -> str:
        total = len(self.all_rows)
        count = f"{len(self.table_rows)} of {total}" if text else str(total)
        size = human_size(sum(row.size for row in self.all_rows))
        view = "as this kernel sees it" if layer.in_chain else "as its own chain sees it"
        return (
            f"<b>{html.escape(layer.build_name)}</b>: {count} package{'' if total == 1 else 's'}, "
            f"{size} "
            f"<span style='{DIM}'>({view}; ◆ also in another layer, ✕ shadowed by a layer "
            "earlier in sys.path)</span>"
        )

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
        document = JsonDocument()
        other: list[str] = []
        run = ToolRun(["show", str(self.spec), "--json"], on_line=self._collect(document, other))
        try:
            run.run()
        except Exception as exc:  # the tool cannot even start: keep the chain
            self._show_failed(f"{type(exc).__name__}: {exc}", other)
            return
        if document.document and "layers" in document.document:
            self._apply_stack(document.document)
        else:
            reason = document.error or (other[-1] if other else f"exit status {run.returncode}")
            self._show_failed(reason, other)

    @staticmethod
    def _collect(document: JsonDocument, other: list[str]) -> Callable[[str], None]:
        def on_line(line: str) -> None:
            if not document.feed(line):
                other.append(line)

        return on_line

    def _apply_stack(self, document: dict[str, Any]) -> None:
        with self._lock:
            self.layers = layers_from_show(document, self.chain_names) or self.layers
            self.stack_name = str(document.get("stack") or self.stack_name)
            self.source_note = "the whole stack, from kernelstacks show"
            if self.run is None and self.status.value.startswith("showing this kernel's"):
                self._set_status("")
            self._packages.clear()
            self._elsewhere = None
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
        args = ["lock", str(self.spec), "--json", "--if-needed", *self._common_options()]
        return self._start("lock", args)

    def build(self) -> threading.Thread | None:
        """Build in the background (``--lock-if-needed``; unchanged layers are skipped)."""
        args = ["build", str(self.spec), "--json", "--lock-if-needed", *self._common_options()]
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
        with self._log_lock:
            self._log_lines = []
            self.log.value = ""
        self.notice.value = ""
        self.progress.bar_style = ""
        self.progress.value = 0
        self.progress.max = 1
        self.progress.description = action
        self._set_status(f"{action}: starting kernelstacks…")

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
        state = self.run_state
        kind = event.get("event")
        if kind == "start":
            self.progress.value = 0
            self.progress.max = max(1, int(event.get("total") or 1))
            self.progress.description = str(event.get("action") or self.progress.description)
        elif kind == "layer_started":
            self._set_status(f"{event.get('action', '')} {event.get('layer', '')}…")
        elif kind == "layer_finished":
            self.progress.value = min(self.progress.max, self.progress.value + 1)
            if state is not None:
                state.statuses[str(event.get("layer"))] = str(event.get("status"))
        elif kind == "error" and state is not None:
            layer = event.get("layer")
            state.errors.append(f"{layer + ': ' if layer else ''}{event.get('message', '')}")
        self._log(format_event(event))

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
        ok, text = run_summary(run, state)
        self.progress.bar_style = "success" if ok else "danger"
        if ok:
            self.progress.value = self.progress.max
        self._log(text)
        self._set_status(text)
        rebuilt = [n for n in self.chain_names if state.statuses.get(n) == "built"]
        if rebuilt:
            self.notice.value = (
                f"<b>This kernel's layers were rebuilt ({html.escape(', '.join(rebuilt))}).</b> "
                f"{RESTART_NOTICE}"
            )
        with self._lock:
            self._packages.clear()
            self._elsewhere = None
            self._render_table()

    # -- log, status, waiting --------------------------------------------------------------------

    def _log(self, line: str) -> None:
        with self._log_lock:
            self._log_lines.append(line)
            del self._log_lines[:-MAX_LOG_LINES]
            self.log.value = "\n".join(self._log_lines)

    def _set_status(self, text: str) -> None:
        self.status.value = text

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
