"""Choose the interpreter a runtime layer is made from: uv-managed, or one already on this machine.

``managed``
    uv-managed python-build-standalone (``uv python install``). It honours uv's own settings
    (``UV_PYTHON_INSTALL_MIRROR``, ``UV_PYTHON_DOWNLOADS_JSON_URL``, ...) because every uv call
    inherits the caller's environment.
``local``
    An interpreter already on the machine, found with ``uv python find`` or named explicitly
    (``--python cpython@3.12=/path``); the build stage makes a relocatable copy of it.

The lock stage uses the same choice to find an interpreter uv can resolve with.
"""

from __future__ import annotations

import dataclasses
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
        return _local_choice(override, name, version, named_by="override")
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


def _find_override(overrides: Mapping[str, Path] | None, name: str, version: str) -> Path | None:
    """The override for this request: exact key first, then an ``X.Y`` key for an X.Y.Z request."""
    if not overrides:
        return None
    normalised: dict[tuple[str, str], Path] = {}
    for key, path in overrides.items():
        normalised[parse_implementation(key)] = Path(path)
    if (name, version) in normalised:
        return normalised[(name, version)]
    return normalised.get((name, PythonVersion.parse(version).xy))


def _local_choice(python: Path, name: str, version: str, *, named_by: str) -> InterpreterChoice:
    """Validate a local interpreter for the request and describe it as a choice."""
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
    if not version_matches(version, info.version):
        exact = PythonVersion.parse(version).exact
        raise RuntimeProvisionError(
            f"{named_by} interpreter {python} is {name} {info.version}, but {request} was "
            f"requested{' (an exact X.Y.Z must match exactly)' if exact else ''}"
        )
    executable = source_executable(info)
    return InterpreterChoice(
        source="local",
        version=info.version,
        path=executable,
        origin=os.fspath(info.base_prefix),
        implementation=name,
    )


def _find_local(name: str, version: str, env: dict[str, str]) -> InterpreterChoice:
    """Find a non-managed interpreter with ``uv python find`` (never downloads)."""
    request = f"{name}@{version}"
    extra = {**env, "UV_PYTHON_DOWNLOADS": "never"}
    extra["PATH"] = _without_pyenv_shims(env.get("PATH", os.environ.get("PATH", "")))
    args = ["python", "find", "--system", "--no-managed-python", "--no-project", request]
    proc = run_uv(args, extra_env=extra, check=False)
    if proc.returncode != 0:
        raise RuntimeProvisionError(
            f"no local interpreter found for {request}.\n"
            f"Name one explicitly (--python {request}=/path/to/python"
            f"{PythonVersion.parse(version).xy}), put it on "
            f"PATH, or allow uv to download a managed Python (source 'managed' or 'auto' with "
            f"UV_PYTHON_DOWNLOADS not 'never').\nuv said: {tail(proc.stderr, 3)}"
        )
    found = Path(proc.stdout.strip().splitlines()[-1])
    return _local_choice(found, name, version, named_by="discovered")


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
