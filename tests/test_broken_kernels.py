"""A broken stack is explained inside the notebook, however its kernel was registered.

One small stack is built, then registered in every way kernelstacks offers: ``build --kernels``,
``build --kernels-prefix``, ``kernels install`` with ``--user``, ``--sys-prefix`` (from another
environment) and ``--prefix``, ``--provisioner``, and ``deploy --prefix`` of an export. Then its
layers are broken and every registration is started with jupyter_client: each must answer with an
error that names the missing layer and the command that repairs *that* registration (no hidden
duplicates in another scope), and ``kernels list --check`` / ``prune`` must find every copy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import ks
from kernel_helpers import build_stack, run_in_kernel, user_kernels_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]

SPEC = """
[[runtimes]]
name = "cpython-3.12"
python_implementation = "cpython@3.12"
requirements = []

[[frameworks]]
name = "jupyter"
runtime = "cpython-3.12"
requirements = ["ipykernel"]

[[applications]]
name = "nb"
launch_module = "nb.py"
frameworks = ["jupyter"]
requirements = []

[tool.kernelstacks]
name = "brk"

[tool.uv]
exclude-newer = "2025-06-01T00:00:00Z"
"""
NAME = "kernelstacks-brk-nb"
SRC = Path(__file__).resolve().parents[1] / "src"


def kernels_under(prefix: Path) -> Path:
    return prefix / "share" / "jupyter" / "kernels"


def sys_prefix_install(spec: Path, tmp: Path) -> Path:
    """``kernels install --sys-prefix`` run by a kernelstacks in another environment."""
    from kernelstacks._support.uv import uv_binary

    venv = tmp / "other-env"
    subprocess.run([uv_binary(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), sysconfig.get_paths()["purelib"]])
    cmd = [str(venv / "bin" / "python"), "-m", "kernelstacks", "kernels", "install", str(spec)]
    subprocess.run([*cmd, "--sys-prefix"], check=True, env=env, capture_output=True)
    return kernels_under(venv)


@pytest.fixture(scope="module")
def registrations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """way -> (kernels dir holding the kernel, text its repair command must contain)."""
    tmp = tmp_path_factory.mktemp("broken")
    spec = build_stack(tmp / "stack", SPEC, "--kernels", modules=("nb.py",))
    p_build, p_install, p_prov, p_deploy = (tmp / n for n in ("pb", "pi", "pp", "pd"))
    ks("build", spec, "--kernels-prefix", p_build)
    ks("kernels", "install", spec, "--prefix", p_install)
    ks("kernels", "install", spec, "--prefix", p_prov, "--provisioner")
    ks("export", spec, "--output-dir", tmp / "export")
    ks("deploy", tmp / "export", tmp / "deployed", "--prefix", p_deploy)
    sys_prefix = sys_prefix_install(spec, tmp)
    return {
        "build --kernels": (user_kernels_dir(), "--kernels"),
        "build --kernels-prefix": (kernels_under(p_build), f"--kernels-prefix {p_build}"),
        "kernels install --prefix": (kernels_under(p_install), f"--kernels-prefix {p_install}"),
        "kernels install --sys-prefix": (sys_prefix, f"--kernels-prefix {sys_prefix.parents[2]}"),
        "kernels install --provisioner": (kernels_under(p_prov), f"--kernels-prefix {p_prov}"),
        "deploy --prefix": (kernels_under(p_deploy), f"deploy ... {tmp / 'deployed'}"),
    }


def layer_dirs(kernels_dir: Path) -> tuple[Path, list[str]]:
    meta = json.loads((kernels_dir / NAME / "kernel.json").read_text())["metadata"]
    return Path(meta["kernelstacks"]["build_dir"]), meta["kernelstacks"]["chain"]


def assert_explained(kernels_dir: Path, missing: str, repair: str, way: str) -> None:
    reply, outputs = run_in_kernel(kernels_dir, NAME, "print('hello')")
    assert reply["status"] == "error", way
    assert reply["ename"] == "KernelstacksBrokenStack", way
    text = "\n".join(reply["traceback"])
    assert f"{NAME}" in text and missing in text, f"{way}: {text}"
    assert repair in text, f"{way}: repair should contain {repair!r}:\n{text}"
    assert [m["msg_type"] for m in outputs] == ["execute_input", "error"], way


def test_every_registration_explains_a_broken_stack(
    registrations: dict[str, tuple[Path, str]],
) -> None:
    for way, (kernels_dir, _repair) in registrations.items():
        reply, _ = run_in_kernel(kernels_dir, NAME, "import sys; print(sys.prefix)")
        assert reply["status"] == "ok", way  # whole: every registration starts

    moved = []
    try:
        for way, (kernels_dir, repair) in registrations.items():
            build_dir, chain = layer_dirs(kernels_dir)
            framework = build_dir / chain[1]
            if framework.exists():
                moved.append((framework, framework.with_name(framework.name + ".away")))
                framework.rename(moved[-1][1])
            assert_explained(kernels_dir, f"layer '{chain[1]}' is missing", repair, way)

        listed = ks(
            "kernels", "list", "--check", "--json", *prefix_options(registrations), check=False
        )
        assert listed.returncode == 1
        copies = json.loads(listed.stdout)
        assert {c["health"] for c in copies} == {"broken"} and len(copies) == len(registrations)
        assert sum(c["hidden_by"] is None for c in copies) == 1  # the others are hidden copies
    finally:
        for original, away in moved:
            away.rename(original)

    build_dir, chain = layer_dirs(user_kernels_dir())
    app = build_dir / chain[0]
    app.rename(app.with_name("app.away"))
    try:  # the layer's own interpreter is gone: another Python explains it
        assert_explained(user_kernels_dir(), "interpreter", "--kernels", "no interpreter")
        dry = ks("kernels", "prune", "--dry-run", *prefix_options(registrations))
        assert "would prune" in dry.stdout and (user_kernels_dir() / NAME).exists()
    finally:
        app.with_name("app.away").rename(app)


def prefix_options(registrations: dict[str, tuple[Path, str]]) -> list[str]:
    """``--prefix`` options that make ``kernels list`` see every registration."""
    options = []
    for kernels_dir, _ in registrations.values():
        if kernels_dir != user_kernels_dir():
            options += ["--prefix", str(kernels_dir.parents[2])]
    return options


def test_install_refuses_an_unbuilt_stack(
    registrations: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    kernels_dir = registrations["kernels install --prefix"][0]
    spec = Path(
        json.loads((kernels_dir / NAME / "kernel.json").read_text())["env"]["KERNELSTACKS_SPEC"]
    )
    build_dir, chain = layer_dirs(kernels_dir)
    framework = build_dir / chain[1]
    framework.rename(framework.with_name("fw.away"))
    try:
        refused = ks("kernels", "install", spec, "--prefix", tmp_path, check=False)
        assert refused.returncode == 1
        assert "not fully built" in refused.stderr and chain[1] in refused.stderr
        assert "--force" in refused.stderr and not kernels_under(tmp_path).exists()
        forced = ks("kernels", "install", spec, "--prefix", tmp_path, "--force")
        assert "WARNING" in forced.stderr and "BROKEN" in forced.stderr
        assert (kernels_under(tmp_path) / NAME / "kernel.json").is_file()
    finally:
        framework.with_name("fw.away").rename(framework)
