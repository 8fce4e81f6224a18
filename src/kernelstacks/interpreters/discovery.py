"""Choose the interpreter a runtime layer is made from: uv-managed, or one already on this machine.

``managed``
    uv-managed python-build-standalone (``uv python install``). It honours uv's own settings
    (``UV_PYTHON_INSTALL_MIRROR``, ``UV_PYTHON_DOWNLOADS_JSON_URL``, ...) because every uv call
    inherits the caller's environment.
``local``
    An interpreter already on the machine, found with ``uv python find`` or named explicitly
    (``--python cpython@3.12=/path``); the build stage makes a relocatable copy of it.

An exact pin (``cpython@3.12.9``) is honoured exactly, except when the user names an interpreter
for that very pin (``--python cpython@3.12.9=/path/to/3.12.1``): an offline machine may only have
another patch release of the same X.Y, and saying so explicitly is enough. Such a choice carries a
:attr:`InterpreterChoice.warning` that the build prints and records in the runtime's metadata.
When no interpreter matches a pin, the error names the same-X.Y interpreters this machine has and
the ``--python`` option that would use one.

The lock stage uses the same choice to find an interpreter uv can resolve with.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path

from packaging.version import InvalidVersion, Version

from kernelstacks._support.processes import tail
from kernelstacks._support.uv import run_uv
from kernelstacks._support.versions import PythonVersion
from kernelstacks.interpreters.inspect import (
    RuntimeProvisionError,
    base_interpreter,
    is_within,
    source_executable,
)

SOURCES = ("auto", "managed", "local")
SUPPORTED_IMPLEMENTATIONS = ("cpython",)
MANAGED_ORIGIN = "python-build-standalone via uv"
_DOWNLOADS_DISABLED = ("never", "manual")


@dataclasses.dataclass(frozen=True)
class InterpreterChoice:
    """Which interpreter a runtime is (or will be) built from, recorded in the layer metadata."""

    source: str  # "managed" | "local"
    version: str  # exact X.Y.Z
    path: Path | None  # interpreter executable (None: managed, not installed yet)
    origin: str  # copied prefix, or MANAGED_ORIGIN
    implementation: str = "cpython"
    requested: str | None = None  # the python_implementation asked for, when it differs
    warning: str | None = None  # why the version differs from the request, for the user


# ---------------------------------------------------------------------------------------------
# Parsing requests


def parse_implementation(impl: str) -> tuple[str, str]:
    """Split ``"cpython@3.11"`` into ``("cpython", "3.11")``, rejecting what we cannot build.

    Only CPython is supported (the venvstacks format names the implementation explicitly), and the
    version must be ``X.Y`` (any patch release) or an exact ``X.Y.Z``.
    """
    if not isinstance(impl, str) or "@" not in impl:
        raise RuntimeProvisionError(
            f"invalid python_implementation {impl!r}: expected 'cpython@X.Y' or 'cpython@X.Y.Z'"
        )
    name, _, version = impl.strip().partition("@")
    name, version = name.strip().lower(), version.strip()
    if name not in SUPPORTED_IMPLEMENTATIONS:
        raise RuntimeProvisionError(
            f"unsupported Python implementation {name!r} in {impl!r}: only 'cpython' is supported"
        )
    try:
        PythonVersion.parse(version)
    except ValueError:
        raise RuntimeProvisionError(
            f"invalid Python version {version!r} in {impl!r}: expected X.Y or X.Y.Z"
        ) from None
    return name, version


def version_matches(requested: str, actual: str) -> bool:
    """An ``X.Y`` request accepts any patch release of X.Y; ``X.Y.Z`` only that release."""
    return PythonVersion.parse(requested).accepts(actual)


# ---------------------------------------------------------------------------------------------
# Choosing an interpreter


def choose_interpreter(
    impl: str,
    source: str = "auto",
    overrides: Mapping[str, Path] | None = None,
    env: Mapping[str, str] | None = None,
) -> InterpreterChoice:
    """Pick the interpreter a runtime for ``impl`` (``"cpython@3.12"``) is built from.

    ``source`` is ``"managed"`` (uv-managed python-build-standalone, installed if needed),
    ``"local"`` (an interpreter on this machine) or ``"auto"``: an already installed managed
    Python, else a managed install when uv may download (``UV_PYTHON_DOWNLOADS`` is not
    ``never``/``manual``), else a local interpreter. ``overrides`` maps implementation strings
    to interpreter paths (``--python cpython@3.12=/opt/py/bin/python3``); an override wins for
    ``local`` and ``auto``. ``env`` holds environment settings applied on top of ``os.environ``
    for the decision and for every uv call (tests use it to steer uv).
    """
    name, version = parse_implementation(impl)
    if source not in SOURCES:
        raise RuntimeProvisionError(
            f"unknown Python source {source!r}: expected one of {', '.join(SOURCES)}"
        )
    env = dict(env or {})
    override = _find_override(overrides, name, version) if source != "managed" else None
    if override is not None:
        path, names_pin = override
        return _local_choice(path, name, version, named_by="override", names_pin=names_pin)
    if source == "local":
        return _find_local(name, version, env)
    if source == "managed":
        return _find_or_install_managed(name, version, env, allow_install=_may_install(env))
    return _choose_auto(name, version, env)


def _downloads_setting(env: Mapping[str, str]) -> str:
    """uv's ``UV_PYTHON_DOWNLOADS`` as it applies to our uv calls."""
    value = env.get("UV_PYTHON_DOWNLOADS", os.environ.get("UV_PYTHON_DOWNLOADS", "automatic"))
    return value.strip().lower() or "automatic"


