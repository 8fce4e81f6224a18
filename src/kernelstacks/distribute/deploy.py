"""``kernelstacks deploy``: unpack published archives (or copy an export) into a target.

Every layer is unpacked or copied into a staging directory inside TARGET, relocated for its final
place and compiled there (its bytecode by the runtime's compile servers, which work through each
layer's files as soon as it is unpacked while other layers still unpack); only when every layer
is ready are they renamed into place. A failure before that leaves TARGET exactly as it was.
Layers whose deployed copy came from the same archive (or the same build) are left alone, so
redeploying after one app changed replaces only that app.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks._support.atomic import read_json, write_json
from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.filelocks import exclusive
from kernelstacks._support.progress import Reporter
from kernelstacks._support.scheduler import run_in_order
from kernelstacks._support.swap import (
    clean_leftovers,
    crash_point,
    new_staging_dir,
    recover,
    remove_tree,
    replace_all,
)
from kernelstacks.build.postinstall import METADATA, bytecode_files, relocate
from kernelstacks.distribute.archive_extract import check_sha256, safe_extract
from kernelstacks.distribute.bytecode_pool import BytecodePool
from kernelstacks.distribute.relocation import postinstall_script, run_postinstall
from kernelstacks.distribute.sources import (
    legacy_metadata_dir,
    read_expected_sha256,
    read_groups,
    read_source,
    stack_identity,
    summary_file,
    summary_path,
)
from kernelstacks_kernel import contract

LAYER_METADATA = Path(contract.LAYER_METADATA)
DEPLOY_RECORD = Path(contract.DEPLOY_RECORD)
#: Serialises deploys to one target (a file inside it).
DEPLOY_LOCK = ".kernelstacks-deploy.lock"
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


def _fingerprint(record: dict[str, Any]) -> str:
    """What identifies the deployed content: the archive hash, else the build inputs."""
    sha = record.get("archive_hashes", {}).get("sha256")
    if sha:
        return f"sha256:{sha}"
    built = (record.get("kernelstacks") or {}).get("build_inputs_hash")
    return f"build:{built}" if built else ""  # a venvstacks export: always copied again


def _deployed_fingerprint(layer_dir: Path) -> str | None:
    """The fingerprint recorded in an already deployed layer (None if absent or unreadable)."""
    value = (read_json(layer_dir / DEPLOY_RECORD) or {}).get("fingerprint")
    return value if isinstance(value, str) else None


def deploy(
    source: Path,
    target: Path,
    *,
    jobs: int | None = None,
    reporter: Reporter | None = None,
    expect_sha256: Path | None = None,
    replace: bool = False,
    compile_tests: bool = False,
) -> DeploySummary:
    """Deploy every layer of ``source`` into ``target`` (all or nothing).

    Each changed layer is unpacked (or copied) into a staging directory beside its final place,
    ``jobs`` at a time (default: one per core), its archive's sha256 checked against the
    metadata as it is read, and against ``expect_sha256`` (a manifest the user trusts, in
    ``sha256sum`` format) before that. No post-install step (code from an archive) runs before
    every archive was checked; then each relocates its layer and compiles its bytecode. Every
    staged layer is swapped in as one journaled transaction, so a failure or a kill at any point
    leaves ``target`` as it was (an interrupted swap is rolled back or completed by the next
    deploy, which also removes staging directories a killed deploy left). Deploys to one target
    are serialised by a file lock; a deployment of another stack is replaced only with
    ``replace`` (its layers are never mixed with this stack's). Test suites' bytecode is
    compiled only with ``compile_tests`` (see ``postinstall.bytecode_files``); a layer deployed
    with the other choice counts as changed.
    """
    reporter = reporter or Reporter()
    source, target = source.absolute(), target.absolute()
    source_summary, groups = read_groups(source)
    records = [r for kind_records in groups.values() for r in kind_records]
    trusted = _trusted_hashes(records, expect_sha256, reporter)
    try:
        target.mkdir(parents=True, exist_ok=True)
        with exclusive(target / DEPLOY_LOCK, reporter.note, f"deploying to {target}"):
            return _deploy_locked(
                source,
                target,
                (source_summary, records),
                trusted,
                _Options(jobs or os.cpu_count() or 1, replace, compile_tests),
                reporter,
            )
    except OSError as exc:
        raise KernelstacksError(f"deploy to {target}: {exc}") from None


def _trusted_hashes(
    records: list[dict[str, Any]], manifest: Path | None, reporter: Reporter
) -> dict[str, str]:
    """install target -> the sha256 its archive must have, checked against ``manifest``."""
    hashes = {
        r["install_target"]: r["archive_hashes"]["sha256"] for r in records if r.get("archive_name")
    }
    if manifest is None:
        if hashes:
            reporter.note(
                "archive hashes are checked against the metadata beside them (this catches "
                "corruption, not tampering); --expect-sha256 FILE checks a manifest you trust"
            )
        return hashes
    expected = read_expected_sha256(manifest)
    for record in records:
        name = record.get("archive_name")
        if not name:
            raise KernelstacksError(
                f"--expect-sha256 {manifest}: layer {record['install_target']} is not an archive "
                "(an export cannot be checked against a manifest)"
            )
        if name not in expected:
            raise KernelstacksError(f"--expect-sha256 {manifest}: no hash for {name}")
        if expected[name] != hashes[record["install_target"]]:
            raise KernelstacksError(
                f"{name}: its metadata says sha256 {hashes[record['install_target']]}, but "
                f"{manifest} expects {expected[name]}: refusing to deploy it"
            )
    return hashes


def _deploy_locked(
    source: Path,
    target: Path,
    metadata: tuple[Path, list[dict[str, Any]]],
    trusted: dict[str, str],
    options: _Options,
    reporter: Reporter,
) -> DeploySummary:
    """Deploy while holding the target's lock: recover, check the stack, stage, swap.

    ``metadata`` is the source's summary file and its checked records (read once, by
    :func:`deploy`); the summary is copied into the target once every layer is in place.
    """
    source_summary, records = metadata
    recover(target / SWAP_JOURNAL)
    clean_leftovers(target)
    leaving = _check_same_stack(target, records, options.replace)
    run = _DeployRun(source, target, reporter, trusted, options, BytecodePool(options.jobs))
    reporter.start("deploy", [r["install_target"] for r in records])
    try:
        run.plan(records, force=bool(leaving) or options.replace)
        run.check_hashes()
        with run.bytecode:
            tasks = run.tasks()
            outcomes = run_in_order(
                tasks, run.deps, run.work, jobs=len(tasks), lanes={"unpack": options.jobs}
            )
        failed = [o.error for o in outcomes.values() if o.error is not None]
        if failed:
            raise failed[0]
        crash_point("deploy-staged")
        pairs = [(layer, target / name) for name, layer in run.staged.items()]
        gone = [target / name for name in leaving]
        replace_all(pairs, target / SWAP_JOURNAL, remove=gone)
    except BaseException:
        for layer in run.staged.values():
            remove_tree(layer)
        raise
    for name in run.staged:
        reporter.layer_finished(name, "deployed", time.monotonic() - run.started[name])
    write_json(summary_path(target), read_json(source_summary))
    legacy = legacy_metadata_dir(target)
    if legacy.is_dir():  # an older kernelstacks' summary: never read instead of this one
        remove_tree(legacy)
    reporter.done(run.summary.as_dict())
    return run.summary


def _check_same_stack(target: Path, records: list[dict[str, Any]], replace: bool) -> list[str]:
    """Refuse to deploy over another stack's deployment unless ``replace``; with it, the old
    stack's layers this one does not have (to remove after the swap)."""
    try:
        summary_file(target)
    except KernelstacksError:
        return []  # nothing deployed there yet
    try:
        current = read_source(target)
    except KernelstacksError as exc:
        if not replace:
            raise KernelstacksError(f"{exc} (pass --replace to deploy over it anyway)") from None
        current = []
    if not current:
        return []
    old, new = stack_identity(current), stack_identity(records)
    if old == new:
        return []
    if not replace:
        raise KernelstacksError(
            f"{target} holds a deployment of stack {old or '(venvstacks)'}, not of "
            f"{new or '(venvstacks)'}: deploy into another directory, or pass --replace to "
            "replace that deployment"
        )
    keep = {r["install_target"] for r in records}
    return [r["install_target"] for r in current if r["install_target"] not in keep]


