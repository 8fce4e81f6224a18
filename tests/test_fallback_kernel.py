"""The stdlib fallback kernel: a broken stack explained in the notebook, driven by real clients.

It speaks ZeroMQ's wire protocol itself (pyzmq may be what is missing), so these tests talk to it
with jupyter_client and nbclient exactly as JupyterLab, nbconvert and papermill would. The fast
ones run it on the test interpreter; ``test_fallback_kernel_on_python_3_9`` on CPython 3.9, the
oldest Python a stack may use.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import local_python

jupyter_client = pytest.importorskip("jupyter_client")

SRC = Path(__file__).resolve().parents[1] / "src"
MESSAGE = "This kernelstacks kernel (kst) cannot start:\n  - layer 'framework-x' is missing"


def fallback_spec(kernels: Path, python: str) -> str:
    """A kernelspec running the fallback kernel with a fixed message."""
    spec = kernels / "fallback"
    spec.mkdir(parents=True)
    argv = [python, "-m", "kernelstacks_kernel.fallback", "-f", "{connection_file}"]
    kernel = {
        "argv": [*argv, "--message", MESSAGE],
        "display_name": "broken",
        "language": "python",
        "env": {"PYTHONPATH": str(SRC)},
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return "fallback"


class Started:
    """A started fallback kernel, its client and its stderr."""

    def __init__(self, kernels: Path, name: str, log: Path) -> None:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        self.log = log
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        self.km = KernelManager(kernel_name=name, kernel_spec_manager=ksm)
        with open(log, "w") as err:
            self.km.start_kernel(stderr=err)
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def reply(self, msg_id: str, channel: str = "shell") -> dict:
        get = self.kc.get_shell_msg if channel == "shell" else self.kc.get_control_msg
        while True:
            msg = get(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def close(self) -> None:
        self.kc.stop_channels()
        if self.km.is_alive():
            self.km.shutdown_kernel(now=True)


def start(tmp_path: Path, python: str) -> Iterator[Started]:
    kernels = tmp_path / "kernels"
    started = Started(kernels, fallback_spec(kernels, python), tmp_path / "kernel.log")
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Started]:
    yield from start(tmp_path, sys.executable)


def check_protocol(kernel: Started) -> None:
    """Every request gets an answer; every cell fails with the message; no traceback logged."""
    kc = kernel.kc
    info = kernel.reply(kc.kernel_info())["content"]
    assert info["implementation"] == "kernelstacks-fallback" and info["debugger"] is False
    assert info["language_info"]["name"] == "python" and "framework-x" in info["banner"]

    outputs = []
    reply = kc.execute_interactive("print(1)", timeout=30, output_hook=outputs.append)["content"]
    assert reply["status"] == "error" and reply["ename"] == "KernelstacksBrokenStack"
    assert reply["evalue"] == MESSAGE.splitlines()[0] and reply["execution_count"] == 1
    errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
    assert errors and errors[0]["traceback"] == MESSAGE.splitlines()
    assert kc.execute_interactive("2", timeout=30)["content"]["execution_count"] == 2

    assert kernel.reply(kc.complete("pri"))["content"]["matches"] == []
    assert kernel.reply(kc.inspect("zip"))["content"]["found"] is False
    assert kernel.reply(kc.is_complete("x"))["content"]["status"] == "complete"
    assert kernel.reply(kc.history())["content"]["history"] == []
    assert kernel.reply(kc.comm_info())["content"]["comms"] == {}

    # JupyterLab's debugger asks on the control channel: a polite "no", not a traceback
    debug = kc.session.msg("debug_request", {"seq": 7, "type": "request", "command": "debugInfo"})
    kc.control_channel.send(debug)
    answer = kernel.reply(debug["header"]["msg_id"], "control")["content"]
    assert answer["success"] is False and answer["request_seq"] == 7

    kernel.km.interrupt_kernel()  # SIGINT: nothing to interrupt, the kernel stays up
    time.sleep(0.5)
    assert kernel.km.is_alive()
    kernel.km.shutdown_kernel()
    assert not kernel.km.is_alive()
    log = kernel.log.read_text()
    assert "framework-x" in log and "Traceback" not in log


def test_fallback_kernel_answers_and_fails_every_cell(kernel: Started) -> None:
    check_protocol(kernel)


def test_nbclient_stops_at_the_first_cell(tmp_path: Path) -> None:
    pytest.importorskip("nbclient")
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    kernels = tmp_path / "kernels"
    name = fallback_spec(kernels, sys.executable)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(1)"), nbformat.v4.new_code_cell("print(2)")]
    client = NotebookClient(nb, kernel_name=name, timeout=60)
    client.km = client.kernel_manager_class(
        kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert "cannot start" in str(info.value) and "framework-x" in str(info.value)
    assert nb.cells[0].outputs[0]["ename"] == "KernelstacksBrokenStack"
    assert nb.cells[1].outputs == []  # the run stopped


@pytest.mark.slow
@pytest.mark.skipif(local_python("3.9") is None, reason="needs a local CPython 3.9")
def test_fallback_kernel_on_python_3_9(tmp_path: Path) -> None:
    """The oldest Python a stack may use runs the fallback kernel (standard library only)."""
    for started in start(tmp_path, str(local_python("3.9"))):
        check_protocol(started)
