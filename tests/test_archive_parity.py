"""Archives and published metadata in venvstacks 0.8's layout, reproducible, and deployable both
ways: ours by venvstacks' documented manual procedure, venvstacks' own (published by the real
venvstacks 0.8.0b2) by ``kernelstacks deploy``, kernels included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
support_modules = ["helper", "aaa_support.py"]
frameworks = ["jupyter"]
requirements = ["tabulate"]

[tool.kernelstacks]
name = "parity"

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""

LAYERS = {"cpython-3.12": "runtime", "framework-jupyter": "framework", "app-tool": "application"}
DEPLOYED = {"cpython-3.12": "cpython-3.12", "framework-jupyter": "framework-jupyter@1"}
DEPLOYED["app-tool"] = "app-tool"

# venvstacks 0.8's published layer metadata (docs/file-formats.rst, "Published layer metadata",
# and the TypedDicts LayerSpecMetadata / ArchiveMetadata in venvstacks/stacks.py): field -> type.
COMMON = {
    "layer_name": str,
    "install_target": str,
    "requirements_hash": str,
    "lock_version": int,
    "locked_at": str,
    "runtime_layer": str,
    "python_implementation": str,
    "bound_to_implementation": bool,
    "archive_build": int,
    "archive_name": str,
    "target_platform": str,
    "archive_size": int,
    "archive_hashes": dict,
}
# Which fields each kind has (venvstacks' tests/sample_project/expected_manifests).
FIELDS = {
    "runtime": set(COMMON),
    "framework": set(COMMON) | {"required_layers"},
    "application": set(COMMON)
    | {"required_layers", "app_launch_module", "app_launch_module_hash", "app_support_modules"},
}
TYPES = {
    **COMMON,
    "required_layers": list,
    "app_launch_module": str,
    "app_launch_module_hash": str,
    "app_support_modules": list,
}
#: Our one added key (documented in docs/deploy.md).
OURS = "kernelstacks"


def write_sources(root: Path) -> None:
    (root / "tool.py").write_text(
        "import tabulate, helper, aaa_support\nprint('tool ok', helper.X)\n"
    )
    (root / "helper").mkdir(exist_ok=True)
    (root / "helper" / "__init__.py").write_text("X = 42\n")
    (root / "aaa_support.py").write_text("Y = 1\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parity") / "stack"
    spec = write_spec(root, STACK)
    write_sources(root)
    ks("build", spec, "--lock-if-needed", *python_options())
    return spec


@pytest.fixture(scope="module")
def published(stack: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts")
    ks("publish", stack, "--output-dir", out)
    return out


def summary(out: Path) -> dict:
    found = sorted((out / "__venvstacks__").rglob("venvstacks*.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def test_metadata_has_venvstacks_fields_and_types(stack: Path, published: Path) -> None:
    groups = summary(published)["layers"]
    kinds = {"runtimes": "runtime", "frameworks": "framework", "applications": "application"}
    seen = set()
    for group, kind in kinds.items():
        for record in groups[group]:
            seen.add(record["layer_name"])
            assert LAYERS[record["layer_name"]] == kind
            assert set(record) - {OURS} == FIELDS[kind], record["layer_name"]
            for key, value in record.items():
                if key != OURS:
                    assert isinstance(value, TYPES[key]), (record["layer_name"], key)
            snippet = published / "__venvstacks__" / "env_metadata" / f"{record['layer_name']}.json"
            assert json.loads(snippet.read_text()) == record
            assert record["install_target"] == DEPLOYED[record["layer_name"]]
    assert seen == set(LAYERS)
    runtime = groups["runtimes"][0]
    assert runtime["bound_to_implementation"] is True
    assert runtime["runtime_layer"] == runtime["install_target"]
    app = groups["applications"][0]
    assert app["bound_to_implementation"] is False
    # venvstacks' hashes: file name + content for files, "sha256/" tree hash for packages,
    # support modules sorted as the stack file names them
    assert [m["name"] for m in app["app_support_modules"]] == ["aaa_support", "helper"]
    assert app["app_support_modules"][1]["hash"].startswith("sha256/")
    assert app["app_launch_module_hash"] != "sha256:" + _sha(stack.parent / "tool.py")


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_archives_have_venvstacks_layout(published: Path) -> None:
    for build, deployed in DEPLOYED.items():
        with tarfile.open(published / f"{deployed}.tar.xz") as tar:
            names = set(tar.getnames())
        assert f"{deployed}/postinstall.py" in names, build
        assert f"{deployed}/pyvenv.cfg" not in names
        assert f"{deployed}/.lock" not in names
        assert not [
            n
            for n in names
            if n.startswith((f"{deployed}/bin/activate", f"{deployed}/bin/Activate"))
        ]
        assert f"{deployed}/share/venv/metadata/postinstall.py" not in names
        assert f"{deployed}/share/venv/metadata/venvstacks_layer.json" in names


def test_manual_venvstacks_procedure_deploys_our_archives(published: Path, tmp_path: Path) -> None:
    """venvstacks' docs/concepts.rst: unpack every archive into one directory, then, runtime
    first, run ``{base_python} {layer}/postinstall.py``; then run the app with ``-m``."""
    target = tmp_path / "manual"
    target.mkdir()
    for deployed in DEPLOYED.values():
        with tarfile.open(published / f"{deployed}.tar.xz") as tar:
            tar.extractall(target, filter="tar")
    for deployed in DEPLOYED.values():
        layer = target / deployed
        meta = json.loads((layer / "share/venv/metadata/venvstacks_layer.json").read_text())
        base_python = os.path.normpath(layer / meta["base_python"])
        proc = subprocess.run([base_python, layer / "postinstall.py"], capture_output=True)
        assert proc.returncode == 0, proc.stderr
    proc = run_py(target / "app-tool" / "bin" / "python", "import runpy; runpy.run_module('tool')")
    assert proc.returncode == 0, proc.stderr
    assert "tool ok 42" in proc.stdout


def test_two_builds_of_one_lock_give_identical_archives(stack: Path, tmp_path: Path) -> None:
    """Another build directory, a fresh uv cache, touched files: the same archive bytes."""
    other = tmp_path / "elsewhere" / "stack"
    other.mkdir(parents=True)
    shutil.copy(stack, other / stack.name)
    shutil.copytree(stack.parent / "requirements", other / "requirements")
    write_sources(other)
    for path in other.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "fresh-uv-cache")}
    cmd = [sys.executable, "-m", "kernelstacks", "build", other / stack.name, *python_options()]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for layer in (other / "_build").iterdir():
        if layer.is_dir() and not layer.name.startswith("."):
            for path in list(layer.rglob("*"))[::7]:
                if not path.is_symlink():
                    os.utime(path)
    outs = []
    for spec in (stack, other / stack.name):
        out = tmp_path / f"out-{len(outs)}"
        ks("publish", spec, "--output-dir", out, "--format", "tar.zst")
        outs.append(out)
    for deployed in DEPLOYED.values():
        first, second = (o / f"{deployed}.tar.zst" for o in outs)
        assert first.read_bytes() == second.read_bytes(), deployed


# -- the other way: archives published by the real venvstacks 0.8.0b2, deployed by kernelstacks --


@pytest.fixture(scope="module")
def vs_published(stack: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same stack published by venvstacks itself (its runtime seeded with our built one:
    venvstacks would download python-build-standalone, which this machine cannot reach)."""
    from venvstacks_peer import make_peer, venvstacks

    python311 = local_python("3.11")
    if python311 is None:
        pytest.skip("venvstacks needs a local CPython 3.11 to run")
    peer = make_peer(tmp_path_factory.mktemp("peer"), python311)
    runtime = stack.parent / "_build" / "cpython-3.12"
    meta = json.loads((runtime / "share/venv/metadata/venvstacks_layer.json").read_text())
    root = tmp_path_factory.mktemp("vs") / "stack"
    text = STACK.replace('"cpython@3.12"', f'"cpython@{meta["py_version"]}"')
    spec = write_spec(root, text.replace('[tool.kernelstacks]\nname = "parity"\n', ""))
    write_sources(root)
    build = root / "_vsbuild"
    shutil.copytree(runtime, build / "cpython-3.12", symlinks=True)
    shutil.rmtree(build / "cpython-3.12" / "share" / "venv" / "metadata")
    out = root / "_vsout"
    venvstacks(
        peer, "build", "--lock", "--build-dir", build, "--publish", "--output-dir", out, spec
    )
    return out


