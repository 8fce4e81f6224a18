"""The contract between the kernelstacks tool and the kernel side: paths, names, events.

Both sides import this module and nothing else of each other: the tool (``kernelstacks``) writes
layers, locks and kernelspecs in these places and emits these progress events; the kernel side
(``kernelstacks_kernel``, running inside a layered kernel where the tool is not installed) reads
them. It uses only the standard library and runs on every Python a runtime may have (3.9 up), so
it must stay free of newer syntax.
"""

from __future__ import annotations

import re

# -- layer kinds and build names ----------------------------------------------------------------

#: Layer kinds in stacking order, with the prefix venvstacks puts before their names.
BUILD_NAME_PREFIXES = {"runtime": "", "framework": "framework-", "application": "app-"}
#: The top-level array of tables holding each kind in a stack file.
SPEC_SECTIONS = {"runtime": "runtimes", "framework": "frameworks", "application": "applications"}


def build_name(kind: str, name: str) -> str:
    """venvstacks build names: runtimes as named, ``framework-<name>``, ``app-<name>``."""
    return BUILD_NAME_PREFIXES[kind] + name


def deploy_name(build: str, versioned: bool, lock_version: int | None) -> str:
    """Deployed directory name: ``<build-name>@<lock_version>`` for versioned layers."""
    if versioned:
        return f"{build}@{lock_version if lock_version is not None else 1}"
    return build


# -- files inside a layer -----------------------------------------------------------------------

#: venvstacks' per-layer metadata (embedding apps and the kernel side read it).
LAYER_METADATA = "share/venv/metadata/venvstacks_layer.json"
#: What kernelstacks built a layer from (input hashes, runtime facts).
BUILD_STATE = "share/venv/metadata/kernelstacks_build.json"
#: What a deployment unpacked into a layer (its fingerprint).
DEPLOY_RECORD = "share/venv/metadata/kernelstacks_deploy.json"
#: The post-install step every built layer carries.
POSTINSTALL = "share/venv/metadata/postinstall.py"

# -- the stack's build directory -----------------------------------------------------------------

#: Where layers are built unless ``--build-dir`` says otherwise: beside the stack file.
DEFAULT_BUILD_DIR = "_build"

# -- the stack's lock tree (venvstacks 0.8's layout, read and written as it is) -----------------

#: Folder beside the stack file that holds every layer's lock.
REQUIREMENTS_DIR = "requirements"
#: Marker venvstacks gives a package that a lower layer provides: never true, so never installed.
SHARED_PACKAGE_MARKER = "sys_platform == 'from_lower_layer'"
#: The word that identifies such a marker (it may be combined with the package's own marker).
SHARED_PACKAGE_TOKEN = "from_lower_layer"


def lock_stem(build: str) -> str:
    """The build name as a pylock file name part: every ``.`` becomes ``_`` (PEP 751 forbids dots).

    ``cpython-3.11`` -> ``cpython-3_11``: venvstacks names ``pylock.cpython-3_11.toml`` so.
    """
    return build.replace(".", "_")


def lock_file_name(build: str) -> str:
    """``pylock.<stem>.toml`` inside ``requirements/<build name>/``."""
    return f"pylock.{lock_stem(build)}.toml"


def lock_meta_file_name(build: str) -> str:
    """``pylock.<stem>.meta.json`` beside the lock file."""
    return f"pylock.{lock_stem(build)}.meta.json"


def lock_input_file_name(build: str) -> str:
    """``requirements-<stem>.in``: the declared requirements, rewritten on every lock run."""
    return f"requirements-{lock_stem(build)}.in"


def package_summary_file_name(build: str) -> str:
    """``packages-<build name>.txt``: a readable summary, rewritten on every lock run."""
    return f"packages-{build}.txt"


def lock_file_rel(build: str) -> str:
    """A layer's lock, relative to the stack file's folder."""
    return f"{REQUIREMENTS_DIR}/{build}/{lock_file_name(build)}"


def lock_meta_rel(build: str) -> str:
    """A layer's lock metadata, relative to the stack file's folder."""
    return f"{REQUIREMENTS_DIR}/{build}/{lock_meta_file_name(build)}"


