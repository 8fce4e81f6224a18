"""Read what the kernel side needs from TOML files on Pythons without ``tomllib`` (3.9, 3.10).

The kernel side runs on every CPython a stack may use (3.9 up); ``tomllib`` arrived in 3.11. The
two files it reads are simple: lock files (``[[packages]]`` with ``name``/``version``/``marker``
strings) and the stack file's layer tables (``name`` and a ``requirements`` array of strings).
This reader understands exactly that subset: table and array-of-tables headers, and ``key =``
lines whose value is a string or an array of strings (possibly over several lines). Any other
value is skipped, so a file this reader does not fully understand yields fewer keys, never wrong
ones.
"""

from __future__ import annotations

import json
import re
from typing import Any

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=\s*(.*)$")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'")


def _string(token: str) -> str:
    """A TOML basic (``"..."``, JSON-like escapes) or literal (``'...'``) string."""
    if token.startswith("'"):
        return token[1:-1]
    return str(json.loads(token))


def _strings(text: str) -> list[str]:
    """Every string in an array's text (comments and other values ignored)."""
    text = re.sub(r"#[^\"'\n]*$", "", text, flags=re.M)
    return [_string(token) for token in _STRING.findall(text)]


def _target(doc: dict[str, Any], header: str, is_array: bool) -> dict[str, Any] | None:
    """The table a header opens (nested names create parents); None for what we skip."""
    parts = [p.strip().strip("\"'") for p in header.split(".")]
    node: Any = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if isinstance(node, list):
            node = node[-1] if node else {}
        if not isinstance(node, dict):
            return None
    last = parts[-1]
    if is_array:
        items = node.setdefault(last, [])
        if not isinstance(items, list):
            return None
        items.append({})
        return items[-1]
    table = node.setdefault(last, {})
    return table if isinstance(table, dict) else None


def loads(text: str) -> dict[str, Any]:
    """The subset of ``text`` described in the module docstring, as nested dicts and lists."""
    doc: dict[str, Any] = {}
    table: dict[str, Any] | None = doc
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        header = _HEADER.match(line)
        if header:
            table = _target(doc, header.group(2), header.group(1) == "[[")
            continue
        match = _KEY.match(line)
        if not match or table is None:
            continue
        key, value = match.group(1).strip('"'), match.group(2).strip()
        if value.startswith("["):
            depth = value.count("[") - value.count("]")
            while depth > 0 and i < len(lines):
                value += "\n" + lines[i]
                depth += lines[i].count("[") - lines[i].count("]")
                i += 1
            if "{" not in value:
                table[key] = _strings(value)
        elif value[:1] in ("'", '"') and not value.startswith(('"""', "'''")):
            token = _STRING.match(value)
            if token:
                table[key] = _string(token.group(0))
    return doc
