"""Application layers as Jupyter kernels: kernelspecs, jupyter_client, nbclient, health."""

from __future__ import annotations

import json
import os
import re
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
        self.last_reply = self._reply(msg_id, timeout)
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msgs.append(msg)
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"].replace("\r\n", "\n"))
            elif kind in ("execute_result", "display_data"):
                text.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                text.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(text), msgs

    def _reply(self, msg_id: str, timeout: float) -> dict:
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]

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
    spec_dir = user_kernels_dir() / LAB_KERNEL
    spec = kernel_json(LAB_KERNEL)
    # argv[0] is the kernelspec's own launcher, which execs the layer's interpreter
    assert spec["argv"] == [str(spec_dir / "kernelstacks-launch"), "-f", "{connection_file}"]
    assert os.access(spec_dir / "kernelstacks-launch", os.X_OK)
    python = kernel_stack.parent / "_build" / "app-lab" / "bin" / "python"
    launcher = (spec_dir / "kernelstacks-launch").read_text()
    assert 'exec "$python" -Xfrozen_modules=off -m kernelstacks_kernel.launch' in launcher
    assert f"python={python}" in launcher
    assert spec["language"] == "python" and spec["interrupt_mode"] == "signal"
    assert spec["display_name"].startswith("kst: lab (Python 3.12.")
    assert "metadata" in spec and "kernel_provisioner" not in spec["metadata"]
    # the environment is extended by the launcher; kernel.json only names the stack
    assert not {"PATH", "PYTHONPATH", "JUPYTER_PATH"} & set(spec["env"])
    assert spec["env"]["KERNELSTACKS_LAYER"] == "app-lab"
    meta = spec["metadata"]["kernelstacks"]
    assert meta["chain"] == ["app-lab", "framework-data", "framework-jupyter", "cpython-3.12"]
    assert meta["lock_versions"]["app-lab"] == 1 and meta["python"] == str(python)
    for logo in ("logo-32x32.png", "logo-64x64.png"):
        assert (spec_dir / logo).read_bytes().startswith(b"\x89PNG")


def test_kernel_json_carries_what_ipykernel_install_writes(kernel_stack: Path) -> None:
    """The stack's own ipykernel says what ``ipykernel install`` would write for it."""
    python = kernel_stack.parent / "_build" / "app-lab" / "bin" / "python"
    code = (
        "import json; from ipykernel.kernelspec import get_kernel_dict as g; print(json.dumps(g()))"
    )
    theirs = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)  # fmt: skip
    ours = kernel_json(LAB_KERNEL)
    assert ours.get("kernel_protocol_version") == theirs.get("kernel_protocol_version")
    assert ours["language"] == theirs["language"]
    for key, value in theirs["metadata"].items():
        if key != "supported_encryption":  # not claimed: the fallback kernel cannot encrypt
            assert ours["metadata"][key] == value, key
    assert "supported_encryption" not in ours["metadata"]


def test_logos_differ_between_stacks(kernel_stack: Path, tour_stack: Path) -> None:
    mine = (user_kernels_dir() / LAB_KERNEL / "logo-svg.svg").read_text()
    tour = (user_kernels_dir() / "kernelstacks-tour-lab" / "logo-svg.svg").read_text()
    assert mine != tour and mine.count("<rect") == tour.count("<rect") == 3


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


def test_pip_in_the_kernel_is_the_stacks(lab: Session) -> None:
    out, _ = lab.run("!which pip")
    assert out.strip() == str(user_kernels_dir() / LAB_KERNEL / "bin" / "pip")
    out, _ = lab.run("!pip list")
    assert re.search(r"^attrs\s+\S+\s+framework-data$", out, re.M), out
    assert re.search(r"^tabulate\s+\S+\s+app-lab$", out, re.M), out
    out, _ = lab.run("!python -m pip show ipykernel")
    assert "Name: ipykernel" in out and "Layer: framework-jupyter" in out
    out, _ = lab.run("!pip install humanize; echo status=$?")
    assert "%venvstacks add humanize" in out and "status=1" in out
    out, _ = lab.run("!python -m pip freeze")
    assert "attrs==" in out and "humanize" not in out
    out, _ = lab.run("%pip install humanize")
    reply = lab.last_reply
    assert reply["status"] == "error" and reply["ename"] == "VenvstacksError"
    assert "%venvstacks add humanize" in out and "Traceback" not in out
    out, _ = lab.run("%pip show tabulate")
    assert "Layer: app-lab" in out and lab.last_reply["status"] == "ok"


