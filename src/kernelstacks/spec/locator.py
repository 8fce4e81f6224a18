"""Line numbers for problems: where a layer table, or one of its keys, sits in the stack file.

tomllib gives no positions, so the text is scanned for ``[[section]]`` headers; good enough to
point an editor at the right line for the common, hand-written layout.
"""

from __future__ import annotations

import re

_HEADER_RE = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]\s*(#.*)?$")
_TABLE_RE = re.compile(r"^\s*\[")


class Locator:
    """Finds the line of a layer table or one of its keys in the source text."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.spans = _table_spans(self.lines)

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


def _table_spans(lines: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """``(section, index) -> (first line, last line)`` of every ``[[section]]`` table.

    A table ends where the next table header (``[[...]]`` or ``[...]``) begins.
    """
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    counts: dict[str, int] = {}
    current: tuple[str, int] | None = None
    for number, line in enumerate(lines, start=1):
        header = _HEADER_RE.match(line)
        if header or _TABLE_RE.match(line):
            if current:
                spans[current] = (spans[current][0], number - 1)
                current = None
            if header:
                section = header.group(1).strip("\"' ")
                index = counts.get(section, 0)
                counts[section] = index + 1
                current = (section, index)
                spans[current] = (number, len(lines))
    if current:
        spans[current] = (spans[current][0], len(lines))
    return spans
