"""What the validation passes share: the layer tables under check and the problems found so far.

The loader keeps going after a problem so that one run reports all of them; each pass records
problems in one :class:`ProblemLog`, and marks the :class:`RawLayer` it found fault with, so that
later passes only look at what earlier passes found sound (one mistake is reported once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import Problem
from kernelstacks.spec.fields import NAME_RE, Kind
from kernelstacks.spec.locator import Locator


@dataclass
class RawLayer:
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
    #: Effective ``package_indexes``: normalised package -> (index, build name that declared it).
    package_indexes: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The layer's name (only call once :attr:`name_ok`)."""
        return self.data["name"]

    @property
    def name_ok(self) -> bool:
        """Whether the table has a usable name."""
        name = self.data.get("name")
        return isinstance(name, str) and bool(NAME_RE.match(name))

    @property
    def build_name(self) -> str:
        """venvstacks build name (only call once :attr:`name_ok`)."""
        return self.kind.build_name(self.name)


#: Layers with a usable name, per kind (see :func:`kernelstacks.spec.graph.index_by_name`).
LayersByName = dict[Kind, dict[str, RawLayer]]


class ProblemLog:
    """Every problem and warning found in one stack file, each located as well as we can."""

    def __init__(self, path: Path):
        self.file = str(path)
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.locator = Locator("")

    def problem(
        self,
        message: str,
        layer: RawLayer | None = None,
        key: str | None = None,
        *,
        label: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        """Record a problem, located at the layer's key when we can find it.

        A problem with a layer also marks that layer as not ok.
        """
        if line is None and layer is not None:
            line = self.locator.line_of(layer.kind.section, layer.index, key)
        where = layer.label if layer is not None else label
        self.problems.append(Problem(self.file, message, where, key, line, column))
        if layer is not None:
            layer.ok = False

    def add(self, problem: Problem) -> None:
        """Record a problem located elsewhere (another file, say)."""
        self.problems.append(problem)

    def warn(self, message: str) -> None:
        """Record a warning: the stack still loads."""
        self.warnings.append(message)

    def in_line_order(self) -> list[Problem]:
        """The problems by line (unlocated ones last), in the order found within a line."""
        return sorted(self.problems, key=lambda p: (p.line is None, p.line or 0))


def bottom_up(raw: list[RawLayer], by_name: LayersByName) -> list[tuple[RawLayer, list[RawLayer]]]:
    """Layers whose lower layers are known, each with them, every lower layer first.

    A lower layer has fewer lower layers than any layer on it, so sorting by that count is
    bottom-up; no recursion, so thousand-layer chains are fine. Lower layers whose own graph
    was unsound (reported already) are included too, as layers with nothing below them.
    """
    index = {k.build_name(n): r for k in Kind for n, r in by_name[k].items()}
    todo = {id(r): r for r in raw if r.name_ok and (r.kind is Kind.RUNTIME or r.lower)}
    for layer in list(todo.values()):
        todo.update((id(index[n]), index[n]) for n in layer.lower if n in index)
    ordered = sorted(todo.values(), key=lambda r: len(r.lower))
    return [(r, [index[n] for n in r.lower if n in index]) for r in ordered]
