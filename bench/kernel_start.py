"""Kernel start-up: a layered kernel versus a flat venv kernel with the same packages.

Measures the median time from ``start_kernel`` to the first ``kernel_info_reply`` for the
application kernel of a small stack (runtime, a jupyter framework with ipykernel, a data
framework, the app) and for a flat uv venv holding exactly the same packages on the same runtime,
alternating the two so machine noise hits both alike. Results go to docs/performance.md.

Usage: python bench/kernel_start.py [--runs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run, write_section

EXCLUDE_NEWER = "2025-10-01T00:00:00Z"
JUPYTER = ["ipykernel", "ipywidgets"]
DATA = ["attrs", "tabulate"]


def stack_text(xy: str) -> str:
    """The benchmark stack."""
    return f"""
[[runtimes]]
name = "rt"
python_implementation = "cpython@{xy}"
requirements = []

[[frameworks]]
name = "jupyter"
runtime = "rt"
requirements = {json.dumps(JUPYTER)}

[[frameworks]]
name = "data"
runtime = "rt"
requirements = {json.dumps(DATA)}

[[applications]]
name = "app"
launch_module = "app.py"
frameworks = ["data", "jupyter"]
requirements = []

[tool.kernelstacks]
name = "bench"

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""


def prepare(base: Path, env: dict[str, str]) -> tuple[str, str]:
    """Build the stack and its kernel, and a flat venv kernel; returns both kernel names."""
    from kernelstacks._support.uv import uv_binary

    xy = f"{sys.version_info.major}.{sys.version_info.minor}"
    spec = base / "stack" / "venvstacks.toml"
    spec.parent.mkdir(parents=True)
    spec.write_text(stack_text(xy))
    (spec.parent / "app.py").write_text("print('app')\n")
    ks = [sys.executable, "-m", "kernelstacks"]
    override = ["--python", f"cpython@{xy}={sys.executable}", "--runtime-source", "local"]
    run([*ks, "build", spec, "--lock-if-needed", "--kernels", *override], env)
    runtime = spec.parent / "_build" / "rt" / "bin" / "python3"
    flat = base / "flat"
    run([uv_binary(), "venv", "-q", "--python", runtime, flat], env)
    run(
        [
            uv_binary(),
            "pip",
            "install",
            "-q",
            "--python",
            flat / "bin" / "python",
            "--compile-bytecode",
            "--exclude-newer",
            EXCLUDE_NEWER,
            *JUPYTER,
            *DATA,
        ],
        env,
    )
    kernel_dir = Path(env["JUPYTER_DATA_DIR"]) / "kernels" / "flat-venv"
    kernel_dir.mkdir(parents=True)
    argv = [str(flat / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernel_dir / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "flat venv", "language": "python"})
    )
    return "kernelstacks-bench-app", "flat-venv"


def start_time(name: str) -> float:
    """Seconds from start_kernel to the first kernel_info_reply."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=name)
    t0 = time.perf_counter()
    km.start_kernel()
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        return time.perf_counter() - t0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> None:
    """Measure and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="ks-bench-kernel-"))
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_NO_CONFIG="1")
    env.pop("PIP_FIND_LINKS", None)
    for var in ("JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR"):
        env[var] = str(base / var.lower())
    env["JUPYTER_PATH"] = str(base / "jupyter_path")
    os.environ.update({k: env[k] for k in env if k.startswith("JUPYTER")})
    try:
        layered, flat = prepare(base, env)
        for name in (layered, flat):  # warm the page cache and bytecode once
            start_time(name)
        times: dict[str, list[float]] = {layered: [], flat: []}
        for _ in range(args.runs):
            for name in (layered, flat):
                times[name].append(start_time(name))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    med_l, med_f = statistics.median(times[layered]), statistics.median(times[flat])
    ratio = med_l / med_f
    text = "\n".join(
        [
            "## Kernel start-up (`bench/kernel_start.py`)",
            "",
            f"Median of {args.runs} alternating starts, `start_kernel` to the first "
            f"`kernel_info_reply`; Python {platform.python_version()}, {os.cpu_count()} cores, "
            f"measured {time.strftime('%Y-%m-%d')}. Both kernels have {', '.join(JUPYTER + DATA)} "
            "on the same runtime; the layered one starts through its kernelspec's launcher "
            "(which checks the stack) and also loads the `%venvstacks` extension.",
            "",
            "| kernel | median | min | max |",
            "| --- | --- | --- | --- |",
            *(
                f"| {label} | {statistics.median(times[n]):.3f} s | {min(times[n]):.3f} s | "
                f"{max(times[n]):.3f} s |"
                for label, n in (
                    ("layered (app + 2 frameworks + runtime)", layered),
                    ("flat venv", flat),
                )
            ),
            "",
            f"Ratio layered / flat: **{ratio:.2f}x** (target <= 1.10x: "
            f"{'met' if ratio <= 1.10 else 'NOT met'}).",
        ]
    )
    write_section("kernel-start", text)
    print(text)


if __name__ == "__main__":
    main()