@dataclass(frozen=True)
class _Options:
    """How to deploy: layers unpacked at once (and compile servers per runtime), whether
    another stack's deployment may be replaced, whether test suites get bytecode."""

    jobs: int
    replace: bool
    compile_tests: bool


@dataclass
class _DeployRun:
    """One deploy: which layers are staged where, and the unpack/post-install tasks."""

    source: Path
    target: Path
    reporter: Reporter
    trusted: dict[str, str]
    options: _Options
    bytecode: BytecodePool
    summary: DeploySummary = field(init=False)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    staged: dict[str, Path] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.summary = DeploySummary(self.target)

    def plan(self, records: list[dict[str, Any]], *, force: bool = False) -> None:
        """Skip layers already deployed from the same content (unless ``force``: another
        stack's deployment is being replaced); stage the others."""
        for record in records:
            name = record["install_target"]
            self.started[name] = time.monotonic()
            fingerprint = self.fingerprint(record)
            same = fingerprint and _deployed_fingerprint(self.target / name) == fingerprint
            if same and not force:
                self.summary.states[name] = "unchanged"
                self.reporter.layer_finished(name, "unchanged", 0.0)
                continue
            self.records[name] = record
            self.staged[name] = new_staging_dir(self.target / name)
            self.summary.states[name] = "deployed"

    def fingerprint(self, record: dict[str, Any]) -> str:
        """What a deployed copy must have been deployed from (and how) to be left alone."""
        fingerprint = _fingerprint(record)
        return (
            f"{fingerprint} +tests" if fingerprint and self.options.compile_tests else fingerprint
        )

    def tasks(self) -> list[str]:
        """``unpack:<layer>`` and ``post:<layer>`` for every layer to deploy, in the order they
        should start when ready: runtimes first (every post-install needs one), then the
        biggest archives (their bytecode is the most work, so it should start early and the
        last layer unpacked should be a small one)."""

        def priority(name: str) -> tuple[bool, int]:
            record = self.records[name]
            archive = record.get("archive_name")
            size = (self.source / archive).stat().st_size if archive else 0
            return ((record.get("runtime_layer") or name) != name, -size)

        order = sorted(self.staged, key=priority)
        return [f"unpack:{name}" for name in order] + [f"post:{name}" for name in order]

    def check_hashes(self) -> None:
        """Every archive to unpack against its trusted hash, before any is unpacked.

        So no post-install (code from an archive) ever runs while another archive of the set is
        still unchecked, and unpacking and post-installs can then overlap freely. Hashing
        releases the GIL: archives are hashed in parallel. Each extraction hashes its archive
        again from the very file object it reads, so a file swapped meanwhile is still caught.
        """
        checks = [
            (self.source / record["archive_name"], self.trusted[name])
            for name, record in self.records.items()
            if record.get("archive_name") and self.trusted.get(name)
        ]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(lambda check: check_sha256(*check), checks))

    def deps(self, task: str) -> list[str]:
        """A post-install needs its layer and its runtime unpacked (a staged runtime's python);
        every archive's hash was checked before any unpacking (:meth:`check_hashes`)."""
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
            _stage(self.source, record, layer, self.trusted.get(name), progress)
            crash_point("deploy-unpacked")
            fingerprint = self.fingerprint(record)
            write_json(
                layer / DEPLOY_RECORD, {"fingerprint": fingerprint, "source": str(self.source)}
            )
            return
        self.reporter.step(name, "post-install (relocate, compile bytecode)")
        python = _runtime_python(record, self.staged, self.target)
        if "kernelstacks" not in record:  # venvstacks' own layer: its own step, as it expects
            run_postinstall(python, layer, self.target / name)
            return
        try:
            relocate(layer, self.target / name)
            files = bytecode_files(layer, tests=self.options.compile_tests)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise KernelstacksError(f"{name}: cannot relocate (by {METADATA}): {exc!r}") from None
        self.bytecode.compile(python, files, name)


