"""Validation of stack files: every problem, each naming file, layer, key and line.

The loader walks the document in passes (syntax; shape and types in :mod:`~.tables`; names,
references, dependency graph and platforms in :mod:`~.graph`; modules in :mod:`~.modules`;
package indexes in :mod:`~.indexes`; the ``[tool]`` tables in :mod:`~.settings`) and keeps
going after a problem so that one run reports all of them. Later passes only look at what
earlier passes found sound, so one mistake is reported once. Problems come out sorted by line,
in the order found within a line.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import Problem, SpecError
from kernelstacks.spec import graph, indexes, kernel_settings, modules, settings, tables
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.locator import Locator
from kernelstacks.spec.model import LayerSpec, StackSpec
from kernelstacks.spec.problems import LayersByName, ProblemLog, RawLayer

_TOML_POS_RE = re.compile(r"\(at line (\d+), column (\d+)\)")


class SpecLoader:
    """Loads one stack file; :meth:`load` returns a StackSpec or raises SpecError."""

    def __init__(self, path: Path):
        self.path = path
        self.log = ProblemLog(path)

    def load(self) -> StackSpec:
        """Run every pass; raise SpecError listing all problems if any were found."""
        log = self.log
        doc = self._parse()
        raw = tables.check_document(doc, log)
        uv_settings = settings.uv_settings(doc, self.path.parent, log)
        stack_settings = settings.tool_settings(doc, log)
        graph.check_names(raw, log)
        by_name = graph.index_by_name(raw)
        graph.check_references(raw, by_name, log)
        graph.check_graph(raw, by_name, log)
        graph.check_platforms(raw, by_name, log)
        modules.check_modules(
            raw,
            self.path.parent,
            log,
            allow_outside=stack_settings.get("modules_outside_stack") is True,
        )
        self._check_indexes(doc, raw, by_name, uv_settings)
        settings.check_kernel_patterns(raw, stack_settings, log)
        kernel_settings.check_kernelspec_settings(raw, stack_settings, self.path.parent, log)
        if log.problems:
            raise SpecError(log.in_line_order())
        return StackSpec(
            path=self.path,
            name=stack_settings.get("name") or self._default_stack_name(),
            layers=self._build_layers(raw, by_name, stack_settings),
            uv_settings=uv_settings,
            settings=stack_settings,
            warnings=log.warnings,
        )

    def _check_indexes(
        self,
        doc: dict[str, Any],
        raw: list[RawLayer],
        by_name: LayersByName,
        uv_settings: dict[str, Any],
    ) -> None:
        """Pass 8: named indexes, what layers say about them, and their inheritance."""
        where = settings.uv_settings_label(doc)
        known = indexes.index_names(uv_settings, self.log, where)
        indexes.check_common_sources(uv_settings, known, self.log, where)
        indexes.check_layer_indexes(raw, known, self.log)
        indexes.resolve_package_indexes(raw, by_name, self.log)

    def _default_stack_name(self) -> str:
        """Folder name of the stack file, made safe for kernel names."""
        base = self.path.resolve().parent.name or "stack"
        return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-") or "stack"

    # -- pass 1: syntax ------------------------------------------------------------------------

    def _parse(self) -> dict[str, Any]:
        """Read and parse the TOML, turning every failure into one located problem."""
        file = self.log.file
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError([Problem(file, "stack file not found")]) from None
        except IsADirectoryError:
            raise SpecError([Problem(file, "is a directory, not a stack file")]) from None
        except UnicodeDecodeError as exc:
            raise SpecError([Problem(file, f"not UTF-8 text ({exc.reason})")]) from None
        except OSError as exc:
            raise SpecError([Problem(file, f"cannot read: {exc.strerror}")]) from None
        self.log.locator = Locator(text)
        try:
            return tomllib.loads(text)
        except RecursionError:
            raise SpecError(
                [
                    Problem(
                        file,
                        "TOML syntax error: arrays or inline tables are nested too deeply to "
                        "read (a stack file needs at most a few levels)",
                        line=self._deepest_line(text),
                    )
                ]
            ) from None
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            pos = _TOML_POS_RE.search(message)
            line, col = (int(pos.group(1)), int(pos.group(2))) if pos else (None, None)
            message = _TOML_POS_RE.sub("", message).strip()
            raise SpecError(
                [Problem(file, f"TOML syntax error: {message}", line=line, column=col)]
            ) from None

    @staticmethod
    def _deepest_line(text: str) -> int | None:
        """The line where bracket nesting is deepest: where to look for the runaway value."""
        depth = best = 0
        where: int | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            for char in line:
                depth += char in "[{"
                depth -= char in "]}"
                if depth > best:
                    best, where = depth, number
        return where

    # -- result --------------------------------------------------------------------------------

    def _build_layers(
        self, raw: list[RawLayer], by_name: LayersByName, stack_settings: dict[str, Any]
    ) -> dict[str, LayerSpec]:
        """Turn validated raw tables into LayerSpec objects keyed by build name."""
        runtimes = by_name[Kind.RUNTIME]
        root = self.path.parent
        layers: dict[str, LayerSpec] = {}
        for r in raw:
            d = dict(r.data)
            if r.kind is Kind.APPLICATION and settings.is_kernel_app(r.name, stack_settings):
                d["requirements"] = settings.with_kernel_packages(d.get("requirements", []))
            runtime = r.name if r.kind is Kind.RUNTIME else r.runtime or ""
            impl = runtimes[runtime].data["python_implementation"]
            launch = d.get("launch_module")
            layers[r.build_name] = LayerSpec(
                kind=r.kind,
                name=r.name,
                requirements=tuple(d.get("requirements", [])),
                python_implementation=impl,
                runtime=runtime,
                platforms=r.platforms,
                frameworks=r.frameworks,
                lower=r.lower,
                versioned=d.get("versioned", False),
                launch_module=(root / launch) if launch else None,
                support_modules=tuple(root / s for s in d.get("support_modules", [])),
                linux_target=d.get("linux_target"),
                macosx_target=d.get("macosx_target"),
                dynlib_exclude=tuple(d.get("dynlib_exclude", [])),
                priority_indexes=tuple(d.get("priority_indexes", [])),
                package_indexes={p: i for p, (i, _) in r.package_indexes.items()},
                index_overrides=dict(d.get("index_overrides", {})),
                index=r.index,
            )
        return layers