def test_venvstacks_magic_shows_chain(lab: Session) -> None:
    out, msgs = lab.run("%venvstacks")
    for name in ("app-lab", "framework-data", "framework-jupyter", "cpython-3.12"):
        assert name in out
    data = next(m["content"]["data"] for m in msgs if m["msg_type"] == "display_data")
    assert set(data) == {"text/html", "text/plain"}  # never a JSON tree in Lab or VS Code
    assert "<table>" in data["text/html"]
    _, msgs = lab.run("%venvstacks show --json")
    data = next(m["content"]["data"] for m in msgs if m["msg_type"] == "display_data")
    assert set(data) == {"application/vnd.kernelstacks+json", "text/plain"}
    kinds = [layer["kind"] for layer in data["application/vnd.kernelstacks+json"]["layers"]]
    assert kinds == ["application", "framework", "framework", "runtime"]
    _, msgs = lab.run("%venvstacks packages --json")
    data = next(m["content"]["data"] for m in msgs if m["msg_type"] == "display_data")
    packages = data["application/vnd.kernelstacks+json"]["packages"]
    assert all(len(p["requires"]) == len(set(p["requires"])) for p in packages)
    out, _ = lab.run("%venvstacks nonsense")
    assert lab.last_reply["status"] == "error" and lab.last_reply["ename"] == "VenvstacksError"
    assert "unknown subcommand" in out and "Traceback" not in out
    assert len(lab.last_reply["traceback"]) == 1


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
    (ghost / "kernel.json").write_text(json.dumps(spec))
    foreign = kernels / "someone-elses"
    foreign.mkdir()
    (foreign / "kernel.json").write_text('{"argv": ["x"], "display_name": "x", "language": "x"}')

    assert ks("kernels", "list", "--check").returncode == 0  # the user dir alone is healthy
    proc = ks("kernels", "list", "--json", "--check", "--prefix", tmp_path, check=False)
    assert proc.returncode == 1  # the ghost is broken
    listed = json.loads(proc.stdout)
    health = {(k["name"], k["directory"]): k for k in listed}
    user_copy = health[(LAB_KERNEL, str(user_kernels_dir() / LAB_KERNEL))]
    prefix_copy = health[(LAB_KERNEL, str(kernels / LAB_KERNEL))]
    assert user_copy["health"] == prefix_copy["health"] == "ok"
    assert user_copy["hidden_by"] is None  # Jupyter uses the per-user copy...
    assert prefix_copy["hidden_by"] == str(user_kernels_dir() / LAB_KERNEL)  # ...not this one
    assert health[("kernelstacks-kst-ghost", str(ghost))]["health"] == "broken"
    names = {k["name"] for k in listed}
    assert "someone-elses" not in names and "python3" not in names

    proc = ks("kernels", "remove", "someone-elses", "--prefix", tmp_path, check=False)
    assert proc.returncode == 1 and foreign.exists()
    dry = ks("kernels", "prune", "--dry-run", "--prefix", tmp_path)
    assert "would prune kernelstacks-kst-ghost" in dry.stdout and ghost.exists()
    ks("kernels", "prune", "--prefix", tmp_path)
    assert not ghost.exists() and foreign.exists()
    assert (user_kernels_dir() / LAB_KERNEL).exists() and (kernels / LAB_KERNEL).exists()


def test_kernel_settings_from_the_stack_file(kernel_stack: Path, tmp_path: Path) -> None:
    """display_name, logo, env and interrupt_mode of [tool.kernelstacks.kernelspec.<app>]."""
    copy = tmp_path / "stack"
    shutil.copytree(kernel_stack.parent / "requirements", copy / "requirements")
    for name in ("lab.py", "plain.py"):
        shutil.copyfile(kernel_stack.parent / name, copy / name)
    (copy / "lab.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="9"/></svg>')
    settings = (
        "\n[tool.kernelstacks.kernelspec.lab]\n"
        'display_name = "Lab with settings"\nlogo = "lab.svg"\n'
        'env = { KS_TEST_SETTING = "on" }\ninterrupt_mode = "message"\n'
    )
    (copy / "venvstacks.toml").write_text(kernel_stack.read_text() + settings)
    build = kernel_stack.parent / "_build"
    ks("kernels", "install", copy / "venvstacks.toml", "--build-dir", build, "--prefix", tmp_path)
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    spec = kernel_json(LAB_KERNEL, kernels)
    assert spec["display_name"] == "Lab with settings" and spec["interrupt_mode"] == "message"
    assert spec["env"]["KS_TEST_SETTING"] == "on"
    assert "circle" in (kernels / LAB_KERNEL / "logo-svg.svg").read_text()

    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    km = KernelManager(
        kernel_name=LAB_KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )
    km.start_kernel()
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        out: list[str] = []
        kc.execute_interactive(
            "import os; print(os.environ['KS_TEST_SETTING'])",
            timeout=60,
            output_hook=lambda m: out.append(m["content"].get("text", "")),
        )
        assert "".join(out).strip() == "on"
        msg_id = kc.execute("import time; time.sleep(120)")
        time.sleep(2)
        km.interrupt_kernel()  # interrupt_mode "message": an interrupt_request, no signal
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
