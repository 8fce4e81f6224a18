"""Content hashes in venvstacks' ``sha256:<hex>`` form, for files, text and source trees."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_hex(path: Path) -> str:
    """Hex sha256 of a file, streamed (archives of big layers do not fit in memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_file(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    return "sha256:" + sha256_hex(path)


def sha256_text(text: str) -> str:
    """``sha256:<hex>`` of UTF-8 text."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def tree_hash(path: Path) -> str:
    """Hash of a module file or a package tree, ignoring caches and VCS files.

    Used where a launch or support module's content decides a lock version or a rebuild.
    """
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    entries = []
    for item in sorted(path.rglob("*")):
        if item.is_file() and "__pycache__" not in item.parts and not item.name.startswith(".git"):
            entries.append(f"{item.relative_to(path).as_posix()}={sha256_file(item)}")
    return sha256_text("\n".join(entries))
