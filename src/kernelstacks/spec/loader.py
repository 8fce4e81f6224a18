"""Validation of stack files: every problem, each naming file, layer, key and line.

The loader walks the document in passes (syntax, shape and types, names, references, dependency
graph, platforms, modules) and keeps going after a problem so that one run reports all of them.
Later passes only look at what earlier passes found sound, so one mistake is reported once.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kernelstacks._support.errors import Problem, SpecError, did_you_mean
from kernelstacks.spec.c3 import C3Conflict, find_cycle, linearize
from kernelstacks.spec.fields import (
    DEPRECATED_FIELDS,
    FIELDS_BY_NAME,
    IMPLEMENTATION_RE,
    LINUX_TARGET_RE,
    MACOSX_TARGET_RE,
    NAME_RE,
    PLATFORMS,
    SECTIONS,
    TOOL_FIELDS_BY_NAME,
    TOP_LEVEL_KEYS,
    Kind,
    check_requirement,
    fields_for,
)
from kernelstacks.spec.model import LayerSpec, StackSpec, matches, module_name

_TOML_POS_RE = re.compile(r"\(at line (\d+), column (\d+)\)")
_HEADER_RE = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]\s*(#.*)?$")
_TABLE_RE = re.compile(r"^\s*\[")


class _Locator:
    """Finds the line of a layer table or one of its keys in the source text.

    tomllib gives no positions, so we scan the text for ``[[section]]`` headers; good enough to
    point an editor at the right line for the common, hand-written layout.
    """

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.spans: dict[tuple[str, int], tuple[int, int]] = {}
        counts: dict[str, int] = {}
        current: tuple[str, int] | None = None
        for number, line in enumerate(self.lines, start=1):
            header = _HEADER_RE.match(line)
            if header or _TABLE_RE.match(line):
                if current:
                    self.spans[current] = (self.spans[current][0], number - 1)
                    current = None
                if header:
                    section = header.group(1).strip("\"' ")
                    index = counts.get(section, 0)
                    counts[section] = index + 1
                    current = (section, index)
                    self.spans[current] = (number, len(self.lines))
        if current:
            self.spans[current] = (self.spans[current][0], len(self.lines))

    def line_of(self, section: str, index: int, key: str | None) -> int | None:
        """Line of ``key`` in the ``index``-th ``[[section]]`` table (or of its header)."""
        span = self.spans.get((section, index))
        if span is None:
            return None
        if key:
            key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
            for number in range(span[0], span[1] + 1):
                if key_re.match(self.lines[number - 1]):
                    return number
        return span[0]


@dataclass
class _RawLayer:
    """A layer table that passed the per-table checks, before references are resolved."""

    kind: Kind
    index: int
    data: dict[str, Any]
    label: str
    ok: bool = True
    runtime: str | None = None
    platforms: tuple[str, ...] = ()
    lower: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = field(default_factory=tuple)
    bad_keys: set[str] = field(default_factory=set)
    refs_ok: bool = False

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def name_ok(self) -> bool:
        name = self.data.get("name")
        return isinstance(name, str) and bool(NAME_RE.match(name))


class SpecLoader:
    """Loads one stack file; :meth:`load` returns a StackSpec or raises SpecError."""

    def __init__(self, path: Path):
        self.path = path
        self.file = str(path)
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.locator = _Locator("")

    # -- reporting -----------------------------------------------------------------------------

    def problem(
        self, message: str, layer: _RawLayer | None = None, key: str | None = None, **kw: Any
    ) -> None:
        """Record a problem, located at the layer's key when we can find it."""
        line = kw.get("line")
        if line is None and layer is not None:
            line = self.locator.line_of(layer.kind.section, layer.index, key)
        label = layer.label if layer is not None else kw.get("label")
        self.problems.append(Problem(self.file, message, label, key, line, kw.get("column")))
        if layer is not None:
            layer.ok = False

    # -- entry point ---------------------------------------------------------------------------

    def load(self) -> StackSpec:
        """Run every pass; raise SpecError listing all problems if any were found."""
        doc = self._parse()
        raw = self._check_document(doc)
        uv_settings = self._uv_settings(doc)
        settings = self._tool_settings(doc)
        self._check_names(raw)
        by_name = self._index_by_name(raw)
        self._check_references(raw, by_name)
        self._check_graph(raw, by_name)
        self._check_platforms(raw, by_name)
        self._check_modules(raw)
        self._check_indexes(raw, uv_settings)
        self._check_kernel_patterns(raw, settings)
        if self.problems:
            raise SpecError(sorted(self.problems, key=lambda p: (p.line is None, p.line or 0)))
        return StackSpec(
            path=self.path,
            name=settings.get("name") or self._default_stack_name(),
            layers=self._build_layers(raw, by_name, settings),
            uv_settings=uv_settings,
            settings=settings,
            warnings=self.warnings,
        )

    @staticmethod
    def _index_by_name(raw: list[_RawLayer]) -> dict[Kind, dict[str, _RawLayer]]:
        """Layers with a usable name, per kind (first wins on duplicates).

        Layers with other problems stay in the index so that references to them are not
        reported again as "unknown".
        """
        index: dict[Kind, dict[str, _RawLayer]] = {k: {} for k in Kind}
        for r in raw:
            name = r.data.get("name")
            if isinstance(name, str) and NAME_RE.match(name):
                index[r.kind].setdefault(name, r)
        return index

    def _default_stack_name(self) -> str:
        """Folder name of the stack file, made safe for kernel names."""
        base = self.path.resolve().parent.name or "stack"
        return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-") or "stack"

    # -- pass 1: syntax ------------------------------------------------------------------------

    def _parse(self) -> dict[str, Any]:
        """Read and parse the TOML, turning every failure into one located problem."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError([Problem(self.file, "stack file not found")]) from None
        except IsADirectoryError:
            raise SpecError([Problem(self.file, "is a directory, not a stack file")]) from None
        except UnicodeDecodeError as exc:
            raise SpecError([Problem(self.file, f"not UTF-8 text ({exc.reason})")]) from None
        except OSError as exc:
            raise SpecError([Problem(self.file, f"cannot read: {exc.strerror}")]) from None
        self.locator = _Locator(text)
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            pos = _TOML_POS_RE.search(message)
            line, col = (int(pos.group(1)), int(pos.group(2))) if pos else (None, None)
            message = _TOML_POS_RE.sub("", message).strip()
            raise SpecError(
                [Problem(self.file, f"TOML syntax error: {message}", line=line, column=col)]
            ) from None

    # -- pass 2: shape and types ---------------------------------------------------------------

    def _check_document(self, doc: dict[str, Any]) -> list[_RawLayer]:
        """Top-level keys, then each layer table's keys and value types."""
        for key in doc:
            if key not in TOP_LEVEL_KEYS:
                hint = did_you_mean(key, TOP_LEVEL_KEYS)
                self.problem(f"unknown top-level key '{key}'{hint}", key=key, label="top level")
        if not any(section in doc for section in SECTIONS):
            self.problem("no layers: define at least one [[runtimes]] table", label="top level")
        raw: list[_RawLayer] = []
        for section, kind in SECTIONS.items():
            tables = doc.get(section, [])
            if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
                self.problem(
                    f"'{section}' must be an array of tables, written [[{section}]]",
                    key=section,
                    label="top level",
                )
                continue
            for index, table in enumerate(tables):
                raw.append(self._check_table(kind, index, table))
        return raw

    def _label(self, kind: Kind, index: int, table: dict[str, Any]) -> str:
        name = table.get("name")
        if isinstance(name, str) and name:
            return f"{kind.value} '{name}'"
        return f"{kind.section}[{index}] (table {index + 1} of [[{kind.section}]])"

    def _check_table(self, kind: Kind, index: int, table: dict[str, Any]) -> _RawLayer:
        """Keys known for the kind, required keys present, values of the right type."""
        layer = _RawLayer(kind, index, dict(table), self._label(kind, index, table))
        allowed = fields_for(kind)
        self._handle_deprecated(layer)
        for key in list(layer.data):
            if key in allowed:
                continue
            if key in FIELDS_BY_NAME:
                where = sorted(k.section for k in FIELDS_BY_NAME[key].kinds)
                self.problem(
                    f"'{key}' is not valid in [[{kind.section}]] (only in "
                    + ", ".join(f"[[{w}]]" for w in where)
                    + ")",
                    layer,
                    key,
                )
            else:
                hint = did_you_mean(key, allowed)
                self.problem(f"unknown key '{key}'{hint}", layer, key)
            layer.data.pop(key, None)
        for name, fld in allowed.items():
            if name not in layer.data:
                if fld.required:
                    self.problem(f"missing required key '{name}'", layer, name)
                continue
            error = fld.check(layer.data[name])
            if error:
                self.problem(error, layer, name)
                layer.data.pop(name)
                layer.bad_keys.add(name)
        self._check_values(layer)
        return layer

    def _handle_deprecated(self, layer: _RawLayer) -> None:
        """Accept old venvstacks keys the way venvstacks does, with a warning."""
        data = layer.data
        if "build_requirements" in data:
            data.pop("build_requirements")
            self.warnings.append(f"{layer.label}: 'build_requirements' is ignored (deprecated)")
        if "fully_versioned_name" in data and layer.kind is Kind.RUNTIME:
            if "python_implementation" in data:
                self.problem(
                    "set 'python_implementation' only ('fully_versioned_name' is its old name)",
                    layer,
                    "fully_versioned_name",
                )
                data.pop("fully_versioned_name")
            else:
                data["python_implementation"] = data.pop("fully_versioned_name")
                self.warnings.append(
                    f"{layer.label}: 'fully_versioned_name' is deprecated; "
                    f"{DEPRECATED_FIELDS['fully_versioned_name']}"
                )

    def _check_values(self, layer: _RawLayer) -> None:
        """Value-level checks once the types are right."""
        data = layer.data
        name = data.get("name")
        if isinstance(name, str) and not NAME_RE.match(name):
            hint = ""
            if "@" in name:
                hint = " ('@' separates the lock version in deploy names; use e.g. '-')"
            self.problem(
                f"invalid name {name!r}: use only letters, digits, '.', '_' and '-'{hint}",
                layer,
                "name",
            )
        for i, req in enumerate(data.get("requirements", [])):
            error = check_requirement(req)
            if error:
                self.problem(f"item {i + 1}: {error}", layer, "requirements")
        impl = data.get("python_implementation")
        if isinstance(impl, str) and not IMPLEMENTATION_RE.match(impl):
            self.problem(
                f'invalid python_implementation {impl!r}: expected "cpython@X.Y" or '
                '"cpython@X.Y.Z" (for example "cpython@3.12")',
                layer,
                "python_implementation",
            )
        for plat in data.get("platforms", []):
            if plat not in PLATFORMS:
                self.problem(
                    f"unknown platform '{plat}'{did_you_mean(plat, PLATFORMS)} "
                    f"(known: {', '.join(PLATFORMS)})",
                    layer,
                    "platforms",
                )
        target = data.get("linux_target")
        if isinstance(target, str) and not LINUX_TARGET_RE.match(target):
            self.problem(
                f'invalid linux_target {target!r}: expected "glibc@X.Y" (e.g. "glibc@2.28")',
                layer,
                "linux_target",
            )
        target = data.get("macosx_target")
        if isinstance(target, str) and not MACOSX_TARGET_RE.match(target):
            self.problem(
                f'invalid macosx_target {target!r}: expected a version such as "12.0"',
                layer,
                "macosx_target",
            )
        if data.get("frameworks") == [] and "runtime" not in data:
            self.problem(
                "'frameworks' is empty: name at least one framework, or use 'runtime'",
                layer,
                "frameworks",
            )

    # -- [tool] tables -------------------------------------------------------------------------

    def _tool(self, doc: dict[str, Any]) -> dict[str, Any]:
        tool = doc.get("tool", {})
        if not isinstance(tool, dict):
            self.problem("'tool' must be a table", key="tool", label="top level")
            return {}
        return tool

    def _uv_settings(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``[tool.uv]``, or a ``venvstacks.uv.toml`` beside the spec (as venvstacks reads)."""
        tool = self._tool(doc)
        if "uv" in tool:
            if not isinstance(tool["uv"], dict):
                self.problem("'tool.uv' must be a table", key="tool.uv", label="top level")
                return {}
            return dict(tool["uv"])
        side = self.path.parent / "venvstacks.uv.toml"
        if side.is_file():
            try:
                return tomllib.loads(side.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
                self.problems.append(Problem(str(side), f"cannot read uv settings: {exc}"))
        return {}

    def _tool_settings(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Validate ``[tool.kernelstacks]``: our own keys only."""
        tool = self._tool(doc)
        ours = tool.get("kernelstacks", {})
        label = "[tool.kernelstacks]"
        if not isinstance(ours, dict):
            self.problem("must be a table", key="tool.kernelstacks", label=label)
            return {}
        settings: dict[str, Any] = {}
        for key, value in ours.items():
            fld = TOOL_FIELDS_BY_NAME.get(key)
            if fld is None:
                hint = did_you_mean(key, TOOL_FIELDS_BY_NAME)
                self.problem(f"unknown key '{key}'{hint}", key=key, label=label)
                continue
            error = fld.check(value)
            if error:
                self.problem(error, key=key, label=label)
                continue
            settings[key] = value
        name = settings.get("name")
        if isinstance(name, str) and not NAME_RE.match(name):
            self.problem(
                f"invalid stack name {name!r}: use only letters, digits, '.', '_' and '-'",
                key="name",
                label=label,
            )
        return settings

    # -- pass 3: names -------------------------------------------------------------------------

    def _check_names(self, raw: list[_RawLayer]) -> None:
        """Names unique per kind, and build names unique across the stack."""
        seen: dict[str, _RawLayer] = {}
        for layer in raw:
            name = layer.data.get("name")
            if not isinstance(name, str) or not NAME_RE.match(name):
                layer.ok = False
                continue
            build = layer.kind.build_name(name)
            if build in seen:
                first = seen[build]
                self.problem(
                    f"duplicate layer name '{name}' (build name '{build}' is already used by "
                    f"{first.label}, table {first.index + 1} of [[{first.kind.section}]])",
                    layer,
                    "name",
                )
            else:
                seen[build] = layer

    # -- pass 4: references --------------------------------------------------------------------

    def _check_references(self, raw: list[_RawLayer], by_name: dict[Kind, dict]) -> None:
        """``runtime``/``frameworks`` exist, are of the right kind, and exactly one is set."""
        runtimes, frameworks = by_name[Kind.RUNTIME], by_name[Kind.FRAMEWORK]
        for layer in raw:
            if layer.kind is Kind.RUNTIME:
                layer.refs_ok = True
                continue
            if {"runtime", "frameworks"} & layer.bad_keys:
                continue
            data = layer.data
            has_rt, has_fw = "runtime" in data, "frameworks" in data
            if has_rt and has_fw:
                self.problem(
                    "set either 'runtime' or 'frameworks', not both (the runtime of "
                    "'frameworks' is implied)",
                    layer,
                    "frameworks",
                )
                continue
            if not has_rt and not has_fw:
                self.problem(
                    "missing 'runtime' or 'frameworks': say which layer this one builds on",
                    layer,
                )
                continue
            ok = not has_rt or self._check_ref(layer, "runtime", data["runtime"], runtimes, by_name)
            for fw in data.get("frameworks", []):
                if fw == data.get("name") and layer.kind is Kind.FRAMEWORK:
                    self.problem(f"dependency cycle: '{fw}' -> '{fw}'", layer, "frameworks")
                    ok = False
                    continue
                ok = self._check_ref(layer, "frameworks", fw, frameworks, by_name) and ok
            fws = data.get("frameworks", [])
            for dup in sorted({f for f in fws if fws.count(f) > 1}):
                self.problem(f"framework '{dup}' is listed more than once", layer, "frameworks")
                ok = False
            layer.refs_ok = ok and bool(fws) if has_fw else ok

    def _check_ref(
        self,
        layer: _RawLayer,
        key: str,
        target: str,
        pool: dict[str, _RawLayer],
        by_name: dict[Kind, dict],
    ) -> bool:
        """Report a reference to a missing or wrong-kind layer; True when it is fine."""
        if target in pool:
            return True
        wanted = "runtime" if key == "runtime" else "framework"
        other = [k for k in Kind if target in by_name[k]]
        if other:
            message = f"'{target}' is a{'n' if other[0] is Kind.APPLICATION else ''} "
            message += f"{other[0].value} layer, not a {wanted} layer"
        else:
            message = f"unknown {wanted} '{target}'{did_you_mean(target, pool)}"
            if pool:
                message += f" ({wanted}s defined: {', '.join(pool)})"
        self.problem(message, layer, key)
        return False

    # -- pass 5: graph: cycles, runtimes, C3 ---------------------------------------------------

    def _check_graph(self, raw: list[_RawLayer], by_name: dict[Kind, dict]) -> None:
        """Detect cycles, infer each layer's runtime, linearise lower layers with C3."""
        frameworks = by_name[Kind.FRAMEWORK]

        def parents(name: str) -> list[str]:
            layer = frameworks.get(name)
            if layer is None or not layer.refs_ok:
                return []
            return list(layer.data.get("frameworks", []))

        cycle = find_cycle(list(frameworks), parents)
        if cycle:
            shown = " -> ".join(f"'{c}'" for c in cycle)
            for name in dict.fromkeys(cycle):
                self.problem(f"dependency cycle: {shown}", frameworks[name], "frameworks")
            return
        for layer in raw:
            self._resolve_runtime(layer, frameworks)
        for layer in raw:
            if layer.refs_ok and (layer.kind is Kind.RUNTIME or layer.runtime is not None):
                self._linearize(layer, frameworks, parents)

    def _resolve_runtime(self, layer: _RawLayer, frameworks: dict[str, _RawLayer]) -> None:
        """A layer on frameworks uses their runtime; they must all agree."""
        if layer.runtime is not None or not layer.refs_ok or layer.kind is Kind.RUNTIME:
            return
        if "runtime" in layer.data:
            layer.runtime = layer.data["runtime"]
            return
        found: dict[str, str] = {}
        for fw_name in layer.data.get("frameworks", []):
            fw = frameworks[fw_name]
            self._resolve_runtime(fw, frameworks)
            if fw.runtime is None:
                return
            found[fw_name] = fw.runtime
        if len(set(found.values())) > 1:
            shown = ", ".join(f"'{f}' uses '{r}'" for f, r in found.items())
            self.problem(f"frameworks use different runtimes ({shown})", layer, "frameworks")
            return
        layer.runtime = next(iter(found.values()), None)

    def _linearize(self, layer: _RawLayer, frameworks: dict[str, _RawLayer], parents: Any) -> None:
        """Lower layers in sys.path order: C3 over frameworks, then the runtime."""
        if layer.kind is Kind.RUNTIME:
            layer.lower = ()
            return
        if layer.runtime is None:
            return
        direct = list(layer.data.get("frameworks", []))
        try:
            order = linearize("\0self", lambda n: direct if n == "\0self" else parents(n))[1:]
        except C3Conflict as exc:
            shown = "; ".join("[" + ", ".join(o) + "]" for o in exc.orders if o)
            self.problem(
                f"C3 conflict: the framework orders {shown} cannot be merged into one "
                "consistent sys.path order; reorder 'frameworks' so every layer comes before "
                "the layers it builds on",
                layer,
                "frameworks",
            )
            return
        layer.lower = (*(f"framework-{n}" for n in order), layer.runtime)
        layer.frameworks = tuple(direct)

    # -- pass 6: platforms ---------------------------------------------------------------------

    def _check_platforms(self, raw: list[_RawLayer], by_name: dict[Kind, dict]) -> None:
        """Default to the lower layers' intersection; asking for more is an error."""
        index = {k.build_name(n): r for k in Kind for n, r in by_name[k].items()}
        done: set[str] = set()

        def resolve(layer: _RawLayer) -> tuple[str, ...] | None:
            build = layer.kind.build_name(layer.name)
            if build in done:
                return layer.platforms
            lowers = [index[n] for n in layer.lower if n in index]
            available = list(PLATFORMS)
            limiting: dict[str, str] = {}
            for low in lowers:
                plats = resolve(low)
                if plats is None:
                    return None
                for p in available:
                    if p not in plats:
                        limiting.setdefault(p, low.kind.build_name(low.name))
                available = [p for p in available if p in plats]
            asked = layer.data.get("platforms")
            if asked is None:
                layer.platforms = tuple(available)
            else:
                for p in asked:
                    if p in PLATFORMS and p not in available:
                        self.problem(
                            f"platform '{p}' is not built by lower layer '{limiting[p]}'",
                            layer,
                            "platforms",
                        )
                layer.platforms = tuple(dict.fromkeys(p for p in asked if p in available))
            done.add(build)
            return layer.platforms

        for layer in raw:
            if layer.name_ok and (layer.kind is Kind.RUNTIME or layer.lower):
                resolve(layer)

    # -- pass 7: launch and support modules ----------------------------------------------------

    def _check_modules(self, raw: list[_RawLayer]) -> None:
        """Modules exist, are importable names, and do not clash within an application."""
        for layer in raw:
            if layer.kind is not Kind.APPLICATION:
                continue
            names: dict[str, str] = {}
            launch = layer.data.get("launch_module")
            entries = [("launch_module", launch)] if isinstance(launch, str) else []
            entries += [("support_modules", s) for s in layer.data.get("support_modules", [])]
            for key, rel in entries:
                mod = self._check_module(layer, key, rel)
                if mod is None:
                    continue
                if mod in names:
                    self.problem(
                        f"module name '{mod}' from {rel!r} clashes with {names[mod]!r}: both "
                        "would install as the same module",
                        layer,
                        key,
                    )
                names[mod] = rel

    def _check_module(self, layer: _RawLayer, key: str, rel: str) -> str | None:
        """Check one module path; return its importable name when it is usable."""
        if not rel.strip():
            self.problem(f"'{key}' path is empty", layer, key)
            return None
        try:
            path = self.path.parent / rel
            is_file, is_dir = path.is_file(), path.is_dir()
        except (OSError, ValueError):
            is_file = is_dir = False
        if not (is_file or is_dir):
            self.problem(
                f"module {rel!r} not found (looked for {(self.path.parent / rel).absolute()})",
                layer,
                key,
            )
            return None
        if is_file and path.suffix != ".py":
            self.problem(f"module {rel!r} must be a .py file or a package folder", layer, key)
            return None
        name = module_name(path)
        if not name.isidentifier():
            self.problem(
                f"module {rel!r} gives the name '{name}', which Python cannot import "
                "(use letters, digits and '_')",
                layer,
                key,
            )
            return None
        if key == "launch_module" and is_dir and not (path / "__main__.py").is_file():
            self.problem(
                f"launch package {rel!r} has no __main__.py, so 'python -m {name}' cannot run it",
                layer,
                key,
            )
        return name

    # -- pass 8: index names -------------------------------------------------------------------

    def _check_indexes(self, raw: list[_RawLayer], uv_settings: dict[str, Any]) -> None:
        """``priority_indexes``/``package_indexes`` must name indexes from ``[tool.uv]``."""
        indexes = uv_settings.get("index", [])
        known = (
            [i["name"] for i in indexes if isinstance(i, dict) and "name" in i]
            if isinstance(indexes, list)
            else []
        )
        for layer in raw:
            used = [("priority_indexes", n) for n in layer.data.get("priority_indexes", [])]
            used += [("package_indexes", n) for n in layer.data.get("package_indexes", {}).values()]
            for key, name in used:
                if name not in known:
                    where = (
                        f" (defined: {', '.join(known)})"
                        if known
                        else (" (no named indexes are defined in [tool.uv] index)")
                    )
                    self.problem(
                        f"unknown index '{name}'{did_you_mean(name, known)}{where}", layer, key
                    )

    def _check_kernel_patterns(self, raw: list[_RawLayer], settings: dict[str, Any]) -> None:
        """Each ``[tool.kernelstacks] kernels`` pattern must match an application."""
        apps = [r.name for r in raw if r.kind is Kind.APPLICATION and r.name_ok]
        for pattern in settings.get("kernels", []):
            if not any(matches(a, Kind.APPLICATION.build_name(a), [pattern]) for a in apps):
                self.problem(
                    f"pattern '{pattern}' matches no application{did_you_mean(pattern, apps)}",
                    key="kernels",
                    label="[tool.kernelstacks]",
                )

    # -- result --------------------------------------------------------------------------------

    def _build_layers(
        self, raw: list[_RawLayer], by_name: dict[Kind, dict], settings: dict[str, Any]
    ) -> dict[str, LayerSpec]:
        """Turn validated raw tables into LayerSpec objects keyed by build name."""
        runtimes = by_name[Kind.RUNTIME]
        layers: dict[str, LayerSpec] = {}
        for r in raw:
            d = dict(r.data)
            if r.kind is Kind.APPLICATION and _is_kernel_app(r.name, settings):
                d["requirements"] = with_kernel_packages(d.get("requirements", []))
            runtime = r.name if r.kind is Kind.RUNTIME else r.runtime or ""
            impl = runtimes[runtime].data["python_implementation"]
            launch = d.get("launch_module")
            layers[r.kind.build_name(r.name)] = LayerSpec(
                kind=r.kind,
                name=r.name,
                requirements=tuple(d.get("requirements", [])),
                python_implementation=impl,
                runtime=runtime,
                platforms=r.platforms,
                frameworks=r.frameworks,
                lower=r.lower,
                versioned=d.get("versioned", False),
                launch_module=(self.path.parent / launch) if launch else None,
                support_modules=tuple(self.path.parent / s for s in d.get("support_modules", [])),
                linux_target=d.get("linux_target"),
                macosx_target=d.get("macosx_target"),
                dynlib_exclude=tuple(d.get("dynlib_exclude", [])),
                priority_indexes=tuple(d.get("priority_indexes", [])),
                package_indexes=dict(d.get("package_indexes", {})),
                index_overrides=dict(d.get("index_overrides", {})),
                index=r.index,
            )
        return layers


#: What ``[tool.kernelstacks] kernels`` adds to the applications it names.
KERNEL_PACKAGES = ("ipykernel", "ipywidgets")


def _is_kernel_app(name: str, settings: dict[str, Any]) -> bool:
    return matches(name, Kind.APPLICATION.build_name(name), settings.get("kernels") or [])


def with_kernel_packages(requirements: list[str]) -> list[str]:
    """Requirements plus ipykernel/ipywidgets unless already required (by any specifier).

    Adding them is safe even when a framework provides them: the app's lock pins them to the
    framework's version and leaves them out of the app layer.
    """
    present = {
        canonicalize_name(Requirement(r).name) for r in requirements if check_requirement(r) is None
    }
    return [*requirements, *(p for p in KERNEL_PACKAGES if p not in present)]
