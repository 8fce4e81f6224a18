"""Deploy is as safe as build (issue 15 points 2-4, 7): nothing written outside the target, no
archive code run before every hash matches, no mixing of stacks, serialised, all-or-nothing under
kill -9, and messages instead of tracebacks."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import local_python
from engine_helpers import EXCLUDE_NEWER, ks, python_options, run_py
from helpers import write_spec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]


def stack_text(name: str, app: str) -> str:
    return f"""
[[runtimes]]
name = "cpython-3.12"
python_implementation = "cpython@3.12"
requirements = []

[[applications]]
name = "{app}"
launch_module = "{app}.py"
runtime = "cpython-3.12"
requirements = ["six"]

[tool.kernelstacks]
name = "{name}"

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""


def publish_stack(root: Path, name: str, app: str) -> Path:
    spec = write_spec(root, stack_text(name, app))
    (root / f"{app}.py").write_text(f"import six\nprint('{app} ok')\n")
    ks("build", spec, "--lock-if-needed", *python_options())
    out = root.parent / f"{name}-out"
    ks("publish", spec, "--output-dir", out, "--format", "tar.zst")
    return out


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("safety")
    return publish_stack(base / "a", "alpha", "one"), publish_stack(base / "b", "beta", "two")


def copy_of(out: Path, dest: Path) -> Path:
    shutil.copytree(out, dest)
    return dest


def summary_path(out: Path) -> Path:
    return out / "__venvstacks__" / "venvstacks.json"


def edit_records(out: Path, layer: str, **changes: object) -> None:
    path = summary_path(out)
    data = json.loads(path.read_text())
    for records in data["layers"].values():
        for record in records:
            if record["layer_name"] == layer:
                record.update(changes)
    path.write_text(json.dumps(data))


def app_runs(target: Path, app: str) -> bool:
    python = target / f"app-{app}" / "bin" / "python"
    if not python.exists():
        return False
    proc = run_py(python, f"import runpy; runpy.run_module('{app}')")
    return proc.returncode == 0 and f"{app} ok" in proc.stdout


def leftovers(target: Path) -> list[str]:
    return sorted(
        n for n in os.listdir(target) if any(m in n for m in ("~new-", "~old-", "~trash"))
    )


def deploy(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kernelstacks", "deploy", *map(os.fspath, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize(
    "bad",
    ["l/../../../pwned", "/tmp/ks-absolute-pwned", "..", "app\n", ".hidden", "a" * 300],
)
def test_install_target_is_checked_like_an_archive_member(
    stacks: tuple[Path, Path], tmp_path: Path, bad: str
) -> None:
    out = copy_of(stacks[0], tmp_path / "out")
    edit_records(out, "app-one", install_target=bad)
    target = tmp_path / "deep" / "target"
    proc = deploy(out, target)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    message = proc.stdout + proc.stderr
    assert "venvstacks.json" in message and "install_target" in message, message
    assert not (tmp_path / "pwned").exists() and not Path("/tmp/ks-absolute-pwned").exists()
    assert not target.exists() or not os.listdir(target)


def test_no_postinstall_runs_before_every_hash_matches(
    stacks: tuple[Path, Path], tmp_path: Path
) -> None:
    out = copy_of(stacks[0], tmp_path / "out")
    marker = tmp_path / "payload-ran"
    runtime = out / "cpython-3.12.tar.zst"
    _rewrite_member(
        out, "cpython-3.12", "postinstall.py", f"open({str(marker)!r}, 'w').write('x')\n"
    )
    # the app's archive no longer matches its metadata: deploy must stop before any post-install
    app = out / "app-one.tar.zst"
    app.write_bytes(app.read_bytes()[:-64] + b"\0" * 64)
    proc = deploy(out, tmp_path / "target")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert not marker.exists()
    # a tampered archive whose metadata was updated to match: refused by a trusted manifest
    trusted = tmp_path / "SHA256SUMS"
    trusted.write_text(
        "".join(f"{_sha(p)}  {p.name}\n" for p in sorted(stacks[0].glob("*.tar.zst")))
    )
    shutil.copy(stacks[0] / "app-one.tar.zst", app)
    edit_records(out, "app-one", archive_hashes={"sha256": _sha(app)})
    proc = deploy(out, tmp_path / "target", "--expect-sha256", trusted)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "cpython-3.12.tar.zst" in proc.stdout + proc.stderr
    assert not marker.exists()
    assert runtime.exists()
    # the genuine set passes the same manifest
    proc = deploy(stacks[0], tmp_path / "good", "--expect-sha256", trusted)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert app_runs(tmp_path / "good", "one")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite_member(out: Path, layer: str, member: str, text: str) -> None:
    """Replace one file of a layer archive and update its metadata to match (a tampered set)."""
    archive = out / f"{layer}.tar.zst"
    unpacked = out.parent / "unpacked"
    subprocess.run(["tar", "--zstd", "-xf", archive, "-C", out.parent], check=True)
    unpacked = out.parent / layer
    (unpacked / member).write_text(text)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(unpacked, arcname=layer)
    import zstandard

    archive.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    shutil.rmtree(unpacked)
    edit_records(out, layer, archive_hashes={"sha256": _sha(archive)})


