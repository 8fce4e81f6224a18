"""The uv settings one layer is locked with: the stack's ``[tool.uv]`` adjusted for that layer.

venvstacks lets a layer prefer named indexes (``priority_indexes``), take given packages from
given indexes (``package_indexes``, inherited by the layers above) and resolve expected conflicts
(``index_overrides``). Every lock of a layer goes through :func:`layer_uv_settings`, so those
settings reach uv in exactly one place.
"""

from __future__ import annotations

from typing import Any

from kernelstacks.spec.model import LayerSpec, StackSpec


def layer_uv_settings(stack: StackSpec, layer: LayerSpec) -> dict[str, Any]:
    """The ``[tool.uv]`` settings to lock ``layer`` with (today: the stack's, unchanged)."""
    return dict(stack.uv_settings)