def _may_install(env: Mapping[str, str]) -> bool:
    """An explicit ``managed`` request may run ``uv python install`` unless downloads are off."""
    return _downloads_setting(env) != "never"


def _choose_auto(name: str, version: str, env: dict[str, str]) -> InterpreterChoice:
    """``auto``: prefer managed (installed, or downloadable), fall back to a local interpreter."""
    may_download = _downloads_setting(env) not in _DOWNLOADS_DISABLED
    try:
        return _find_or_install_managed(name, version, env, allow_install=may_download)
    except RuntimeProvisionError as managed_error:
        try:
            return _find_local(name, version, env)
        except RuntimeProvisionError as local_error:
            if not may_download:
                raise local_error from None
            raise RuntimeProvisionError(
                f"no {name}@{version} available.\nmanaged: {managed_error}\nlocal: {local_error}"
            ) from None


def _find_override(
    overrides: Mapping[str, Path] | None, name: str, version: str
) -> tuple[Path, bool] | None:
    """The override for this request and whether its key is the request itself.

    The exact key comes first, then an ``X.Y`` key for an X.Y.Z request.
    """
    if not overrides:
        return None
    normalised: dict[tuple[str, str], Path] = {}
    for key, path in overrides.items():
        normalised[parse_implementation(key)] = Path(path)
    if (name, version) in normalised:
        return normalised[(name, version)], PythonVersion.parse(version).exact
    found = normalised.get((name, PythonVersion.parse(version).xy))
    return (found, False) if found is not None else None


def _local_choice(
    python: Path, name: str, version: str, *, named_by: str, names_pin: bool = False
) -> InterpreterChoice:
    """Validate a local interpreter for the request and describe it as a choice.

    ``names_pin``: the user named this interpreter for the exact ``X.Y.Z`` requested, so another
    patch release of X.Y is accepted (with a warning).
    """
    request = f"{name}@{version}"
    if not python.exists():
        raise RuntimeProvisionError(
            f"{named_by} interpreter for {request} does not exist: {python}"
        )
    if not os.access(python, os.X_OK) or python.is_dir():
        raise RuntimeProvisionError(f"{named_by} path for {request} is not executable: {python}")
    info = base_interpreter(python)
    if info.implementation != name:
        raise RuntimeProvisionError(
            f"{named_by} interpreter {python} is {info.implementation}, not {name} ({request})"
        )
    warning = None
    if not version_matches(version, info.version):
        warning = _accepted_mismatch(python, name, version, info.version, named_by, names_pin)
    executable = source_executable(info)
    return InterpreterChoice(
        source="local",
        version=info.version,
        path=executable,
        origin=os.fspath(info.base_prefix),
        implementation=name,
        requested=request if warning else None,
        warning=warning,
    )


