"""Reading what deploy is asked to deploy: the published metadata, checked before it is used.

Every name in ``venvstacks.json`` becomes a path under the deployment (``install_target``,
``runtime_layer``, ``required_layers``) or in the source (``archive_name``), so each must be one
plain directory or file name, checked like an archive member; anything else is refused with the
metadata file and the key at fault, before anything is written.

The summary is venvstacks 0.8's ``__venvstacks__/venvstacks.json`` (``venvstacks-<platform>.json``
with ``--tag-outputs``), or ``__venvstacks__/<platform>/venvstacks.json`` written by older
kernelstacks versions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.host import current_platform
from kernelstacks_kernel import contract

METADATA_DIR = contract.METADATA_DIR
#: Layer kinds as ``venvstacks.json`` groups them, runtimes first.
GROUPS = {"runtimes": "runtime", "frameworks": "framework", "applications": "application"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: A name must fit in one directory entry (255 bytes on every common filesystem).
_NAME_MAX = 255


def metadata_dir(output_dir: Path) -> Path:
    """``<output>/__venvstacks__`` (venvstacks 0.8 writes no platform folder)."""
    return output_dir / METADATA_DIR


def platform_tag(tag_outputs: bool) -> str:
    """``-<platform>`` in metadata file names with ``--tag-outputs``, as venvstacks names them."""
    return f"-{current_platform()}" if tag_outputs else ""


def summary_path(output_dir: Path, tag: str = "") -> Path:
    """``venvstacks.json`` (``venvstacks-<platform>.json`` with ``--tag-outputs``)."""
    return metadata_dir(output_dir) / f"venvstacks{tag}.json"


def legacy_metadata_dir(output_dir: Path) -> Path:
    """``__venvstacks__/<platform>/``: where kernelstacks wrote metadata before venvstacks 0.8's
    layout (still read; removed when newer metadata is written)."""
    return metadata_dir(output_dir) / current_platform()


def summary_file(source: Path) -> Path:
    """The stack summary of a publish output, export or deployment (ours or venvstacks')."""
    for candidate in (
        summary_path(source, platform_tag(True)),
        summary_path(source),
        legacy_metadata_dir(source) / "venvstacks.json",
    ):
        if candidate.is_file():
            return candidate
    raise KernelstacksError(
        f"{source} is not a publish, export or deploy directory (no {summary_path(source)})"
    )


def read_groups(source: Path) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """The summary file and its checked layer records by kind (``runtime``, ...)."""
    path = summary_file(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KernelstacksError(f"{path}: unreadable metadata: {exc}") from None
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, dict):
        raise KernelstacksError(f"{path}: 'layers' must be a table of runtimes, frameworks, ...")
    groups: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for group, kind in GROUPS.items():
        records = layers.get(group, [])
        if not isinstance(records, list):
            raise KernelstacksError(f"{path}: layers.{group} must be a list")
        for index, record in enumerate(records):
            where = f"{path}: layers.{group}[{index}]"
            check_record(where, record)
            if record["install_target"] in seen:
                raise KernelstacksError(
                    f"{where}.install_target: {record['install_target']!r} appears twice"
                )
            seen.add(record["install_target"])
        groups[kind] = records
    return path, groups


def read_source(source: Path) -> list[dict[str, Any]]:
    """The checked layer records of a publish output, export or deployment, runtimes first."""
    return [r for records in read_groups(source)[1].values() for r in records]


def check_record(where: str, record: object) -> None:
    """Refuse a record whose names could reach outside the deployment or the source."""
    if not isinstance(record, dict):
        raise KernelstacksError(f"{where}: must be a table, not {type(record).__name__}")
    check_layer_name(where, "install_target", record.get("install_target"))
    if not isinstance(record.get("layer_name", ""), str):
        raise KernelstacksError(f"{where}.layer_name: must be a string")
    if record.get("runtime_layer") is not None:
        check_layer_name(where, "runtime_layer", record["runtime_layer"])
    required = record.get("required_layers", [])
    if not isinstance(required, list):
        raise KernelstacksError(f"{where}.required_layers: must be a list of layer names")
    for index, name in enumerate(required):
        check_layer_name(where, f"required_layers[{index}]", name)
    if record.get("archive_name") is not None:
        check_layer_name(where, "archive_name", record["archive_name"])
        hashes = record.get("archive_hashes")
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise KernelstacksError(f"{where}.archive_hashes.sha256: must be 64 hex digits")
    extra = record.get("kernelstacks", {})
    if not isinstance(extra, dict):
        raise KernelstacksError(f"{where}.kernelstacks: must be a table")


def check_layer_name(where: str, key: str, name: object) -> None:
    """One plain directory name: no separators, ``.``/``..``, control characters, hidden
    names (staging directories are hidden) or more than a directory entry holds."""
    why = None
    if not isinstance(name, str) or not name:
        why = "must be a non-empty string"
    elif "/" in name or "\\" in name:
        why = "must be one directory name, without path separators"
    elif name.startswith("."):
        why = "must not start with '.' (hidden, '.' and '..' are not layer names)"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        why = "must not contain control characters"
    elif len(name.encode("utf-8", "surrogateescape")) > _NAME_MAX:
        why = f"is longer than {_NAME_MAX} bytes"
    if why is not None:
        raise KernelstacksError(f"{where}.{key}: {name!r} {why}")


def stack_identity(records: list[dict[str, Any]]) -> str | None:
    """Which stack these layers come from: kernelstacks' stack name (None for venvstacks'
    metadata, which does not name its stack)."""
    names = {
        r.get("kernelstacks", {}).get("stack")
        for r in records
        if isinstance(r.get("kernelstacks"), dict)
    }
    names.discard(None)
    return str(sorted(names)[0]) if len(names) == 1 else None


def read_expected_sha256(path: Path) -> dict[str, str]:
    """A trusted manifest in ``sha256sum`` format: ``<64 hex>  <archive file name>`` per line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KernelstacksError(f"--expect-sha256 {path}: cannot read it: {exc}") from None
    expected: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sha, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if not _SHA256.fullmatch(sha.lower()) or not name:
            raise KernelstacksError(
                f"--expect-sha256 {path}:{number}: expected '<sha256>  <archive name>' "
                "(the format of sha256sum)"
            )
        expected[Path(name).name] = sha.lower()
    return expected
