"""uv's refusals, explained: which layer, which requirement or lower-layer pin, and uv's words.

uv (0.13 and later) wraps long messages at the terminal width, so its output is joined back into
one line per message before the patterns below look for what went wrong.
"""

from __future__ import annotations

import re

from kernelstacks._support.uv import uv_output
from kernelstacks.lock.pylock import Pin

# What uv says when a requirement does not exist, the settings are bad, or no Python fits.
_NOT_FOUND = re.compile(r"Because ([\w.\-\[\]]+) was not found in the package registry")
_BAD_CONFIG = re.compile(r"Failed to parse.*uv\.toml")
_NO_INTERPRETER = re.compile(
    r"No interpreter found|Failed to inspect Python interpreter|interpreter.*incompatible"
)
# A line of uv's output that starts a new item ("  cause: ...", "  hint: ...", "  Caused by:
# ...", a tree branch) rather than continuing the line before it.
_NEW_ITEM = re.compile(r"\s*(?:[A-Za-z]+(?: by)?:(?:\s|$)|[×╰├│─▶])")


def _mentions(text: str, name: str) -> bool:
    """Whether uv's message names package ``name`` (as a whole word, any spelling)."""
    pattern = re.escape(name).replace(r"\-", "[-_.]")
    return re.search(rf"(?<![\w.-]){pattern}(?![\w-])", text, re.IGNORECASE) is not None


def unwrapped(text: str) -> str:
    """uv's output with each wrapped message joined back onto one line.

    uv (0.13 and later) wraps long messages at the terminal width and indents the continuation
    lines, so a sentence the patterns above look for may be split anywhere between words. A line
    indented deeper than the line it follows, that does not start an item of its own, continues
    that line. Separate messages stay on separate lines, so a pattern never matches across two.
    """
    messages: list[tuple[int, str]] = []  # (indentation of its first line, message)
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        previous = messages[-1] if messages else (0, "")
        continues = previous[1] and line.strip() and indent > previous[0]
        if continues and not _NEW_ITEM.match(line):
            messages[-1] = (previous[0], f"{previous[1]} {line.strip()}")
        else:
            messages.append((indent, line.rstrip()))
    return "\n".join(message for _, message in messages)


def explain_failure(
    layer: str, requirements: list[str], xy: str, stderr: str, lower: list[Pin]
) -> str:
    """A message naming the layer, the requirement or lower-layer pin at fault, and uv's words."""
    said = unwrapped(stderr)
    details = [
        f"requirement '{name}' was not found on the package index"
        for name in dict.fromkeys(_NOT_FOUND.findall(said))
    ]
    if not details:
        details = [
            f"'{pin.name}' is pinned to {pin.entry.version} by lower layer '{pin.layer}' "
            f"({pin.path}) and this layer's requirements need a different version"
            for pin in _conflicting_pins(said, lower)
        ]
    if _BAD_CONFIG.search(said):
        details.append("uv rejected the stack's [tool.uv] settings")
    if _NO_INTERPRETER.search(said):
        details.append(
            f"uv needs a Python {xy} to lock with: pass LockRequest.python "
            "(e.g. the runtime layer's interpreter)"
        )
    summary = "; ".join(details) or "uv could not resolve its requirements"
    return (
        f"Cannot lock layer '{layer}': {summary}.\n"
        f"Requirements: {', '.join(requirements) or '(none)'}\n"
        f"uv says:\n{uv_output(stderr)}"
    )


def _conflicting_pins(stderr: str, lower: list[Pin]) -> list[Pin]:
    """Lower-layer pins that uv's explanation names (first lock per package)."""
    seen: dict[str, Pin] = {}
    for pin in lower:
        if pin.name not in seen and _mentions(stderr, pin.name):
            seen[pin.name] = pin
    return list(seen.values())
