"""%venvstacks in real layered kernels (notebooks/ run in tests/test_notebooks.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import local_python

pytest.importorskip("nbclient")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]

TOUR_KERNEL = "kernelstacks-tour-lab"


def execute(path: Path, kernel: str, **options):
    """Run a notebook with nbclient on a layered kernel; return it with outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name=kernel, timeout=900, **options).execute()
    return nb


def cell_text(cell) -> str:
    """Everything a code cell showed, as text (streams, text/plain, JSON)."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts.append(data.get("text/plain", ""))
        if "application/vnd.kernelstacks+json" in data:
            parts.append(json.dumps(data["application/vnd.kernelstacks+json"]))
        if "application/vnd.jupyter.widget-view+json" in data:
            parts.append("<widget>")
        if out.get("output_type") == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "".join(parts)


def outputs_by_source(nb) -> dict[str, str]:
    return {c.source: cell_text(c) for c in nb.cells if c.cell_type == "code"}


def test_magic_errors_fail_the_cell_in_one_line(tour_stack: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%venvstacks why no-such-package-here"),
        nbformat.v4.new_code_cell("%venvstacks packages --layer nope"),
        nbformat.v4.new_code_cell("%venvstacks add 'bad>=>1'"),
        nbformat.v4.new_code_cell("%venvstacks frobnicate"),
        nbformat.v4.new_code_cell("%pip uninstall -y tabulate"),
    ]
    path = tour_stack.parent / "errors.ipynb"
    nbformat.write(nb, path)
    executed = execute(path, TOUR_KERNEL, allow_errors=True)
    out = outputs_by_source(executed)
    assert "not installed in any layer" in out["%venvstacks why no-such-package-here"]
    assert "no layer 'nope'" in out["%venvstacks packages --layer nope"]
    assert "invalid requirement" in out["%venvstacks add 'bad>=>1'"]
    assert "unknown subcommand 'frobnicate'" in out["%venvstacks frobnicate"]
    assert "%venvstacks remove tabulate" in out["%pip uninstall -y tabulate"]
    for cell in executed.cells:
        errors = [o for o in cell.outputs if o["output_type"] == "error"]
        assert len(errors) == 1 and errors[0]["ename"] == "VenvstacksError", cell.source
        assert len(errors[0]["traceback"]) == 1, cell.source  # one line, no traceback
        assert "Traceback" not in cell_text(cell)


def test_a_failing_magic_stops_the_run(tour_stack: Path) -> None:
    import nbformat
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%venvstacks why no-such-package-here"),
        nbformat.v4.new_code_cell("print('not reached')"),
    ]
    path = tour_stack.parent / "stops.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(CellExecutionError, match="not installed in any layer"):
        execute(path, TOUR_KERNEL)


def test_restart_under_nbclient_runs_the_next_cell_on_the_new_kernel(tour_stack: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import os\nbefore = os.getpid()\nprint('pid', before)"),
        nbformat.v4.new_code_cell("%venvstacks restart"),
        nbformat.v4.new_code_cell("import os\nprint('pid', os.getpid(), 'before' in globals())"),
        nbformat.v4.new_code_cell("print(6 * 7)"),
    ]
    path = tour_stack.parent / "restart.ipynb"
    nbformat.write(nb, path)
    executed = execute(path, TOUR_KERNEL)
    first, restart, after, last = (cell_text(c) for c in executed.cells)
    # the same process (exec'd in place: Jupyter never sees the kernel die)...
    assert first.split()[1] == after.split()[1]
    # ...but a fresh interpreter: nothing from before the restart is left
    assert after.split()[2] == "False" and "Kernel restarted" in restart
    assert last.strip() == "42"
    counts = [c.execution_count for c in executed.cells]
    assert counts == [1, 2, 3, 4]


def test_restart_in_an_interactive_frontend_stops_queued_cells(tour_stack: Path) -> None:
    """Lab's Run All sends every cell at once: queued ones are aborted, never run on the old
    kernel, and the kernel comes back by itself."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=TOUR_KERNEL, startup_timeout=120)
    try:
        kc.execute_interactive("before = 1", timeout=60)
        sources = ["%venvstacks restart", "print('queued 1')", "print('queued 2')"]
        ids = [kc.execute(code, allow_stdin=True) for code in sources]
        replies: dict[str, dict] = {}
        while len(replies) < len(ids):
            msg = kc.get_shell_msg(timeout=60)
            if msg["parent_header"].get("msg_id") in ids:
                replies[msg["parent_header"]["msg_id"]] = msg["content"]
        restart, *queued = (replies[i] for i in ids)
        assert restart["status"] == "error" and restart["ename"] == "KernelRestarting"
        assert "run the cells below this one again" in restart["evalue"]
        assert [q["status"] for q in queued] == ["aborted", "aborted"]
        # the restarted kernel says it is idle once it is back (what Lab's status bar shows)
        deadline = time.monotonic() + 60
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            state = msg["content"].get("execution_state")
            if msg["msg_type"] == "status" and not msg["parent_header"] and state == "idle":
                break
            assert time.monotonic() < deadline
        out = []
        kc.execute_interactive(
            "print('before' in globals())",
            timeout=60,
            output_hook=lambda m: out.append(m["content"].get("text", "")),
        )
        assert "".join(out).strip() == "False"
        assert km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_an_interrupted_build_fails_the_cell(tour_stack: Path) -> None:
    """Interrupting a long lock/build stops the tool and fails the cell (the run stops)."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=TOUR_KERNEL, startup_timeout=120)
    try:  # a stand-in for a long build: the kernel runs this instead of kernelstacks
        slow = (
            "import json, os, sys; os.environ['KERNELSTACKS_TOOL'] = json.dumps("
            "[sys.executable, '-c', 'import time; time.sleep(120)'])"
        )
        assert kc.execute_interactive(slow, timeout=60)["content"]["status"] == "ok"
        msg_id = kc.execute("%venvstacks build")
        time.sleep(3)
        km.interrupt_kernel()
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "VenvstacksError"
        assert "build interrupted" in reply["content"]["evalue"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