def test_another_stack_is_not_deployed_over_without_replace(
    stacks: tuple[Path, Path], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    assert deploy(stacks[0], target).returncode == 0
    proc = deploy(stacks[1], target)
    assert proc.returncode == 1 and "--replace" in proc.stdout + proc.stderr
    assert app_runs(target, "one") and not (target / "app-two").exists()
    proc = deploy(stacks[1], target, "--replace")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert app_runs(target, "two") and not (target / "app-one").exists()
    assert leftovers(target) == []


def test_concurrent_deploys_are_serialised(stacks: tuple[Path, Path], tmp_path: Path) -> None:
    target = tmp_path / "target"
    cmd = [sys.executable, "-m", "kernelstacks", "deploy", os.fspath(stacks[0]), os.fspath(target)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    first_out, _ = first.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, first_out + second.stdout
    assert "waiting for another kernelstacks" in first_out + second.stdout + second.stderr
    assert app_runs(target, "one") and leftovers(target) == []


@pytest.mark.parametrize(
    "step",
    [
        "deploy-unpacked",
        "deploy-staged",
        "swap-prepared",
        "swap-moved-aside",
        "swap-moved-in",
        "swap-committed",
    ],
)
def test_kill_at_each_deploy_step_then_next_deploy_recovers(
    stacks: tuple[Path, Path], tmp_path: Path, step: str
) -> None:
    target = tmp_path / "target"
    assert deploy(stacks[0], target).returncode == 0
    for layer in ("cpython-3.12", "app-one"):  # make every layer look changed: all are swapped
        record = target / layer / "share/venv/metadata/kernelstacks_deploy.json"
        record.write_text(json.dumps({"fingerprint": "sha256:old"}))
    proc = deploy(stacks[0], target, env={**os.environ, "KERNELSTACKS_CRASH_AT": step})
    assert proc.returncode == -9, proc.stdout + proc.stderr
    proc = deploy(stacks[0], target)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert app_runs(target, "one")
    assert leftovers(target) == []


def test_malformed_metadata_is_reported_not_a_traceback(
    stacks: tuple[Path, Path], tmp_path: Path
) -> None:
    for text in ("{", "[]", '{"layers": []}', '{"layers": {"runtimes": [5]}}'):
        out = copy_of(stacks[0], tmp_path / f"out{len(text)}")
        summary_path(out).write_text(text)
        proc = deploy(out, tmp_path / "target")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "venvstacks.json" in proc.stdout + proc.stderr


def test_garbage_layer_metadata_is_reported_with_the_layer(
    stacks: tuple[Path, Path], tmp_path: Path
) -> None:
    out = copy_of(stacks[0], tmp_path / "out")
    _rewrite_member(out, "app-one", "share/venv/metadata/venvstacks_layer.json", "garbage{")
    target = tmp_path / "target"
    proc = deploy(out, target)
    message = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in message, message
    assert "app-one" in message
    assert not (target / "app-one").exists() and leftovers(target) == []


def test_corrupt_kernel_record_is_listed_as_broken(tmp_path: Path) -> None:
    from kernelstacks.jupyter.registry import RECORD, find_kernels

    kernels = tmp_path / "share" / "jupyter" / "kernels" / "kernelstacks-x-y"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({"argv": [], "metadata": {"kernelstacks": {}}}))
    (kernels / RECORD).write_text("not json")
    found = [k for k in find_kernels([tmp_path]) if k.directory == kernels]
    assert found and found[0].health == "broken"
    assert RECORD in found[0].problems[0]
    for command in ("list", "prune"):
        proc = subprocess.run(
            [sys.executable, "-m", "kernelstacks", "kernels", command, "--prefix", tmp_path],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "not json" in (kernels / RECORD).read_text()  # reported, never silently rewritten


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *options: str) -> Iterator[Path]:
    """A small real filesystem (to fill up, or read-only); skip where mounting is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", *options])
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", where], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False)


def test_full_disk_in_postinstall_names_the_layer_and_the_error(
    stacks: tuple[Path, Path], tmp_path: Path
) -> None:
    deployed = tmp_path / "deployed"
    assert deploy(stacks[0], deployed).returncode == 0
    with tmpfs(tmp_path / "small", "8m") as small:
        subprocess.run(
            ["tar", "--zstd", "-xf", stacks[0] / "app-one.tar.zst", "-C", small], check=True
        )
        cmd = [deployed / "cpython-3.12" / "bin" / "python3", small / "app-one" / "postinstall.py"]
        subprocess.run([*cmd, "--no-compile"], check=True, capture_output=True)  # relocated
        with contextlib.suppress(OSError), open(small / "filler", "wb", buffering=0) as filler:
            while True:  # fill the disk
                filler.write(b"\0" * 4096)
        proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "BrokenProcessPool" not in proc.stderr, proc.stderr
    assert "app-one" in proc.stderr and "No space left on device" in proc.stderr, proc.stderr


def test_read_only_target_is_a_message(stacks: tuple[Path, Path], tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", "ro") as read_only:
        proc = deploy(stacks[0], read_only / "target")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "Read-only file system" in proc.stdout + proc.stderr


@given(st.text(min_size=0, max_size=300))
@settings(max_examples=400, deadline=None)
def test_any_accepted_layer_name_is_one_directory_inside_the_target(name: str) -> None:
    from kernelstacks._support.errors import KernelstacksError
    from kernelstacks.distribute.sources import check_layer_name

    try:
        check_layer_name("venvstacks.json: layers.runtimes[0]", "install_target", name)
    except KernelstacksError as exc:
        assert "install_target" in str(exc)
        return
    target = Path("/deploy/target")
    placed = Path(os.path.normpath(target / name))
    assert placed.parent == target and placed.name == name
    assert not name.startswith(".") and len(name.encode("utf-8", "surrogateescape")) <= 255