def is_shared_marker(marker: object) -> bool:
    """Whether a lock entry's marker says a lower layer provides the package."""
    return isinstance(marker, str) and SHARED_PACKAGE_TOKEN in marker


#: Our own records beside the stack file, where venvstacks never looks (never under
#: ``requirements/``): what each lock was made from and which lower layer provides what.
STATE_DIR = ".kernelstacks"


def lock_record_rel(build: str) -> str:
    """kernelstacks' record of a layer's lock, relative to the stack file's folder."""
    return f"{STATE_DIR}/locks/{build}.json"


# -- published and deployed metadata ------------------------------------------------------------

#: Folder of venvstacks' published/exported metadata (``<dir>/__venvstacks__/venvstacks.json``
#: and ``<dir>/__venvstacks__/env_metadata/<layer>.json``).
METADATA_DIR = "__venvstacks__"

# -- kernelspecs --------------------------------------------------------------------------------

#: Our record beside every kernel.json we write (how list/remove/prune know a spec is ours).
KERNEL_RECORD = "kernelstacks.json"
#: Directory inside a kernelspec that holds the kernel side (put on the kernel's PYTHONPATH).
KERNEL_PYLIB = "pylib"


def kernel_name(stack: str, app: str) -> str:
    """Stable, namespaced kernel name ``kernelstacks-<stack>-<app>`` (Jupyter wants lowercase)."""
    raw = f"kernelstacks-{stack}-{app}".lower()
    return re.sub(r"[^a-z0-9._-]+", "-", raw)


#: Environment variables a kernelspec sets for the kernel side.
ENV_STACK = "KERNELSTACKS_STACK"
ENV_LAYER = "KERNELSTACKS_LAYER"
ENV_BUILD_DIR = "KERNELSTACKS_BUILD_DIR"
ENV_KERNEL = "KERNELSTACKS_KERNEL"
ENV_TOOL = "KERNELSTACKS_TOOL"
ENV_SPEC = "KERNELSTACKS_SPEC"

# -- progress events, one JSON object per line: ``--progress-json`` of lock, build, publish and
# local-export (their ``--json`` prints venvstacks' status document), ``--json`` of add, remove
# and deploy -------------------------------------------------------------------------------------

#: Field holding the event type; the other fields are described with each event.
EVENT = "event"
#: A command or a phase of one starts: ``action``, ``layers``, ``total``.
EV_START = "start"
#: Work on one layer begins: ``layer``, ``action``.
EV_LAYER_STARTED = "layer_started"
#: A step within a layer: ``layer``, ``message``.
EV_STEP = "step"
#: Bytes done for one layer (publish, deploy): ``layer``, ``done``, ``total``.
EV_BYTES = "bytes"
#: One layer is done: ``layer``, ``status``, ``seconds``, ``message``, ``index``, ``total``.
EV_LAYER_FINISHED = "layer_finished"
#: Something failed: ``layer`` (or null), ``message``.
EV_ERROR = "error"
#: A remark: ``message``.
EV_NOTE = "note"
#: The command finished: its summary (``layers``, ``errors``, ``ok``...).
EV_DONE = "done"
#: ``add``/``remove`` changed a layer's requirements: ``layer``, ``changes``.
EV_EDITED = "edited"
#: A kernelspec was written: ``name``, ``directory``.
EV_KERNEL_INSTALLED = "kernel_installed"

# -- additions for the launcher (issue 12) ------------------------------------------------------

#: Set by a kernel's launcher: the kernelspec directory it was started from.
ENV_KERNEL_DIR = "KERNELSTACKS_KERNEL_DIR"
#: The launcher script inside every kernelspec directory (``argv[0]`` of kernel.json).
KERNEL_LAUNCHER = "kernelstacks-launch"
#: Directory inside a kernelspec with the ``pip`` commands put first on the kernel's PATH.
KERNEL_BIN = "bin"
#: MIME type of ``%venvstacks ... --json`` output (no frontend ranks it above HTML).
JSON_MIME = "application/vnd.kernelstacks+json"
