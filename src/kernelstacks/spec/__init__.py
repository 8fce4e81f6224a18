"""Stage 1: the stack file — its keys, validation, the validated model and edits.

:func:`load_spec` is the one way in: it validates a ``venvstacks.toml`` and returns a
:class:`~kernelstacks.spec.model.StackSpec`, or raises a
:class:`~kernelstacks._support.errors.SpecError` listing every problem.
"""

from __future__ import annotations

from pathlib import Path

from kernelstacks.spec.model import LayerSpec, StackSpec

__all__ = ["LayerSpec", "StackSpec", "load_spec"]


def load_spec(path: str | Path) -> StackSpec:
    """Load and validate a stack file; raises :class:`~kernelstacks._support.errors.SpecError`."""
    from kernelstacks.spec.loader import SpecLoader

    return SpecLoader(Path(path)).load()
