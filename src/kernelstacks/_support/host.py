"""Facts about the machine we run on, in venvstacks' vocabulary."""

from __future__ import annotations

import platform
import sys


def current_platform() -> str:
    """The venvstacks platform name of this machine, e.g. ``linux_x86_64``."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(
        machine, machine
    )
    if sys.platform == "win32":
        return "win_amd64" if arch == "x86_64" else "win_arm64"
    if sys.platform == "darwin":
        return "macosx_x86_64" if arch == "x86_64" else "macosx_arm64"
    return f"linux_{arch}"
