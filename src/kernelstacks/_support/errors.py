"""User-facing errors.

Everything a user can get wrong ends up as a :class:`KernelstacksError`; the CLI prints those as
readable messages and never as tracebacks.  Spec problems are collected as :class:`Problem`
records so that one run reports *every* problem, each naming the file, the layer and the key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class KernelstacksError(Exception):
    """An error meant for the user: its message is the whole story, no traceback needed."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stack file, located as precisely as we can."""

    file: str
    message: str
    layer: str | None = None
    key: str | None = None
    line: int | None = None
    column: int | None = None

    def location(self) -> str:
        """``file:line[:column]`` as editors and terminals recognise it."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        parts = [self.location()]
        if self.layer:
            parts.append(self.layer)
        if self.key:
            parts.append(f"key '{self.key}'")
        return ": ".join(parts) + f": {self.message}"

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form, for ``--json`` output."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "layer": self.layer,
            "key": self.key,
            "message": self.message,
        }


class SpecError(KernelstacksError):
    """A stack file that cannot be used; carries every problem found in it."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in the stack file:"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" suffix for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.5)
    return f"; did you mean '{matches[0]}'?" if matches else ""


def describe_error(exc: BaseException) -> str:
    """One readable line (or a few) for a failed step, without a traceback."""
    import subprocess

    if isinstance(exc, subprocess.CalledProcessError):
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-5:]
        cmd = " ".join(str(c) for c in exc.cmd[:4]) if isinstance(exc.cmd, list) else exc.cmd
        return f"command failed ({cmd} ...): " + " | ".join(tail)
    if isinstance(exc, KernelstacksError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