def _accepted_mismatch(
    python: Path, name: str, version: str, actual: str, named_by: str, names_pin: bool
) -> str:
    """The warning for another patch release named for an exact pin; other mismatches raise.

    Only an interpreter named for the exact pin itself may differ, and only in the patch release:
    X.Y decides the lock, the site-packages path and the ABI.
    """
    request = f"{name}@{version}"
    wanted = PythonVersion.parse(version)
    try:
        same_xy = PythonVersion.of_release(actual).xy_tuple == wanted.xy_tuple
    except ValueError:
        same_xy = False
    if names_pin and same_xy:
        return (
            f"{request} is pinned, but {python} is {name} {actual}: building the runtime from "
            f"{actual} as --python {request}=... asks (patch releases differ)"
        )
    if not same_xy or not wanted.exact:
        raise RuntimeProvisionError(
            f"{named_by} interpreter {python} is {name} {actual}, but {request} was requested"
        )
    raise RuntimeProvisionError(
        f"{named_by} interpreter {python} is {name} {actual}, but the stack pins {request} "
        f"(an exact X.Y.Z must match). To build from {actual} anyway, name the pin itself: "
        f"--python {request}={python}"
    )


def _find_local(name: str, version: str, env: dict[str, str]) -> InterpreterChoice:
    """Find a non-managed interpreter with ``uv python find`` (never downloads)."""
    request = f"{name}@{version}"
    extra = {**env, "UV_PYTHON_DOWNLOADS": "never"}
    extra["PATH"] = _without_pyenv_shims(env.get("PATH", os.environ.get("PATH", "")))
    args = ["python", "find", "--system", "--no-managed-python", "--no-project", request]
    proc = run_uv(args, extra_env=extra, check=False)
    if proc.returncode != 0:
        raise RuntimeProvisionError(_not_found_message(name, version, extra, tail(proc.stderr, 3)))
    found = Path(proc.stdout.strip().splitlines()[-1])
    return _local_choice(found, name, version, named_by="discovered")


def _not_found_message(name: str, version: str, env: dict[str, str], uv_said: str) -> str:
    """Why no local interpreter fits, what this machine has instead, and how to point at one."""
    request = f"{name}@{version}"
    wanted = PythonVersion.parse(version)
    lines = [f"no local interpreter found for {request}."]
    others = _same_minor_interpreters(name, wanted.xy, env) if wanted.exact else []
    if others:
        have = ", ".join(f"{v} ({p})" for v, p in others)
        version_found, python = others[0]
        lines += [
            f"The stack pins {request}; this machine has {name} {wanted.xy} only as {have}: "
            f"the patch release differs ({version_found} instead of {version}).",
            f"To build the runtime from {version_found} anyway (a warning is printed and recorded "
            f"in the runtime's metadata): --python {request}={python}",
            f"To accept any {wanted.xy} release, change the pin to python_implementation = "
            f'"{name}@{wanted.xy}".',
        ]
    lines.append(
        f"Or name a {request} interpreter explicitly (--python {request}=/path/to/python"
        f"{wanted.xy}), put it on PATH, or allow uv to download a managed Python (source "
        "'managed' or 'auto' with UV_PYTHON_DOWNLOADS not 'never')."
    )
    lines.append(f"uv said: {uv_said}")
    return "\n".join(lines)


def _same_minor_interpreters(name: str, xy: str, env: dict[str, str]) -> list[tuple[str, Path]]:
    """(version, path) of local interpreters of ``name`` X.Y, as ``uv python list`` finds them."""
    args = ["python", "list", "--only-installed", "--no-managed-python", f"{name}@{xy}"]
    args += ["--output-format", "json"]
    proc = run_uv(args, extra_env=env, check=False)
    if proc.returncode != 0:
        return []
    try:
        entries = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return []
    found: dict[str, tuple[str, Path]] = {}
    for entry in entries:
        path, version = entry.get("path"), entry.get("version")
        if isinstance(path, str) and isinstance(version, str):
            found.setdefault(os.path.realpath(path), (version, Path(path)))
    return list(found.values())


