"""Application layers as Jupyter kernels: kernelspecs, jupyter_client, nbclient, health."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import ks
from kernel_helpers import LAB_KERNEL, kernel_json, user_kernels_dir

jupyter_client = pytest.importorskip("jupyter_client")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]


class Session:
    """A started kernel with a blocking client and a helper to run code."""

    def __init__(self, name: str):
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(kernel_name=name, startup_timeout=120)

    def run(self, code: str, timeout: float = 120) -> tuple[str, list[dict]]:
        """Execute code; return text output and the raw messages."""
        msg_id = self.kc.execute(code)
        text, msgs = [], []
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msgs.append(msg)
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                text.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                text.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(text), msgs

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def lab(kernel_stack: Path):
    session = Session(LAB_KERNEL)
    yield session
    session.close()


def test_kernelspec_is_registered(kernel_stack: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    specs = json.loads(proc.stdout)["kernelspecs"]
    assert LAB_KERNEL in specs
    assert "kernelstacks-kst-plain" not in specs  # no ipykernel in its stack
    spec = kernel_json(LAB_KERNEL)
    assert spec["argv"][1:5] == ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["argv"][0] == str(kernel_stack.parent / "_build" / "app-lab" / "bin" / "python")
    assert spec["language"] == "python" and spec["interrupt_mode"] == "signal"
    assert spec["display_name"].startswith("kst: lab (Python 3.12.")
    assert spec["env"]["PATH"].endswith("${PATH}")
    meta = spec["metadata"]["kernelstacks"]
    assert meta["chain"] == ["app-lab", "framework-data", "framework-jupyter", "cpython-3.12"]
    assert meta["lock_versions"]["app-lab"] == 1
    for logo in ("logo-32x32.png", "logo-64x64.png"):
        assert (user_kernels_dir() / LAB_KERNEL / logo).read_bytes().startswith(b"\x89PNG")


def test_kernel_imports_from_every_layer(lab: Session) -> None:
    out, _ = lab.run(
        "import attrs, tabulate, ipykernel, sys\n"
        "for m in (tabulate, attrs, ipykernel): print(m.__name__, m.__file__)\n"
        "print('base', sys.base_prefix)"
    )
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert "/app-lab/" in lines["tabulate"]
    assert "/framework-data/" in lines["attrs"]
    assert "/framework-jupyter/" in lines["ipykernel"]
    assert lines["base"].endswith("/_build/cpython-3.12")


def test_shell_commands_see_the_stack(lab: Session) -> None:
    out, _ = lab.run("!python -c 'import sys, attrs; print(sys.prefix)'")
    assert out.strip().endswith("/_build/app-lab")


def test_venvstacks_magic_shows_chain(lab: Session) -> None:
    out, msgs = lab.run("%venvstacks")
    for name in ("app-lab", "framework-data", "framework-jupyter", "cpython-3.12"):
        assert name in out
    data = next(m["content"]["data"] for m in msgs if m["msg_type"] == "display_data")
    assert "text/html" in data and "<table>" in data["text/html"]
    kinds = [layer["kind"] for layer in data["application/json"]["layers"]]
    assert kinds == ["application", "framework", "framework", "runtime"]
    out, _ = lab.run("%venvstacks nonsense")
    assert "unknown subcommand" in out and "Traceback" not in out


def test_interrupt_restart_shutdown(lab: Session) -> None:
    msg_id = lab.kc.execute("import time; time.sleep(120)")
    time.sleep(2)
    lab.km.interrupt_kernel()
    reply = lab.kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = lab.kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    lab.km.restart_kernel(now=True)
    lab.kc.wait_for_ready(timeout=120)
    out, _ = lab.run("print(40 + 2)")
    assert out.strip() == "42"
    lab.km.shutdown_kernel(now=True)
    assert not lab.km.is_alive()


def test_install_again_updates_in_place(kernel_stack: Path) -> None:
    before = kernel_json(LAB_KERNEL)
    ks("kernels", "install", kernel_stack)
    assert kernel_json(LAB_KERNEL) == before
    assert [p.name for p in user_kernels_dir().iterdir() if p.name.startswith(".")] == []


def test_explicit_app_without_ipykernel_is_an_error(kernel_stack: Path, tmp_path: Path) -> None:
    proc = ks(
        "kernels", "install", kernel_stack, "--include", "plain", "--prefix", tmp_path, check=False
    )
    assert proc.returncode == 1
    assert "ipykernel" in proc.stderr and "plain" in proc.stderr
    assert "[tool.kernelstacks] kernels" in proc.stderr


def test_prefix_install_and_foreign_clash(kernel_stack: Path, tmp_path: Path) -> None:
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    foreign = kernels / LAB_KERNEL
    foreign.mkdir(parents=True)
    (foreign / "kernel.json").write_text(
        json.dumps({"argv": ["x"], "display_name": "x", "language": "python"})
    )
    proc = ks("kernels", "install", kernel_stack, "--prefix", tmp_path, check=False)
    assert proc.returncode == 1 and "not written by kernelstacks" in proc.stderr
    assert json.loads((foreign / "kernel.json").read_text())["argv"] == ["x"]
    ks("kernels", "install", kernel_stack, "--prefix", tmp_path, "--force")
    assert kernel_json(LAB_KERNEL, kernels)["metadata"]["kernelstacks"]["layer"] == "app-lab"


def test_list_remove_prune_never_touch_foreign_specs(kernel_stack: Path, tmp_path: Path) -> None:
    ks("kernels", "install", kernel_stack, "--prefix", tmp_path)
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    ghost = kernels / "kernelstacks-kst-ghost"
    shutil.copytree(kernels / LAB_KERNEL, ghost)
    spec = json.loads((ghost / "kernel.json").read_text())
    spec["metadata"]["kernelstacks"]["build_dir"] = str(tmp_path / "gone")
    spec["argv"][0] = str(tmp_path / "gone" / "app-ghost" / "bin" / "python")
    (ghost / "kernel.json").write_text(json.dumps(spec))
    foreign = kernels / "someone-elses"
    foreign.mkdir()
    (foreign / "kernel.json").write_text('{"argv": ["x"], "display_name": "x", "language": "x"}')

    listed = json.loads(ks("kernels", "list", "--json", "--prefix", tmp_path).stdout)
    health = {k["name"]: k["health"] for k in listed}
    assert health[LAB_KERNEL] == "ok" and health["kernelstacks-kst-ghost"] == "broken"
    assert "someone-elses" not in health and "python3" not in health

    proc = ks("kernels", "remove", "someone-elses", "--prefix", tmp_path, check=False)
    assert proc.returncode == 1 and foreign.exists()
    ks("kernels", "prune", "--prefix", tmp_path)
    assert not ghost.exists() and foreign.exists()
    assert (user_kernels_dir() / LAB_KERNEL).exists()


def test_broken_stack_shows_message_through_provisioner(kernel_stack: Path, tmp_path: Path) -> None:
    from importlib.metadata import entry_points

    if not entry_points(
        group="jupyter_client.kernel_provisioners", name="kernelstacks-provisioner"
    ):
        pytest.skip("kernelstacks is not installed (its provisioner entry point is missing)")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    ks("kernels", "install", kernel_stack, "--prefix", tmp_path, "--provisioner")
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    spec = json.loads((kernels / LAB_KERNEL / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "kernelstacks-provisioner"
    spec["metadata"]["kernelstacks"]["chain"].append("framework-deleted")
    (kernels / LAB_KERNEL / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    km = KernelManager(kernel_name=LAB_KERNEL, kernel_spec_manager=ksm)
    km.start_kernel()
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        msg_id = kc.execute("print('hello')")
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "error"
        texts = []
        while True:
            msg = kc.get_iopub_msg(timeout=30)
            if msg["msg_type"] == "stream":
                texts.append(msg["content"]["text"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        text = "".join(texts)
        assert "framework-deleted" in text and "kernelstacks build" in text
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
