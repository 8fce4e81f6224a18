"""kernelstacks: layered Python environment stacks (venvstacks-compatible) as Jupyter kernels.

The package keeps its import light: nothing here imports Jupyter, widgets or rich, so the CLI's
hot path and the kernel-side extension stay fast.
"""

__version__ = "0.1.0"
