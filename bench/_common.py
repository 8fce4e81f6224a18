"""Shared helpers for the benchmarks: timing, hardlink-aware disk use, the performance page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PERFORMANCE_MD = ROOT / "docs" / "performance.md"


def run(cmd: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None) -> float:
    """Run a command (failing loudly) and return its wall time in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run([os.fspath(c) for c in cmd], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def disk_usage(paths: Iterable[Path]) -> int:
    """Bytes used by ``paths`` counting every inode once (hardlinks are not double-counted)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in paths:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [*filenames, *dirnames]:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                total += st.st_blocks * 512
    return total


def mib(size: int) -> str:
    """Bytes as MiB with one decimal."""
    return f"{size / 2**20:.1f} MiB"


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the ``name`` section of docs/performance.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = (
        PERFORMANCE_MD.read_text(encoding="utf-8")
        if PERFORMANCE_MD.exists()
        else (
            "# Performance\n\nNumbers measured by the scripts in `bench/`; each script "
            "rewrites its "
            "own section.\n"
        )
    )
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _m: block, text) if pattern.search(text) else text + "\n" + block + "\n"
    )
    PERFORMANCE_MD.parent.mkdir(parents=True, exist_ok=True)
    PERFORMANCE_MD.write_text(text, encoding="utf-8")
