"""``publish --dry-run`` and ``local-export --dry-run``: venvstacks' request document.

venvstacks prints the metadata each selected layer would be published (or exported) with,
grouped as ``{"layers": {"runtimes": [...], "frameworks": [...], "applications": [...]}}``,
between two lines saying that nothing was written. Ours is the same document, built from the
same records ``publish`` writes to ``env_metadata/`` (``archive_build``, ``archive_name`` and
``target_platform`` added for a publish), so a script that reads it works with either tool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kernelstacks._support.host import current_platform
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import StackSpec

SECTIONS = {
    Kind.RUNTIME: "runtimes",
    Kind.FRAMEWORK: "frameworks",
    Kind.APPLICATION: "applications",
}


def _archive_fields(
    record: dict[str, Any], output_dir: Path, tag_outputs: bool, suffix: str
) -> None:
    """What the archive would be called: the same build number if the layer is unchanged."""
    from kernelstacks.distribute.metadata import previous_record
    from kernelstacks.distribute.publish import archive_name

    previous = previous_record(output_dir, record["install_target"])
    build = int(previous.get("archive_build", 0) or 0)
    same = previous.get("kernelstacks", {}).get("build_inputs_hash") == record["kernelstacks"].get(
        "build_inputs_hash"
    )
    if not (same and build):
        build += 1
    record["archive_build"] = build
    record["archive_name"] = archive_name(record["install_target"], tag_outputs, build, suffix)
    record["target_platform"] = current_platform()


def request_document(
    stack: StackSpec,
    include: list[str] | None,
    only: set[str] | None,
    build_dir: Path,
    output_dir: Path,
    tag_outputs: bool | None,
    suffix: str = ".tar.xz",
) -> dict[str, Any]:
    """The records of the layers that would be written (``tag_outputs=None``: an export)."""
    from kernelstacks.distribute.layout import deploy_names, layers_out, select_layers
    from kernelstacks.distribute.metadata import published_record

    names = deploy_names(stack)
    chosen = [
        layer for layer in select_layers(stack, include) if only is None or layer.build_name in only
    ]
    layers: dict[str, list[dict[str, Any]]] = {section: [] for section in SECTIONS.values()}
    for item in layers_out(stack, chosen, build_dir):
        record = published_record(item, stack, names)
        if tag_outputs is not None:
            _archive_fields(record, output_dir, tag_outputs, suffix)
        layers[SECTIONS[item.layer.kind]].append(record)
    return {"layers": layers}


def print_dry_run(document: dict[str, Any], output_dir: Path, what: str) -> None:
    """venvstacks' dry-run report: the request, where it would go, and that nothing was made."""
    skipped = "Archive creation" if what == "archives" else "Environment export"
    request = "publishing" if what == "archives" else "local export"
    print(f"{skipped} skipped, reporting {request} request details:")
    print(json.dumps(document, indent=2, sort_keys=True))
    print(f"{what.capitalize()} and metadata would be written to {output_dir}")
    print(f"{skipped} skipped (--dry-run): nothing was written")
