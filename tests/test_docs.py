"""The docs keep up with the code: every stack-file key is documented."""

from __future__ import annotations

from pathlib import Path

from kernelstacks.spec.fields import DEPRECATED_FIELDS, LAYER_FIELDS, PLATFORMS, TOOL_FIELDS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_spec_format_lists_every_key() -> None:
    text = (DOCS / "spec-format.md").read_text(encoding="utf-8")
    for field in (*LAYER_FIELDS, *TOOL_FIELDS):
        assert f"`{field.name}`" in text, field.name
    for name in (*DEPRECATED_FIELDS, *PLATFORMS):
        assert f"`{name}`" in text, name
