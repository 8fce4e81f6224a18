"""The README's main job: ``kernelstacks demo`` writes, locks, builds and runs the demo stack,
registers its kernels and says how to open them; it never destroys the user's edits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine_helpers import ks
from kernelstacks.cli.demo import demo_files, write_demo

slow = pytest.mark.slow


@slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    proc = ks("demo", "--dir", tmp_path / "demo", timeout=1800)
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
    kernels = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels"  # per user by default
    for app in ("analysis", "notebook"):
        spec_dir = kernels / f"kernelstacks-demo-{app}"
        spec = json.loads((spec_dir / "kernel.json").read_text())
        assert spec["argv"][0] == str(spec_dir / "kernelstacks-launch")  # execs the layer's python
        python = spec["metadata"]["kernelstacks"]["python"]
        assert python == str(build / f"app-{app}" / "bin" / "python")
        # the demo ends by naming each kernel as the launcher shows it, and its kernel name
        assert f"{spec['display_name']}  (kernelstacks-demo-{app}," in out
    assert out.rstrip().splitlines()[-1].strip().startswith("kernelstacks add ")
    assert "\n  jupyter lab\n" in out
    again = ks("demo", "--dir", tmp_path / "demo", "--no-kernels")
    assert "unchanged" in again.stderr and "built " not in again.stderr
    assert f"kernelstacks kernels install {tmp_path / 'demo' / 'venvstacks.toml'}" in again.stdout


@slow
def test_demo_keeps_an_added_requirement_and_reset_keeps_a_backup(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    first = ks("demo", "--dir", tmp_path / "demo", "--prefix", prefix, timeout=1800)
    assert (prefix / "share" / "jupyter" / "kernels" / "kernelstacks-demo-analysis").is_dir()
    assert f"JUPYTER_PATH={prefix / 'share' / 'jupyter'} jupyter lab" in first.stdout
    spec = tmp_path / "demo" / "venvstacks.toml"
    ks("add", spec, "humanize", "--layer", "analysis")
    edited = spec.read_text()
    rerun = ks("demo", "--dir", tmp_path / "demo", "--no-kernels", timeout=1800)
    assert spec.read_text() == edited and "humanize" in edited
    assert f"kept your edited {spec}" in rerun.stdout and "--reset" in rerun.stdout
    humanize = list(
        (tmp_path / "demo" / "_build" / "app-analysis").glob("lib/*/site-packages/humanize")
    )
    assert humanize, "the kept spec was built"
    reset = ks("demo", "--dir", tmp_path / "demo", "--no-kernels", "--reset", timeout=1800)
    backups = list(spec.parent.glob("venvstacks.toml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == edited
    assert f"your edited copy is saved as {backups[0]}" in reset.stdout
    assert "humanize" not in spec.read_text()


def test_write_demo_writes_missing_files_keeps_edits_and_resets_with_backups(
    tmp_path: Path,
) -> None:
    embedded = demo_files()
    done = write_demo(tmp_path)
    assert done.kept == [] and done.backups == []
    for relative, text in embedded.items():
        assert (tmp_path / relative).read_text() == text
    module = tmp_path / "launch_modules" / "analysis.py"
    module.write_text("print('mine')\n")
    (tmp_path / "launch_modules" / "notebook.py").unlink()
    done = write_demo(tmp_path)
    assert done.kept == [module] and module.read_text() == "print('mine')\n"
    assert (tmp_path / "launch_modules" / "notebook.py").read_text() == embedded[
        "launch_modules/notebook.py"
    ]
    done = write_demo(tmp_path, reset=True)
    assert done.kept == [] and len(done.backups) == 1
    assert done.backups[0].read_text() == "print('mine')\n"
    assert module.read_text() == embedded["launch_modules/analysis.py"]
    # a second reset the same second never overwrites the first backup
    module.write_text("print('again')\n")
    second = write_demo(tmp_path, reset=True).backups[0]
    assert second != done.backups[0] and done.backups[0].read_text() == "print('mine')\n"


def test_write_demo_updates_a_file_it_wrote_that_the_user_left_alone(tmp_path: Path) -> None:
    """An older kernelstacks (or another Python X.Y) wrote a different demo spec: not an edit."""
    from kernelstacks._support.hashing import sha256_text
    from kernelstacks.cli.demo import RECORD

    spec = tmp_path / "venvstacks.toml"
    old = demo_files()["venvstacks.toml"].replace("numpy", "numpy<2")
    spec.write_text(old)
    (tmp_path / RECORD).write_text(json.dumps({"written": {"venvstacks.toml": sha256_text(old)}}))
    done = write_demo(tmp_path)
    assert done.updated == [spec] and done.kept == [] and done.backups == []
    assert spec.read_text() == demo_files()["venvstacks.toml"]
    # an edit after that is the user's again
    spec.write_text(spec.read_text() + "# mine\n")
    assert write_demo(tmp_path).kept == [spec]


def test_closing_lines_say_how_to_get_jupyterlab_when_it_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import shutil

    from kernelstacks.cli import demo

    kernel_dir = tmp_path / "kernels" / "kernelstacks-demo-analysis"
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({"display_name": "demo: analysis (X)"}))
    kernels = [("kernelstacks-demo-analysis", kernel_dir)]
    demo.say_what_next(tmp_path / "_build", tmp_path / "s.toml", kernels, ("user", None))
    out = capsys.readouterr().out
    assert "  demo: analysis (X)  (kernelstacks-demo-analysis, in " in out
    assert "pip install" not in out and "\n  jupyter lab\n" in out
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    demo.say_what_next(tmp_path / "_build", tmp_path / "s.toml", kernels, ("user", None))
    out = capsys.readouterr().out
    assert "  python -m pip install jupyterlab ipywidgets" in out
    assert out.index("pip install jupyterlab") < out.index("\n  jupyter lab\n")
