"""Publish and deploy times and archive sizes, beside the simple way (``tar -cJf`` per layer).

Builds a stack (runtime, a scipy + pandas framework, two apps), then times ``kernelstacks
publish`` (reproducible archives, layers in parallel) against single-threaded ``tar -cJf`` of each
layer, and ``kernelstacks deploy`` (verify, unpack, relocate, compile) against ``tar -xJf`` of each
archive (which gives layers that do not run where they land). Results go to docs/performance.md.

Usage: python bench/publish.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import mib, run, write_section

EXCLUDE_NEWER = "2025-10-01T00:00:00Z"


def stack_text(xy: str) -> str:
    """The benchmark stack."""
    return f"""
[[runtimes]]
name = "rt"
python_implementation = "cpython@{xy}"
requirements = []

[[frameworks]]
name = "sci"
runtime = "rt"
requirements = ["scipy", "pandas"]

[[applications]]
name = "one"
launch_module = "launch.py"
frameworks = ["sci"]
requirements = ["six"]

[[applications]]
name = "two"
launch_module = "launch.py"
frameworks = ["sci"]
requirements = ["idna"]

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""


def main() -> None:
    """Build, then measure both ways, then write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="ks-bench-publish-"))
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_NO_CONFIG="1")
    env.pop("PIP_FIND_LINKS", None)
    xy = f"{sys.version_info.major}.{sys.version_info.minor}"
    ks = [sys.executable, "-m", "kernelstacks"]
    try:
        spec = base / "stack" / "venvstacks.toml"
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(stack_text(xy))
        (spec.parent / "launch.py").write_text("import scipy\n")
        override = ["--python", f"cpython@{xy}={sys.executable}", "--runtime-source", "local"]
        run([*ks, "build", spec, "--lock-if-needed", *override], env)
        layers = sorted(
            p.name
            for p in (spec.parent / "_build").iterdir()
            if p.is_dir() and not p.name.startswith(".")
        )
        out = base / "published"
        t_publish = run([*ks, "publish", spec, "--output-dir", out, "-j", "2"], env)
        simple = base / "simple"
        simple.mkdir()
        t_tar = sum(
            run(["tar", "-cJf", simple / f"{name}.tar.xz", "-C", spec.parent / "_build", name], env)
            for name in layers
        )
        target = base / "deployed"
        t_deploy = run([*ks, "deploy", out, target], env)
        untar = base / "untarred"
        untar.mkdir()
        t_untar = sum(
            run(["tar", "-xJf", simple / f"{n}.tar.xz", "-C", untar], env) for n in layers
        )
        sizes = {p.name: p.stat().st_size for p in out.glob("*.tar.xz")}
        simple_sizes = {p.name: p.stat().st_size for p in simple.glob("*.tar.xz")}
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    rows = [
        "| step | kernelstacks | the simple way |",
        "| --- | --- | --- |",
        f"| publish all layers | {t_publish:.1f} s (`publish -j 2`, incl. metadata) | "
        f"{t_tar:.1f} s (`tar -cJf` per layer, one after another) |",
        f"| deploy all layers | {t_deploy:.1f} s (verify, unpack, relocate, compile) | "
        f"{t_untar:.1f} s (`tar -xJf` only: layers not runnable there) |",
        "",
        "| archive | kernelstacks | `tar -cJf` |",
        "| --- | --- | --- |",
    ]
    for name in layers:
        ours = next((v for k, v in sizes.items() if k.startswith(name)), 0)
        rows.append(f"| {name} | {mib(ours)} | {mib(simple_sizes.get(f'{name}.tar.xz', 0))} |")
    text = "\n".join(
        [
            "## Publish and deploy (`bench/publish.py`)",
            "",
            f"Runtime + scipy/pandas framework + 2 apps; Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, measured {time.strftime('%Y-%m-%d')}. kernelstacks archives "
            "leave bytecode out (it is compiled where the layer lands), so they are smaller but "
            "deploying does more work.",
            "",
            *rows,
        ]
    )
    write_section("publish", text)
    print(text)


if __name__ == "__main__":
    main()