def start_kernel(kernel_dir: Path, name: str, code: str) -> str:
    """Start a kernel of ``kernel_dir``, run ``code``, return what it printed."""
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
        msg_id = kc.execute(code)
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


def test_venvstacks_archives_deploy_with_kernelstacks_kernels_included(
    vs_published: Path, tmp_path: Path
) -> None:
    assert (vs_published / "__venvstacks__" / "venvstacks.json").is_file()  # venvstacks' layout
    target = tmp_path / "deployed"
    prefix = tmp_path / "prefix"
    ks("deploy", vs_published, target, "--prefix", prefix)
    proc = run_py(target / "app-tool" / "bin" / "python", "import runpy; runpy.run_module('tool')")
    assert proc.returncode == 0, proc.stderr
    assert "tool ok 42" in proc.stdout
    kernel_dir = prefix / "share" / "jupyter" / "kernels"
    assert os.listdir(kernel_dir) == ["kernelstacks-deployed-tool"]
    text = start_kernel(
        kernel_dir, "kernelstacks-deployed-tool", "import sys, tabulate, helper; print(sys.prefix)"
    )
    assert str(target / "app-tool") in text, text
    # and a second deploy of the same set changes nothing
    proc = ks("deploy", vs_published, target, "--json")
    assert '"deployed"' not in proc.stdout


