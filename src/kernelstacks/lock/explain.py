"""uv's refusals, explained: which layer, which requirement or lower-layer pin, and uv's words.

uv (0.13 and later) wraps long messages at the terminal width, so its output is joined back into
one line per message before the patterns below look for what went wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from packaging.markers import InvalidMarker, Marker

from kernelstacks._support.uv import uv_output
from kernelstacks.lock.pylock import Pin
from kernelstacks.lock.wheels import PLATFORMS, marker_env

# What uv says when a requirement does not exist, the settings are bad, or no Python fits.
_NOT_FOUND = re.compile(r"Because ([\w.\-\[\]]+) was not found in the package registry")
_BAD_CONFIG = re.compile(r"Failed to parse.*uv\.toml")
_NO_INTERPRETER = re.compile(
    r"No interpreter found|Failed to inspect Python interpreter|interpreter.*incompatible"
)
# uv resolves for every platform at once; when a platform other than this machine's fails, it
# says so and suggests `tool.uv.environments`, which is not the fix in a stack: `platforms` is.
_OTHER_ENVIRONMENT = re.compile(r"resolution failed for an environment that is not the current")
_ENVIRONMENTS_HINT = re.compile(r"consider limiting the environments with|tool\.uv\.environments")
# uv names the failing fork's environment in braces: numpy{sys_platform == 'win32'}<1.20.
_FORK_MARKER = re.compile(r"\{([^{}]+)\}")
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


def other_environment_failed(stderr: str) -> bool:
    """Whether uv failed on a platform other than this machine's (its own words)."""
    return _OTHER_ENVIRONMENT.search(unwrapped(stderr)) is not None


def failed_platforms(stderr: str, xy: str) -> list[str]:
    """The target platforms whose resolution uv reports as failed (from its fork markers)."""
    markers = []
    for text in dict.fromkeys(_FORK_MARKER.findall(unwrapped(stderr))):
        try:
            markers.append(Marker(text))
        except InvalidMarker:
            continue
    return [p for p in PLATFORMS if any(m.evaluate(marker_env(p, xy)) for m in markers)]


def _platform_advice(stderr: str, xy: str, platforms: Sequence[str]) -> str:
    """What to do when uv failed for some platform: name only platforms the layer targets."""
    targeted = [p for p in failed_platforms(stderr, xy) if p in platforms]
    keep = [p for p in platforms if p not in targeted]
    if not targeted or not keep:  # nothing to leave out that would help
        return (
            "the requirements cannot be met on every platform this layer builds for "
            f"({', '.join(platforms)})"
        )
    them = "it" if len(targeted) == 1 else "them"
    advice = (
        f"the requirements cannot be met on {', '.join(targeted)}, which this layer builds for; "
        f"if the layer need not run there, leave {them} out of its platforms"
    )
    return advice + " (platforms = [" + ", ".join(f'"{p}"' for p in keep) + "])"


def explain_failure(
    layer: str,
    requirements: list[str],
    xy: str,
    stderr: str,
    lower: list[Pin],
    platforms: Sequence[str] = tuple(PLATFORMS),
) -> str:
    """A message naming the layer, the requirement or lower-layer pin at fault, and uv's words.

    uv's suggestion to limit ``tool.uv.environments`` is replaced by the advice that applies to
    a stack (the layer's ``platforms``), naming only platforms the layer targets.
    """
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
    if _OTHER_ENVIRONMENT.search(said):
        details.append(_platform_advice(stderr, xy, platforms))
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
        f"uv says:\n{_without_environments_hint(uv_output(stderr))}"
    )


def _without_environments_hint(text: str) -> str:
    """uv's words minus its ``tool.uv.environments`` hint (see :func:`explain_failure`)."""
    return "\n".join(line for line in text.splitlines() if not _ENVIRONMENTS_HINT.search(line))


def _conflicting_pins(stderr: str, lower: list[Pin]) -> list[Pin]:
    """Lower-layer pins that uv's explanation names (first lock per package)."""
    seen: dict[str, Pin] = {}
    for pin in lower:
        if pin.name not in seen and _mentions(stderr, pin.name):
            seen[pin.name] = pin
    return list(seen.values())
