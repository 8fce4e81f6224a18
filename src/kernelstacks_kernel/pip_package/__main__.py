"""``python -m pip`` in one of the stack's interpreters: the read-only pip of the stack."""

from __future__ import annotations

import sys

from kernelstacks_kernel.pipshim import main

if __name__ == "__main__":
    sys.exit(main())
