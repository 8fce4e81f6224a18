"""The jupyter_kernel_test conformance suite against a layered kernel."""

from __future__ import annotations

import unittest
from pathlib import Path

import pytest

from conftest import local_python
from kernel_helpers import LAB_KERNEL

jkt = pytest.importorskip("jupyter_kernel_test")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_python("3.12") is None, reason="needs a local CPython 3.12"),
]


@pytest.fixture(scope="module", autouse=True)
def _stack(kernel_stack: Path) -> Path:
    """Build the kernel stack (shared session fixture) before the suite starts its kernel."""
    return kernel_stack


class LayeredKernelTests(jkt.KernelTests):
    """Conformance checks: execution, streams, errors, completion, inspection, history..."""

    kernel_name = LAB_KERNEL
    language_name = "python"
    file_extension = ".py"
    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    completion_samples = [{"text": "zi", "matches": {"zip"}}]  # noqa: RUF012
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n"]  # noqa: RUF012
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]  # noqa: RUF012
    invalid_code_samples = ["import = 7q"]  # noqa: RUF012
    code_page_something = "zip?"
    code_generate_error = "raise"
    code_execute_result = [{"code": "1+2+3", "result": "6"}]  # noqa: RUF012
    code_display_data = [  # noqa: RUF012
        {
            "code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))",
            "mime": "text/html",
        },
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"


if __name__ == "__main__":
    unittest.main()
