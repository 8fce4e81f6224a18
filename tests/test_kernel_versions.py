"""The kernel side on other Pythons and ipykernels: CPython 3.10 (no tomllib), 3.13, ipykernel 7.

The kernel side runs in the stack's interpreter, which may be any CPython a stack file accepts
(3.9 up), not the tool's, with whatever ipykernel the stack locks (the restart relies on a few of
its attributes). One stack with a 3.10 and a 3.13 runtime (ipykernel 6) and one with ipykernel 7
are built, and every magic, the read-only pip and the in-place restart run in each kernel under
nbclient.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import local_python
from engine_helpers import EXCLUDE_NEWER, ks
from helpers import write_spec
from kernel_helpers import user_kernels_dir

pytest.importorskip("nbclient")

VERSIONS = ("3.10", "3.13")
pytestmark = pytest.mark.slow


def spec_text() -> str:
    parts = []
    for version in VERSIONS:
        tag = version.replace(".", "")
        parts.append(f"""
[[runtimes]]
name = "cpython-{version}"
python_implementation = "cpython@{version}"
requirements = []

[[frameworks]]
name = "jupyter{tag}"
runtime = "cpython-{version}"
requirements = ["ipykernel", "ipywidgets"]

[[applications]]
name = "py{tag}"
launch_module = "app.py"
frameworks = ["jupyter{tag}"]
requirements = ["tabulate"]
""")
    parts.append(
        f'[tool.kernelstacks]\nname = "vers"\n\n[tool.uv]\nexclude-newer = "{EXCLUDE_NEWER}"\n'
    )
    return "\n".join(parts)


IPYKERNEL7 = """
[[runtimes]]
name = "cpython-3.12"
python_implementation = "cpython@3.12"
requirements = []

[[frameworks]]
name = "jupyter"
runtime = "cpython-3.12"
requirements = ["ipykernel>=7,<8", "ipywidgets"]

[[applications]]
name = "py312"
launch_module = "app.py"
frameworks = ["jupyter"]
requirements = ["tabulate"]

[tool.kernelstacks]
name = "ipk7"

[tool.uv]
exclude-newer = "2026-11-01T00:00:00Z"
"""


@pytest.fixture(scope="module")
def ipykernel7_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if local_python("3.12") is None:
        pytest.skip("needs a local CPython 3.12")
    spec = write_spec(tmp_path_factory.mktemp("ipk7") / "stack", IPYKERNEL7, modules=("app.py",))
    ks("build", spec, "--lock-if-needed", "--kernels", "--python",
       f"cpython@3.12={local_python('3.12')}")  # fmt: skip
    return spec


@pytest.fixture(scope="module")
def versions_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if any(local_python(v) is None for v in VERSIONS):
        pytest.skip("needs local CPython 3.10 and 3.13")
    root = tmp_path_factory.mktemp("versions") / "stack"
    spec = write_spec(root, spec_text(), modules=("app.py",))
    pythons = [x for v in VERSIONS for x in ("--python", f"cpython@{v}={local_python(v)}")]
    ks("build", spec, "--lock-if-needed", "--kernels", *pythons)
    return spec


CELLS = [
    "import sys\nprint(sys.version_info[:2])",
    "import ipykernel\nprint('ipykernel', ipykernel.__version__)",
    "%venvstacks",
    "%venvstacks packages --json",
    "%venvstacks why tabulate",
    "%venvstacks diff",
    "!pip list",
    "%pip install humanize",
    "%venvstacks explore",
    "before = 1",
    "%venvstacks restart",
    "print('fresh', 'before' not in globals())",
]


def run_cells(kernel: str) -> tuple:
    """Run :data:`CELLS` on a kernel with nbclient; (notebook, source -> output text)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in CELLS]
    client = NotebookClient(
        nb, kernel_name=kernel, timeout=300, allow_error_names=["VenvstacksError"]
    )
    client.execute()
    out = {}
    for cell in nb.cells:
        parts = []
        for o in cell.outputs:
            parts.append(o.get("text", "") + o.get("data", {}).get("text/plain", ""))
            parts.append(json.dumps(o.get("data", {}).get("application/vnd.kernelstacks+json", "")))
            if o["output_type"] == "error":
                parts.append(f"{o['ename']}: {o['evalue']}")
        out[cell.source] = "".join(parts)
    return nb, out


def test_every_magic_on_python_3_10_and_3_13(versions_stack: Path) -> None:
    # one test for both kernels: the stack is built once (not once per xdist worker)
    for version in VERSIONS:
        nb, out = run_cells(f"kernelstacks-vers-py{version.replace('.', '')}")
        check(nb, out, version)


def test_every_magic_with_ipykernel_7(ipykernel7_stack: Path) -> None:
    python = ipykernel7_stack.parent / "_build" / "app-py312" / "bin" / "python"
    code = (
        "import json; from ipykernel.kernelspec import get_kernel_dict as g; print(json.dumps(g()))"
    )
    theirs = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)  # fmt: skip
    ours = json.loads((user_kernels_dir() / "kernelstacks-ipk7-py312" / "kernel.json").read_text())
    assert theirs.get("kernel_protocol_version")  # ipykernel 7 writes one...
    assert ours["kernel_protocol_version"] == theirs["kernel_protocol_version"]  # ...and so do we
    nb, out = run_cells("kernelstacks-ipk7-py312")
    assert "ipykernel 7." in out["import ipykernel\nprint('ipykernel', ipykernel.__version__)"]
    check(nb, out, "3.12")


def check(nb, out: dict[str, str], version: str) -> None:
    """What every kernel must show for :data:`CELLS`."""
    major, minor = version.split(".")
    assert f"({major}, {minor})" in out[CELLS[0]]
    assert f"cpython-{version}" in out["%venvstacks"] and "app-py" in out["%venvstacks"]
    data = nb.cells[3].outputs[0]["data"]
    assert set(data) == {"application/vnd.kernelstacks+json", "text/plain"}
    packages = data["application/vnd.kernelstacks+json"]["packages"]
    tab = next(p for p in packages if p["name"] == "tabulate")
    assert tab["layer"].startswith("app-py")
    why = out["%venvstacks why tabulate"]
    # the lock is read (tomllib, or the subset reader on 3.10) and matches what is installed
    assert re.search(rf"locked version\s+{re.escape(tab['version'])}", why), why
    assert "app-py" in why
    assert "DRIFT" not in out["%venvstacks diff"] and "matches its lock" in out["%venvstacks diff"]
    assert "tabulate" in out["!pip list"]
    assert "VenvstacksError" in out["%pip install humanize"]
    assert nb.cells[8].outputs and "application/vnd.jupyter.widget-view+json" in json.dumps(
        nb.cells[8].outputs[0]["data"]
    )
    assert "Kernel restarted" in out["%venvstacks restart"]
    assert "fresh True" in out["print('fresh', 'before' not in globals())"]
    for source, text in out.items():
        assert "Traceback" not in text, source
