"""``[tool.kernelstacks.kernelspec.<app>]``: per-application settings of a layered kernel.

::

    [tool.kernelstacks.kernelspec.lab]
    display_name = "Lab (GPU)"        # what Jupyter's launcher and kernel pickers show
    logo = "logos/lab.svg"            # .svg or .png, relative to the stack file
    env = { OMP_NUM_THREADS = "4" }   # extra environment of the kernel
    interrupt_mode = "message"        # or "signal" (the default)

Checked like every other key: unknown applications and keys get a "did you mean", wrong types say
what was expected, and variables kernelstacks sets itself cannot be overridden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelstacks._support.errors import did_you_mean
from kernelstacks.spec.fields import Kind, is_string, is_string_table
from kernelstacks.spec.problems import ProblemLog, RawLayer


def _interrupt_mode(value: object) -> str | None:
    if value in ("signal", "message"):
        return None
    return f'must be "signal" or "message", not {value!r}'


KEYS = {
    "display_name": is_string,
    "logo": is_string,
    "env": is_string_table,
    "interrupt_mode": _interrupt_mode,
}
#: Variables the kernel's launcher and kernel.json set (extended or owned by kernelstacks).
MANAGED_ENV = ("PATH", "PYTHONPATH", "JUPYTER_PATH")


def check_kernelspec_settings(
    raw: list[RawLayer], settings: dict[str, Any], root: Path, log: ProblemLog
) -> None:
    """Each table names an application; each key is known and well typed; logos exist."""
    apps = [r.name for r in raw if r.kind is Kind.APPLICATION and r.name_ok]
    for app, table in settings.get("kernelspec", {}).items():
        label = f"[tool.kernelstacks.kernelspec.{app}]"
        if app not in apps:
            log.problem(
                f"no application named '{app}'{did_you_mean(app, apps)}", key=app, label=label
            )
            continue
        if not isinstance(table, dict):
            log.problem("must be a table of kernel settings", key=app, label=label)
            continue
        for key, value in table.items():
            check = KEYS.get(key)
            if check is None:
                log.problem(f"unknown key '{key}'{did_you_mean(key, KEYS)}", key=key, label=label)
                continue
            error = check(value)
            if error:
                log.problem(error, key=key, label=label)
            elif key == "logo":
                _check_logo(root / str(value), key, label, log)
            elif key == "env":
                _check_env(value, label, log)


def _check_logo(path: Path, key: str, label: str, log: ProblemLog) -> None:
    if path.suffix.lower() not in (".svg", ".png"):
        log.problem(f"logo {path.name!r} must be an .svg or a .png file", key=key, label=label)
    elif not path.is_file():
        log.problem(f"logo file {path} does not exist", key=key, label=label)


def _check_env(env: dict[str, Any], label: str, log: ProblemLog) -> None:
    for name in env:
        if name in MANAGED_ENV or name.startswith("KERNELSTACKS_"):
            log.problem(
                f"'{name}' is set by kernelstacks for every kernel and cannot be overridden",
                key=name,
                label=label,
            )
