"""Python versions as stack files and interpreters spell them: ``X.Y`` or ``X.Y.Z``."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class PythonVersion:
    """A requested or reported CPython version; ``micro`` is None for an ``X.Y`` request."""

    major: int
    minor: int
    micro: int | None = None

    @classmethod
    def parse(cls, text: str) -> PythonVersion:
        """``"3.12"`` or ``"3.12.1"``; anything else raises ValueError (callers say where)."""
        match = _VERSION_RE.fullmatch(str(text).strip())
        if match is None:
            raise ValueError(f"{text!r} is not a Python version like 3.12 or 3.12.1")
        micro = int(match[3]) if match[3] is not None else None
        return cls(int(match[1]), int(match[2]), micro)

    @classmethod
    def of_release(cls, text: str) -> PythonVersion:
        """The X.Y.Z part of a full version string such as ``3.12.1+`` or ``3.13.0rc1``."""
        match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(text).strip())
        if match is None:
            raise ValueError(f"{text!r} is not a Python version")
        return cls(int(match[1]), int(match[2]), int(match[3] or 0))

    @property
    def xy(self) -> str:
        """``X.Y``: what locks, site-packages paths and executables depend on."""
        return f"{self.major}.{self.minor}"

    @property
    def xy_tuple(self) -> tuple[int, int]:
        """``(X, Y)`` for comparing with ``sys.version_info``."""
        return (self.major, self.minor)

    @property
    def exact(self) -> bool:
        """True for an ``X.Y.Z`` request, which only that release satisfies."""
        return self.micro is not None

    def accepts(self, actual: str) -> bool:
        """Whether an interpreter reporting ``actual`` satisfies this request.

        ``X.Y`` accepts any release of X.Y; ``X.Y.Z`` only that final release (no pre-release).
        """
        try:
            found = PythonVersion.of_release(actual)
        except ValueError:
            return False
        if found.xy_tuple != self.xy_tuple:
            return False
        if self.micro is None:
            return True
        prerelease = re.search(r"\d(a|b|rc)\d", str(actual)) is not None
        return found.micro == self.micro and not prerelease

    def __str__(self) -> str:
        return self.xy if self.micro is None else f"{self.xy}.{self.micro}"
