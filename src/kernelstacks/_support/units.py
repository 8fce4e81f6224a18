"""Quantities as people read them: sizes in KiB/MiB/GiB, rates per second."""

from __future__ import annotations


def human_bytes(size: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; bytes below 1 KiB stay exact."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def human_rate(size: float, seconds: float) -> str:
    """Throughput of ``size`` bytes in ``seconds`` (``"12.3 MiB/s"``)."""
    if seconds <= 0:
        return "-"
    return f"{human_bytes(size / seconds)}/s"
