"""Publish, export and deploy: reproducible archives, safe unpacking, read-only deployments."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import EXCLUDE_NEWER, ks, python_options, run_py
from helpers import write_spec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]

STACK = f"""
[[runtimes]]
name = "cpython-3.12"
python_implementation = "cpython@3.12"
requirements = []

[[frameworks]]
name = "jupyter"
runtime = "cpython-3.12"
requirements = ["ipykernel"]
versioned = true

[[applications]]
name = "tool"
launch_module = "tool.py"
frameworks = ["jupyter"]
requirements = ["tabulate"]

[[applications]]
name = "other"
launch_module = "other.py"
runtime = "cpython-3.12"
requirements = ["six"]

[tool.kernelstacks]
name = "pub"

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""

LAYERS = ("cpython-3.12", "framework-jupyter@1", "app-tool", "app-other")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pub") / "stack"
    spec = write_spec(root, STACK)
    (root / "tool.py").write_text(
        "import sys, tabulate, ipykernel\nprint('tool', sys.base_prefix)\n"
    )
    (root / "other.py").write_text("import sys, six\nprint('other', sys.base_prefix)\n")
    ks("build", spec, "--lock-if-needed", *python_options())
    return spec


@pytest.fixture(scope="module")
def published(stack: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts")
    ks("publish", stack, "--output-dir", out)
    return out


def records(out: Path) -> dict[str, dict]:
    summary = json.loads((out / "__venvstacks__" / "venvstacks.json").read_text())
    return {r["install_target"]: r for kind in summary["layers"].values() for r in kind}


def test_publish_is_reproducible(stack: Path, published: Path, tmp_path: Path) -> None:
    first = records(published)
    assert set(first) == set(LAYERS)
    for name in LAYERS:
        assert (published / f"{name}.tar.xz").is_file()
    again = tmp_path / "again"
    for layer in (stack.parent / "_build").iterdir():  # touching files must not matter
        if layer.is_dir() and not layer.name.startswith("."):
            os.utime(layer / "share/venv/metadata/venvstacks_layer.json")
    ks("publish", stack, "--output-dir", again)
    second = records(again)
    for name in LAYERS:
        assert first[name]["archive_hashes"] == second[name]["archive_hashes"], name
    app = first["app-tool"]
    assert app["required_layers"] == ["framework-jupyter@1"]
    assert app["runtime_layer"] == "cpython-3.12"
    assert app["app_launch_module"] == "tool"
    assert app["python_implementation"].startswith("cpython@3.12.")
    assert app["archive_size"] == (published / "app-tool.tar.xz").stat().st_size
    proc = ks("publish", stack, "--output-dir", published, "--progress-json")
    states = {
        e["layer"]: e["status"]
        for e in map(json.loads, proc.stdout.splitlines())
        if e.get("event") == "layer_finished"
    }
    assert set(states.values()) == {"unchanged"}


def run_app(target: Path, layer: str, module: str) -> str:
    proc = run_py(target / layer / "bin" / "python", f"import runpy; runpy.run_module('{module}')")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def start_kernel_in(kernel_dir: Path, name: str) -> str:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    km = KernelManager(
        kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    )
    km.start_kernel()
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        msg_id = kc.execute("import sys, ipykernel; print(sys.base_prefix, ipykernel.__file__)")
        text = ""
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return text
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_deploy_without_build_dir_and_read_only(
    stack: Path, published: Path, tmp_path: Path
) -> None:
    target = tmp_path / "deployed here"
    kernels = tmp_path / "kernels"
    ks("deploy", published, target, "--prefix", kernels)
    build = stack.parent / "_build"
    hidden = stack.parent / "_build_hidden"
    build.rename(hidden)
    try:
        for _ in range(2):  # writable, then read-only
            assert f"tool {target / 'cpython-3.12'}" in run_app(target, "app-tool", "tool")
            assert f"other {target / 'cpython-3.12'}" in run_app(target, "app-other", "other")
            out = start_kernel_in(kernels / "share/jupyter/kernels", "kernelstacks-pub-tool")
            assert out.startswith(str(target / "cpython-3.12"))
            assert str(target / "framework-jupyter@1") in out
            subprocess.run(["chmod", "-R", "a-w", str(target)], check=True)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(target)], check=True)
        hidden.rename(build)
    assert not list(target.rglob("*.pyc.*"))  # nothing half-written at interpreter start