def test_our_metadata_is_venvstacks_own_for_the_same_stack(
    published: Path, vs_published: Path
) -> None:
    """Field for field, what venvstacks publishes for the same lock (archive bytes aside)."""
    ours = {r["layer_name"]: r for g in summary(published)["layers"].values() for r in g}
    theirs = {r["layer_name"]: r for g in summary(vs_published)["layers"].values() for r in g}
    assert set(ours) == set(theirs)
    differ = {"archive_hashes", "archive_size", OURS}
    for name, record in theirs.items():
        assert set(ours[name]) - {OURS} == set(record), name
        for key, value in record.items():
            assert type(ours[name][key]) is type(value), (name, key)
            if key not in differ:
                assert ours[name][key] == value, (name, key)
        snippet = vs_published / "__venvstacks__" / "env_metadata" / f"{name}.json"
        assert json.loads(snippet.read_text()) == record


def test_tag_outputs_names_files_as_venvstacks(stack: Path, tmp_path: Path) -> None:
    from kernelstacks._support.host import current_platform

    platform = current_platform()
    out = tmp_path / "tagged"
    for _ in range(2):  # the second publish finds every archive unchanged
        ks("publish", stack, "--output-dir", out, "--tag-outputs", "--format", "tar.zst")
    meta = out / "__venvstacks__"
    assert sorted(p.name for p in meta.iterdir()) == ["env_metadata", f"venvstacks-{platform}.json"]
    records = json.loads((meta / f"venvstacks-{platform}.json").read_text())["layers"]
    for record in (r for group in records.values() for r in group):
        assert record["archive_build"] == 1
        assert record["archive_name"] == f"{record['install_target']}-{platform}-1.tar.zst"
        assert (out / record["archive_name"]).is_file()
        snippet = meta / "env_metadata" / f"{record['layer_name']}-{platform}.json"
        assert json.loads(snippet.read_text()) == record
        assert set(record) - {OURS} == FIELDS[LAYERS[record["layer_name"]]]
    target = tmp_path / "deployed"
    ks("deploy", out, target)
    proc = run_py(target / "app-tool" / "bin" / "python", "import runpy; runpy.run_module('tool')")
    assert "tool ok 42" in proc.stdout, proc.stderr
