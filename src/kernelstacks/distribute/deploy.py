"""``kernelstacks deploy``: unpack published archives (or copy an export) into a target.

Every layer is unpacked or copied into a staging directory inside TARGET, relocated for its final
place by its own post-install step and compiled there; only when every layer is ready are they
renamed into place. A failure before that leaves TARGET exactly as it was. Layers whose deployed
copy came from the same archive (or the same build) are left alone, so redeploying after one app
changed replaces only that app.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks._support.atomic import read_json, write_json
from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.host import current_platform
from kernelstacks._support.progress import Reporter
from kernelstacks._support.scheduler import run_in_order
from kernelstacks._support.swap import new_staging_dir, recover, remove_tree, replace_all
from kernelstacks.distribute.archive_extract import safe_extract
from kernelstacks.distribute.relocation import POSTINSTALL, run_postinstall
from kernelstacks_kernel import contract

LAYER_METADATA = Path(contract.LAYER_METADATA)
DEPLOY_RECORD = Path(contract.DEPLOY_RECORD)
METADATA_DIR = contract.METADATA_DIR
#: The journal of a deployment's all-or-nothing swap, inside the target.
SWAP_JOURNAL = ".kernelstacks-deploy~swap.json"


@dataclass
class DeploySummary:
    """What deploy did per layer."""

    target: Path
    states: dict[str, str] = field(default_factory=dict)
    kernels: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "target": str(self.target),
            "layers": self.states,
            "kernels": self.kernels,
            "ok": True,
        }


def read_source(source: Path) -> list[dict[str, Any]]:
    """The layer records of a publish output or export dir, runtimes first."""
    summary = source / METADATA_DIR / current_platform() / "venvstacks.json"
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KernelstacksError(
            f"{source} is not a kernelstacks publish or export directory (no {summary})"
        ) from None
    except ValueError as exc:
        raise KernelstacksError(f"{summary}: unreadable metadata: {exc}") from None
    groups = data.get("layers", {})
    return [r for kind in ("runtimes", "frameworks", "applications") for r in groups.get(kind, [])]


def _fingerprint(source: Path, record: dict[str, Any]) -> str:
    """What identifies the deployed content: the archive hash, else the build inputs."""
    sha = record.get("archive_hashes", {}).get("sha256")
    return f"sha256:{sha}" if sha else f"build:{record['kernelstacks'].get('build_inputs_hash')}"


def _deployed_fingerprint(layer_dir: Path) -> str | None:
    """The fingerprint recorded in an already deployed layer (None if absent or unreadable)."""
    value = (read_json(layer_dir / DEPLOY_RECORD) or {}).get("fingerprint")
    return value if isinstance(value, str) else None


def deploy(
    source: Path, target: Path, *, jobs: int | None = None, reporter: Reporter | None = None
) -> DeploySummary:
    """Deploy every layer of ``source`` into ``target`` (all or nothing).

    Each changed layer is unpacked (or copied) into a staging directory beside its final place
    and relocated there by its post-install step (which compiles its bytecode on every core);
    layers are unpacked ``jobs`` at a time (default: one per core) and a layer's post-install
    starts as soon as it and its runtime are unpacked. Then every staged layer is swapped in as
    one journaled transaction, so a failure or a kill at any point leaves ``target`` as it was
    (an interrupted swap is rolled back or completed by the next deploy).
    """
    reporter = reporter or Reporter()
    source, target = source.absolute(), target.absolute()
    records = read_source(source)
    target.mkdir(parents=True, exist_ok=True)
    recover(target / SWAP_JOURNAL)
    run = _DeployRun(source, target, reporter)
    reporter.start("deploy", [r["install_target"] for r in records])
    try:
        run.plan(records)
        outcomes = run_in_order(run.tasks(), run.deps, run.work, jobs=jobs or os.cpu_count() or 1)
        failed = [o.error for o in outcomes.values() if o.error is not None]
        if failed:
            raise failed[0]
        pairs = [(layer, target / name) for name, layer in run.staged.items()]
        replace_all(pairs, target / SWAP_JOURNAL)
    except BaseException:
        for layer in run.staged.values():
            remove_tree(layer)
        raise
    for name in run.staged:
        reporter.layer_finished(name, "deployed", time.monotonic() - run.started[name])
    summary_file = Path(METADATA_DIR, current_platform(), "venvstacks.json")
    write_json(target / summary_file, read_json(source / summary_file))
    reporter.done(run.summary.as_dict())
    return run.summary


@dataclass
class _DeployRun:
    """One deploy: which layers are staged where, and the unpack/post-install tasks."""

    source: Path
    target: Path
    reporter: Reporter
    summary: DeploySummary = field(init=False)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    staged: dict[str, Path] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.summary = DeploySummary(self.target)

    def plan(self, records: list[dict[str, Any]]) -> None:
        """Skip layers already deployed from the same content; stage the others."""
        for record in records:
            name = record["install_target"]
            self.started[name] = time.monotonic()
            if _deployed_fingerprint(self.target / name) == _fingerprint(self.source, record):
                self.summary.states[name] = "unchanged"
                self.reporter.layer_finished(name, "unchanged", 0.0)
                continue
            self.records[name] = record
            self.staged[name] = new_staging_dir(self.target / name)
            self.summary.states[name] = "deployed"

    def tasks(self) -> list[str]:
        """``unpack:<layer>`` and ``post:<layer>`` for every layer to deploy."""
        return [f"{step}:{name}" for name in self.staged for step in ("unpack", "post")]

    def deps(self, task: str) -> list[str]:
        """A post-install needs its layer and its runtime unpacked (a staged runtime's python)."""
        step, _, name = task.partition(":")
        if step == "unpack":
            return []
        runtime = self.records[name].get("runtime_layer") or name
        return [f"unpack:{name}"] + ([f"unpack:{runtime}"] if runtime in self.staged else [])

    def work(self, task: str) -> None:
        step, _, name = task.partition(":")
        record, layer = self.records[name], self.staged[name]
        if step == "unpack":
            self.reporter.layer_started(name, "unpacking")
            self.started[name] = time.monotonic()
            progress = functools.partial(self.reporter.bytes, name)
            _stage(self.source, record, layer, progress)
            fingerprint = _fingerprint(self.source, record)
            write_json(
                layer / DEPLOY_RECORD, {"fingerprint": fingerprint, "source": str(self.source)}
            )
            return
        self.reporter.step(name, "post-install (relocate, compile bytecode)")
        python = _runtime_python(record, self.staged, self.target)
        run_postinstall(python, layer, self.target / name)


def _stage(
    source: Path,
    record: dict[str, Any],
    layer: Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Unpack (verifying the hash) or copy one layer into its staging directory ``layer``."""
    name = record["install_target"]
    if record.get("archive_name"):
        safe_extract(
            source / record["archive_name"],
            layer.parent,
            layer,
            expected_sha256=record.get("archive_hashes", {}).get("sha256"),
            expected_top=name,
            strip_top=True,
            on_progress=on_progress,
        )
        return
    src = source / name
    if not (src / LAYER_METADATA).is_file():
        raise KernelstacksError(f"{source}: layer {name} is missing from the export")
    shutil.copytree(src, layer, symlinks=True, copy_function=_link_or_copy, dirs_exist_ok=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _runtime_python(record: dict[str, Any], staged: dict[str, Path], target: Path) -> Path:
    """The interpreter of the layer's runtime: staged now, or already deployed."""
    runtime = record.get("runtime_layer") or record["install_target"]
    if runtime in staged:
        return staged[runtime] / "bin" / "python3"
    python = target / runtime / "bin" / "python3"
    if not python.exists():
        raise KernelstacksError(f"runtime layer {runtime} is neither in the source nor in {target}")
    return python


def relink(target: Path, reporter: Reporter | None = None) -> list[str]:
    """Re-run every layer's post-install step in place (after the deployment was moved)."""
    reporter = reporter or Reporter()
    target = target.absolute()
    records = read_source(target)
    done = []
    for record in records:
        layer = target / record["install_target"]
        if not (layer / POSTINSTALL).is_file():
            raise KernelstacksError(f"{layer} is not a deployed kernelstacks layer")
        runtime = target / (record.get("runtime_layer") or record["install_target"])
        run_postinstall(runtime / "bin" / "python3", layer, layer)
        done.append(record["install_target"])
        reporter.layer_finished(record["install_target"], "relinked", 0.0)
    return done