def test_moved_deployment_needs_relink(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "first"
    ks("deploy", published, target)
    moved = tmp_path / "second"
    target.rename(moved)
    proc = run_py(moved / "app-other" / "bin" / "python", "print('ran')")
    assert proc.returncode != 0 and "ran" not in proc.stdout
    assert "relink" in proc.stderr
    ks("deploy", "--relink", moved)
    assert f"other {moved / 'cpython-3.12'}" in run_app(moved, "app-other", "other")


def deployed_entries(target: Path) -> list[str]:
    """What a deployment directory holds, but for the lock file deploys take on it."""
    if not target.exists():
        return []
    return sorted(p.name for p in target.iterdir() if p.name != ".kernelstacks-deploy.lock")


def _copy_published(published: Path, dest: Path) -> Path:
    shutil.copytree(published, dest)
    return dest


def _rewrite_record(out: Path, name: str, **changes: object) -> None:
    summary_path = out / "__venvstacks__" / "venvstacks.json"
    summary = json.loads(summary_path.read_text())
    for group in summary["layers"].values():
        for record in group:
            if record["install_target"] == name:
                record.update(changes)
    summary_path.write_text(json.dumps(summary))


def test_crafted_archives_are_rejected_with_nothing_written(
    published: Path, tmp_path: Path
) -> None:
    bad = _copy_published(published, tmp_path / "bad")
    evil = bad / "app-other.tar.xz"
    buf = io.BytesIO(b"pwned")
    with tarfile.open(evil, "w:xz") as tar:
        info = tarfile.TarInfo("app-other/../../evil.txt")
        info.size = 5
        tar.addfile(info, buf)
    from kernelstacks._support.hashing import sha256_hex as sha256_file

    _rewrite_record(bad, "app-other", archive_hashes={"sha256": sha256_file(evil)})
    target = tmp_path / "target"
    proc = ks("deploy", bad, target, check=False)
    assert proc.returncode == 1 and "evil.txt" in proc.stderr
    assert not (tmp_path / "evil.txt").exists()
    assert deployed_entries(target) == []

    mismatch = _copy_published(published, tmp_path / "mismatch")
    _rewrite_record(mismatch, "app-tool", archive_hashes={"sha256": "0" * 64})
    proc = ks("deploy", mismatch, target, check=False)
    assert proc.returncode == 1 and "sha256" in proc.stderr.lower()
    assert deployed_entries(target) == []


def test_redeploy_replaces_only_the_changed_layer(
    stack: Path, published: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    ks("deploy", published, target)
    before = {name: (target / name).stat().st_ino for name in LAYERS}
    other = stack.parent / "other.py"
    original = other.read_text()
    try:
        other.write_text(original + "print('changed')\n")
        ks("build", stack, *python_options())
        out = tmp_path / "out2"
        shutil.copytree(published, out)
        ks("publish", stack, "--output-dir", out)
        proc = ks("deploy", out, target, "--json")
        states = {
            e["layer"]: e["status"]
            for e in map(json.loads, proc.stdout.splitlines())
            if e.get("event") == "layer_finished"
        }
        assert states["app-other"] == "deployed"
        assert {states[n] for n in LAYERS if n != "app-other"} == {"unchanged"}
        after = {name: (target / name).stat().st_ino for name in LAYERS}
        assert after["app-other"] != before["app-other"]
        assert {n: after[n] for n in LAYERS if n != "app-other"} == {
            n: before[n] for n in LAYERS if n != "app-other"
        }
        assert "changed" in run_app(target, "app-other", "other")
    finally:
        other.write_text(original)
        ks("build", stack, *python_options())


def test_export_hardlinks_and_runs(stack: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    ks("export", stack, "--output-dir", out)
    assert f"tool {out / 'cpython-3.12'}" in run_app(out, "app-tool", "tool")
    built = stack.parent / "_build" / "app-other" / "lib/python3.12/site-packages/six.py"
    exported = out / "app-other" / "lib/python3.12/site-packages/six.py"
    assert built.stat().st_ino == exported.stat().st_ino  # hard-linked, not copied
    cfg = (stack.parent / "_build" / "app-other" / "pyvenv.cfg").read_text()
    assert str(stack.parent / "_build") in cfg  # the build's own files were not rewritten
    assert stat.S_ISLNK((out / "app-tool" / "bin" / "python").lstat().st_mode)
    assert not os.path.isabs(os.readlink(out / "app-tool" / "bin" / "python"))


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip().startswith("{")]


def test_zstd_publish_and_parallel_deploy_report_real_progress(stack: Path, tmp_path: Path) -> None:
    out = tmp_path / "zst"
    proc = ks("publish", stack, "--output-dir", out, "--format", "tar.zst", "--progress-json")
    events = _events(proc.stdout)
    archived = {e["layer"]: e for e in events if e.get("event") == "layer_finished"}
    assert set(archived) == {name.split("@")[0] for name in LAYERS}
    assert all("tar.zst" in e["message"] and "iB" in e["message"] for e in archived.values())
    byte_events = [e for e in events if e.get("event") == "bytes"]
    assert {e["layer"] for e in byte_events} == set(archived)
    assert all(e["done"] <= e["total"] for e in byte_events)
    for name in LAYERS:
        archive = out / f"{name}.tar.zst"
        assert archive.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    listing = subprocess.run(
        ["tar", "--zstd", "-tf", str(out / "app-tool.tar.zst")], capture_output=True, text=True
    )
    assert listing.returncode == 0 and "app-tool/bin/python" in listing.stdout, listing.stderr

    target = tmp_path / "deployed"
    proc = ks("deploy", out, target, "--json")
    events = _events(proc.stdout)
    finished = {e["layer"]: e for e in events if e.get("event") == "layer_finished"}
    assert set(finished) == set(LAYERS)
    assert all(e["status"] == "deployed" and e["seconds"] > 0 for e in finished.values())
    unpacked = {e["layer"] for e in events if e.get("event") == "bytes"}
    assert unpacked == set(LAYERS)
    assert "tool" in run_app(target, "app-tool", "tool")
    assert not [name for name in deployed_entries(target) if name.startswith(".")]


def test_publish_refuses_a_bad_level_before_work(stack: Path, tmp_path: Path) -> None:
    proc = ks("publish", stack, "--output-dir", tmp_path, "--level", "30", check=False)
    assert proc.returncode == 1
    assert "levels are 0-9" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.tar.*"))


def _missing_pycs(target: Path) -> tuple[list[Path], list[Path]]:
    """Sources without a pyc: (in test suites, elsewhere) — site-packages and the stdlib."""
    tests, other = [], []
    for layer in target.iterdir():
        for source in layer.glob("lib/python3*/**/*.py"):
            pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
            if pyc.exists():
                continue
            if {"test", "tests"} & set(source.relative_to(layer).parts[:-1]):
                tests.append(source)
            elif _is_python(source):  # (files that are not Python get no pyc, as with pip)
                other.append(source)
    return tests, other


def _is_python(source: Path) -> bool:
    try:
        compile(source.read_bytes(), str(source), "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def test_deploy_compiles_all_but_test_suites_unless_asked(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "deployed"
    ks("deploy", published, target)
    tests, other = _missing_pycs(target)
    assert other == []
    assert any("tornado/test" in str(p) for p in tests), tests[:5]  # real suites left as source
    proc = ks("deploy", published, target, "--compile-tests", "--json")
    assert set(json.loads(proc.stdout.splitlines()[-1])["layers"].values()) == {"deployed"}
    assert _missing_pycs(target) == ([], [])
    proc = ks("deploy", published, target, "--compile-tests", "--json")
    assert set(json.loads(proc.stdout.splitlines()[-1])["layers"].values()) == {"unchanged"}
