"""The README's main job: ``kernelstacks demo`` writes, locks, builds and runs the demo stack."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine_helpers import ks

pytestmark = pytest.mark.slow


def test_demo_end_to_end(tmp_path: Path) -> None:
    proc = ks("demo", "--dir", tmp_path / "demo", "--kernels", timeout=1800)
    out = proc.stdout
    assert "solution of the demo system: [2.0" in out
    assert "scipy visible: False" in out
    assert "framework-scipy" in out and "framework-jupyter" in out
    assert "note: " in proc.stderr and "runtime" in proc.stderr  # says which runtime source
    build = tmp_path / "demo" / "_build"
    assert {p.name for p in build.iterdir() if not p.name.startswith(".")} >= {
        "framework-scipy",
        "framework-jupyter",
        "app-analysis",
        "app-notebook",
    }
    kernels = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels"
    for app in ("analysis", "notebook"):
        spec_dir = kernels / f"kernelstacks-demo-{app}"
        spec = json.loads((spec_dir / "kernel.json").read_text())
        assert spec["argv"][0] == str(spec_dir / "kernelstacks-launch")  # execs the layer's python
        python = spec["metadata"]["kernelstacks"]["python"]
        assert python == str(build / f"app-{app}" / "bin" / "python")
    again = ks("demo", "--dir", tmp_path / "demo")
    assert "unchanged" in again.stderr and "built " not in again.stderr