def _without_pyenv_shims(path_value: str) -> str:
    """Replace pyenv's shim directory on PATH with the ``bin/`` of every pyenv version.

    A pyenv shim for a version that is not selected exits 127, and uv aborts discovery on such a
    candidate (astral-sh/uv#21047). The versions' own ``bin/`` directories hold the same
    interpreters without the indirection, newest first.
    """
    entries: list[str] = []
    for entry in path_value.split(os.pathsep):
        shims = Path(entry)
        versions = shims.parent / "versions"
        if entry and shims.name == "shims" and versions.is_dir():
            entries.extend(os.fspath(p) for p in _pyenv_version_bins(versions))
        else:
            entries.append(entry)
    return os.pathsep.join(dict.fromkeys(entries))


def _pyenv_version_bins(versions: Path) -> list[Path]:
    """``bin/`` of each real pyenv version (not pyenv-virtualenv links), newest version first."""

    def key(path: Path) -> tuple[int, Version | str]:
        try:
            return (1, Version(path.name))
        except InvalidVersion:
            return (0, path.name)

    dirs = [p for p in versions.iterdir() if not p.is_symlink() and (p / "bin").is_dir()]
    return [p / "bin" for p in sorted(dirs, key=key, reverse=True)]


def _find_or_install_managed(
    name: str, version: str, env: dict[str, str], *, allow_install: bool
) -> InterpreterChoice:
    """A uv-managed interpreter for the request: installed already, or installed now."""
    found = find_managed(name, version, env)
    if found is None and allow_install:
        install_managed(name, version, env)
        found = find_managed(name, version, env)
    if found is None:
        raise RuntimeProvisionError(
            f"no uv-managed {name}@{version} is installed and downloads are disabled "
            f"(UV_PYTHON_DOWNLOADS={_downloads_setting(env)}); allow downloads, run "
            f"'uv python install {name}-{version}', or use a local interpreter"
        )
    info = base_interpreter(found)
    if not version_matches(version, info.version):
        raise RuntimeProvisionError(
            f"uv returned {name} {info.version} at {found} for {name}@{version}"
        )
    return InterpreterChoice(
        source="managed",
        version=info.version,
        path=source_executable(info),
        origin=MANAGED_ORIGIN,
        implementation=name,
    )


def find_managed(name: str, version: str, env: Mapping[str, str]) -> Path | None:
    """Path of an installed uv-managed interpreter for the request; never touches the network."""
    args = ["python", "find", "--managed-python", "--no-project", f"{name}@{version}"]
    extra = {**env, "UV_PYTHON_DOWNLOADS": "never"}
    proc = run_uv(args, extra_env=extra, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    found = Path(proc.stdout.strip().splitlines()[-1])
    # uv also answers with virtual environments; only its own installations count as managed.
    where = run_uv(["python", "dir"], extra_env=extra, check=False).stdout.strip()
    if not where or not is_within(os.path.realpath(found), os.path.realpath(where)):
        return None
    return found


def install_managed(name: str, version: str, env: Mapping[str, str]) -> None:
    """``uv python install`` (no ``bin/`` shims: the user's PATH is not ours to change)."""
    args = ["python", "install", "--no-bin", f"{name}-{version}"]
    proc = run_uv(args, extra_env=dict(env), check=False)
    if proc.returncode != 0:
        raise RuntimeProvisionError(
            f"uv could not install {name}@{version}: {tail(proc.stderr, 4)}\n"
            "Set UV_PYTHON_INSTALL_MIRROR or UV_PYTHON_DOWNLOADS_JSON_URL to reach a mirror, "
            f"or use a local interpreter (--python {name}@{version}=/path/to/python)"
        )
