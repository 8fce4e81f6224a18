"""Files that readers see whole or not at all: write to a temporary file, then rename.

Every file the product writes outside a staging directory goes through here. Writing beside the
target (same directory, same filesystem) makes ``os.replace`` atomic; writing a new inode instead
of truncating the old one also keeps hard links intact (uv hard-links layer files from its cache,
exports hard-link from the build), so a rewrite never changes a file another tree shares.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable (a directory entry is on disk only after this)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes, *, mode: int | None = None, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically.

    ``mode`` defaults to the existing file's mode (or 0o644 for a new file), so rewriting a script
    keeps it executable. ``durable`` fsyncs the data and the directory before returning: use it
    for records that recovery after a crash depends on (swap journals, lock metadata).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        mode = stat.S_IMODE(os.stat(path).st_mode) if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_text(path: Path, text: str, *, mode: int | None = None, durable: bool = False) -> None:
    """:func:`write_bytes` for UTF-8 text with ``\\n`` line ends."""
    write_bytes(path, text.encode("utf-8"), mode=mode, durable=durable)


def json_text(data: Any) -> str:
    """JSON as venvstacks writes it: 2-space indent, sorted keys, a final newline."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_json(path: Path, data: Any, *, durable: bool = False) -> None:
    """Write ``data`` as :func:`json_text` atomically."""
    write_text(path, json_text(data), durable=durable)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
