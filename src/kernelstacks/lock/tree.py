"""A fresh lock into the ``requirements/`` tree: lock file, metadata, summaries, our record.

What changes, and when (the rules that keep a committed tree quiet):

* the lock file is replaced only when its content (everything after the header comment) differs,
  so relocking an unchanged layer, or a lock venvstacks wrote, leaves the file alone;
* the metadata is rewritten only when one of its hashes differs. ``lock_version`` (versioned
  layers only; unversioned layers always record 1) goes up by one when the locked packages
  (``requirements_hash``) or, as for venvstacks, the version inputs (launch and support modules,
  layer name) changed, never for a relock that gives the same packages; ``locked_at`` changes
  with the locked packages;
* ``locked_at`` is clamped to uv's ``exclude-newer`` (``UV_EXCLUDE_NEWER`` first, then the
  layer's uv settings), as venvstacks 0.8 does, so a lock pinned to an index date says that date;
* the ``requirements-<N>.in`` and ``packages-<build name>.txt`` files are refreshed
  (:mod:`kernelstacks.lock.summaries`) and our record written (:mod:`kernelstacks.lock.records`).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kernelstacks._support.atomic import write_json, write_text
from kernelstacks.lock.amend import body
from kernelstacks.lock.fingerprints import Fingerprint, requirements_hash
from kernelstacks.lock.indexes import layer_uv_settings
from kernelstacks.lock.metadata import lock_path, meta_path, parse_locked_at, read_meta
from kernelstacks.lock.records import write_record
from kernelstacks.lock.resolve import LockResult
from kernelstacks.lock.summaries import write_summaries
from kernelstacks.spec.model import LayerSpec, StackSpec


def exclude_newer(spec: StackSpec, layer: LayerSpec) -> datetime | None:
    """uv's ``exclude-newer`` for a layer as an aware datetime (naive values are UTC)."""
    value: Any = os.environ.get("UV_EXCLUDE_NEWER") or layer_uv_settings(spec, layer).get(
        "exclude-newer"
    )
    if hasattr(value, "unwrap"):
        value = value.unwrap()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None  # e.g. a relative span ("1 week"): nothing to clamp to
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_locked_at(moment: datetime) -> str:
    """venvstacks' form: ISO 8601 in UTC with ``+00:00``."""
    return moment.astimezone(UTC).isoformat()


def _clamped(moment: datetime, limit: datetime | None) -> datetime:
    return limit if limit is not None and moment > limit else moment


def commit_lock(spec: StackSpec, layer: LayerSpec, scratch: Path, result: LockResult) -> str:
    """Move a fresh lock from ``scratch`` into place; ``locked`` if anything changed there,
    else ``unchanged``."""
    target = lock_path(spec, layer)
    new_text = scratch.read_text(encoding="utf-8")
    old_text = target.read_text(encoding="utf-8") if target.is_file() else None
    file_changed = old_text is None or body(old_text) != body(new_text)
    if file_changed:
        write_text(target, new_text)
    locked = requirements_hash(target) or ""
    meta_changed = _write_meta(spec, layer, locked)
    write_summaries(target.parent, layer.build_name, list(layer.requirements), target)
    provided = {
        name: {"version": version, "layer": result.providers.get(name, "")}
        for name, version in sorted(result.provided_by_lower.items())
    }
    write_record(spec, layer, locked, provided)
    return "locked" if file_changed or meta_changed else "unchanged"


def _write_meta(spec: StackSpec, layer: LayerSpec, locked: str) -> bool:
    """Write the metadata for the lock hashing to ``locked``; False when nothing changed."""
    old = read_meta(spec, layer) or {}
    fp = Fingerprint.of(spec, layer)
    limit = exclude_newer(spec, layer)
    old_time = parse_locked_at(old.get("locked_at"))
    same_packages = old.get("requirements_hash") == locked and old_time is not None
    locked_at = _clamped(old_time if same_packages and old_time else datetime.now(UTC), limit)
    meta = {
        "requirements_hash": locked,
        "lock_input_hash": fp.lock_input_hash,
        "other_inputs_hash": fp.other_inputs_hash,
        "version_inputs_hash": fp.version_inputs_hash,
        "lock_version": _lock_version(layer, old, locked, fp),
        "locked_at": format_locked_at(locked_at.replace(microsecond=0)),
    }
    if old_time is not None and old_time == locked_at:
        meta["locked_at"] = old["locked_at"]  # the same moment keeps its spelling
    if meta == old:
        return False
    write_json(meta_path(spec, layer), meta, durable=True)
    return True


def _lock_version(layer: LayerSpec, old: dict[str, Any], locked: str, fp: Fingerprint) -> int:
    """1 for unversioned layers and first locks; one more when packages or modules changed."""
    previous = old.get("lock_version")
    if not layer.versioned or not isinstance(previous, int) or previous < 1:
        return 1
    changed = (
        old.get("requirements_hash") != locked
        or old.get("version_inputs_hash") != fp.version_inputs_hash
    )
    return previous + 1 if changed else previous


def refresh_valid(spec: StackSpec, layer: LayerSpec) -> None:
    """What venvstacks does to a valid lock it keeps: refresh the summaries, clamp ``locked_at``."""
    target = lock_path(spec, layer)
    write_summaries(target.parent, layer.build_name, list(layer.requirements), target)
    meta = read_meta(spec, layer)
    limit = exclude_newer(spec, layer)
    recorded = parse_locked_at((meta or {}).get("locked_at"))
    if meta is not None and recorded is not None and limit is not None and recorded > limit:
        write_json(meta_path(spec, layer), {**meta, "locked_at": format_locked_at(limit)})