def _stage(
    source: Path,
    record: dict[str, Any],
    layer: Path,
    sha256: str | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Unpack (verifying the trusted ``sha256``) or copy one layer into its staging directory."""
    name = record["install_target"]
    if record.get("archive_name"):
        safe_extract(
            source / record["archive_name"],
            layer.parent,
            layer,
            expected_sha256=sha256,
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
    """Re-run every layer's post-install step in place (after the deployment was moved).

    Takes the deployment's lock, so it never runs while a deploy swaps layers in.
    """
    reporter = reporter or Reporter()
    target = target.absolute()
    records = read_source(target)
    try:
        with exclusive(target / DEPLOY_LOCK, reporter.note, f"relinking {target}"):
            return _relink_locked(target, records, reporter)
    except OSError as exc:
        raise KernelstacksError(f"relink {target}: {exc}") from None


def _relink_locked(target: Path, records: list[dict[str, Any]], reporter: Reporter) -> list[str]:
    done = []
    for record in records:
        layer = target / record["install_target"]
        if postinstall_script(layer) is None:
            raise KernelstacksError(f"{layer} is not a deployed kernelstacks layer")
        runtime = target / (record.get("runtime_layer") or record["install_target"])
        run_postinstall(runtime / "bin" / "python3", layer, layer)
        done.append(record["install_target"])
        reporter.layer_finished(record["install_target"], "relinked", 0.0)
    return done
