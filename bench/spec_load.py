"""How long loading a stack file takes as its framework chain gets deeper.

Loading used to be quadratic-or-worse in depth (400 deep: 38 s, 1,000 deep: RecursionError);
the target is linear-ish and a 1,000-layer chain in under 2 s. Usage: ``python bench/spec_load.py``.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _common import write_section
from kernelstacks.spec import load_spec

RUNTIME = '[[runtimes]]\nname = "rt"\npython_implementation = "cpython@3.11"\nrequirements = []\n'
DEPTHS = (100, 250, 500, 1000, 2000)
TARGET = 2.0


def chain(depth: int) -> str:
    """A runtime and ``depth`` frameworks, each on the one before."""
    parts = [RUNTIME, '[[frameworks]]\nname = "f0"\nruntime = "rt"\nrequirements = []\n']
    parts += [
        f'[[frameworks]]\nname = "f{i}"\nframeworks = ["f{i - 1}"]\nrequirements = []\n'
        for i in range(1, depth)
    ]
    return "".join(parts)


def measure(depth: int, runs: int = 3) -> float:
    """Median wall time of ``load_spec`` on a chain ``depth`` deep."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "venvstacks.toml"
        path.write_text(chain(depth), encoding="utf-8")
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            load_spec(path)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    results = {depth: measure(depth) for depth in DEPTHS}
    at_1000 = results[1000]
    lines = [
        "## Loading deep stacks (`bench/spec_load.py`)",
        "",
        f"Median of 3 `load_spec` calls on a chain of N frameworks (each on the one before); "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, measured "
        f"{time.strftime('%Y-%m-%d')}. Each framework's C3 order is computed once and every "
        "graph pass walks bottom-up without recursion; what remains grows with the size of the "
        "answer (each layer lists every layer below it: N²/2 entries).",
        "",
        "| frameworks | load time |",
        "| --- | --- |",
        *(f"| {depth} | {seconds:.2f} s |" for depth, seconds in results.items()),
        "",
        f"1,000 deep: **{at_1000:.2f} s** (target < {TARGET:.0f} s: "
        f"{'met' if at_1000 < TARGET else 'NOT met'}; before: 400 deep took 38 s and 1,000 deep "
        "raised RecursionError).",
    ]
    text = "\n".join(lines)
    write_section("spec-load", text)
    print(text)


if __name__ == "__main__":
    main()
