"""A fake stack on disk (layer metadata and ``.dist-info`` folders only) for fast kernel-side tests.

The kernel side reads layers through their venvstacks metadata and ``importlib.metadata``; these
directories have exactly that and nothing else, so its rules are checked in a second.
"""

from __future__ import annotations

import json
from pathlib import Path

from kernelstacks_kernel.chain import LayerInfo, current_chain
from kernelstacks_kernel.contract import LAYER_METADATA

SITE = "lib/python3.12/site-packages"


def fake_layer(
    build: Path,
    name: str,
    meta: dict | None,
    dists: dict[str, str],
    requires: dict[str, list[str]] | None = None,
) -> None:
    """A layer directory: venvstacks metadata and one ``.dist-info`` per distribution."""
    site = build / name / SITE
    site.mkdir(parents=True)
    if meta is not None:
        (build / name / LAYER_METADATA).parent.mkdir(parents=True)
        (build / name / LAYER_METADATA).write_text(json.dumps(meta))
    for dist, version in dists.items():
        info = site / f"{dist}-{version}.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}"]
        lines += [f"Summary: the {dist} package"]
        lines += [f"Requires-Dist: {req}" for req in (requires or {}).get(dist, [])]
        (info / "METADATA").write_text("\n".join(lines) + "\n")
        (site / f"{dist}.py").write_text("x" * 100)
        (info / "RECORD").write_text(f"{dist}.py,,\n")


def make_chain(tmp_path: Path) -> list[LayerInfo]:
    """app-lab on framework-data on cpython-3.12, plus app-plain (not in the chain)."""
    build = tmp_path / "_build"
    runtime = {"site_dir": SITE, "python": "bin/python3", "kernelstacks": {"kind": "runtime"}}
    fake_layer(build, "cpython-3.12", runtime, {})
    data = {"site_dir": SITE, "kernelstacks": {"kind": "framework", "layer": "framework-data"}}
    requires = {"attrs": ["six", "six>=1; python_version >= '3'", "tomli; extra == 'toml'"]}
    fake_layer(build, "framework-data", data, {"attrs": "24.2.0", "six": "1.16.0"}, requires)
    app = {
        "site_dir": SITE,
        "launch_module": "lab",
        "base_python": "../cpython-3.12/bin/python3",
        "python": "bin/python",
        "pylib_dirs": [f"../framework-data/{SITE}", f"../cpython-3.12/{SITE}"],
    }
    fake_layer(build, "app-lab", app, {"tabulate": "0.9.0", "six": "1.17.0"})
    fake_layer(build, "app-plain", None, {"idna": "3.10"})
    return current_chain(prefix=str(build / "app-lab"))
