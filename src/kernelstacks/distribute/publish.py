"""``kernelstacks publish``: one reproducible archive per built layer, named by deploy name,
plus venvstacks-compatible metadata in ``__venvstacks__/``.

Layers are archived ``jobs`` at a time, and every layer's tar stream is compressed in
independent chunks on one pool with a thread per core (:mod:`~kernelstacks.distribute.
parallel_compress`), so one big framework and many small apps both keep every core busy.
``tar.xz`` is venvstacks' format; ``tar.zst`` is the fast one (see docs/deploy.md).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.filelocks import exclusive, stack_lock
from kernelstacks._support.hashing import sha256_hex
from kernelstacks._support.host import current_platform
from kernelstacks._support.progress import Reporter
from kernelstacks._support.units import human_bytes
from kernelstacks.distribute.archives import write_archive
from kernelstacks.distribute.compression import ArchiveFormat, archive_format
from kernelstacks.distribute.layout import (
    LAYER_METADATA,
    LayerOut,
    OutputSummary,
    deployed_layer_metadata,
    exclude_from_output,
    link_rewriter,
    lock_time,
    prepare,
    runpath_replacements,
)
from kernelstacks.distribute.metadata import (
    json_bytes,
    previous_record,
    published_record,
    write_summary,
)
from kernelstacks.distribute.relocation import ROOT_POSTINSTALL, current_postinstall
from kernelstacks.distribute.sources import platform_tag
from kernelstacks.spec.model import StackSpec


def publish_stack(
    stack: StackSpec,
    include: list[str] | None,
    build_dir: Path,
    output_dir: Path,
    *,
    tag_outputs: bool = False,
    jobs: int = 2,
    archive_type: str = "tar.xz",
    level: int | None = None,
    reporter: Reporter | None = None,
    force: bool = False,
    only: set[str] | None = None,
) -> OutputSummary:
    """Archive every selected built layer (in parallel), then write the metadata.

    A layer whose identical archive is already there is kept, unless ``force`` (venvstacks'
    ``publish --force``) asks for every archive to be written again. ``only`` (build names)
    narrows the selection to the layers venvstacks' rules pick for publishing.
    """
    reporter = reporter or Reporter()
    try:
        fmt = archive_format(archive_type)
    except ValueError as exc:
        raise KernelstacksError(f"publish --format: {exc}") from None
    if level is not None and level not in fmt.levels:
        first, last = fmt.levels.start, fmt.levels.stop - 1
        raise KernelstacksError(f"publish --level {level}: {fmt.name} levels are {first}-{last}")
    doing = f"publishing {output_dir}"
    with exclusive(stack_lock(stack.root), reporter.note, doing, optional=True):
        return _publish_locked(
            stack,
            include,
            (build_dir, output_dir),
            (fmt, level, tag_outputs),
            jobs,
            reporter,
            force=force,
            only=only,
        )


def _publish_locked(
    stack: StackSpec,
    include: list[str] | None,
    dirs: tuple[Path, Path],
    style: tuple[ArchiveFormat, int | None, bool],
    jobs: int,
    reporter: Reporter,
    *,
    force: bool,
    only: set[str] | None,
) -> OutputSummary:
    """:func:`publish_stack` once it holds the stack lock (no lock or build changes meanwhile)."""
    build_dir, output_dir = dirs
    fmt, level, tag_outputs = style
    items, names, summary = prepare(stack, include, build_dir, output_dir)
    items = [i for i in items if only is None or i.layer.build_name in only]
    reporter.start("publish", [i.layer.build_name for i in items])
    with (
        ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as compressors,
        ThreadPoolExecutor(max_workers=max(1, jobs)) as layers,
    ):
        how = _How(fmt, level, compressors, tag_outputs, reporter, force)
        results = list(
            layers.map(
                lambda item: _publish_one(stack, item, build_dir, output_dir, names, how), items
            )
        )
    for item, (state, record) in zip(items, results, strict=True):
        summary.states[item.layer.build_name] = state
        summary.records.append(record)
    write_summary(output_dir, summary.records, platform_tag(tag_outputs))
    reporter.done(summary.as_dict())
    return summary


#: What a publish adds to a layer's metadata about its archive.
_ARCHIVE_FIELDS = (
    "archive_build",
    "archive_name",
    "target_platform",
    "archive_size",
    "archive_hashes",
)


@dataclass(frozen=True)
class _How:
    """How every layer of one publish is archived."""

    fmt: ArchiveFormat
    level: int | None
    pool: Executor
    tag_outputs: bool
    reporter: Reporter
    force: bool = False


def archive_name(deploy_name: str, tag_outputs: bool, build: int, suffix: str = ".tar.xz") -> str:
    """``<deploy>.tar.xz``, or ``<deploy>-<platform>-<build>.tar.xz`` with --tag-outputs."""
    if tag_outputs:
        return f"{deploy_name}-{current_platform()}-{build}{suffix}"
    return f"{deploy_name}{suffix}"


def _publish_one(
    stack: StackSpec,
    item: LayerOut,
    build_dir: Path,
    output_dir: Path,
    names: dict[str, str],
    how: _How,
) -> tuple[str, dict[str, Any]]:
    """Archive one layer unless an identical archive of the same build is already there."""
    reporter, tag_outputs, suffix = how.reporter, how.tag_outputs, how.fmt.suffix
    t0 = time.monotonic()
    name = item.layer.build_name
    reporter.layer_started(name, "archiving")
    record = published_record(item, stack, names)
    previous = previous_record(output_dir, item.layer.build_name, platform_tag(tag_outputs))
    same_lock = previous.get("lock_version", 0) == record["lock_version"]
    # venvstacks: the archive build number counts rebuilds of one lock version
    build_no = int(previous.get("archive_build", 0) or 0) if same_lock else 0
    same_build = (
        previous.get("kernelstacks", {}).get("build_inputs_hash")
        == record["kernelstacks"]["build_inputs_hash"]
    )
    old_archive = output_dir / str(previous.get("archive_name", ""))
    old_sha = previous.get("archive_hashes", {}).get("sha256")
    if (
        same_build
        and not how.force
        and old_archive.is_file()
        and old_archive.name.endswith(suffix)
        and sha256_hex(old_archive) == old_sha
    ):
        reporter.layer_finished(name, "unchanged", time.monotonic() - t0)
        # the metadata as this version writes it (an older one may lack fields), same archive
        return "unchanged", {**record, **{k: previous[k] for k in _ARCHIVE_FIELDS if k in previous}}
    top = item.deploy_name
    replace = {
        LAYER_METADATA.as_posix(): json_bytes(deployed_layer_metadata(item, names)),
        **runpath_replacements(item, names),
    }
    build_no += 1
    target = output_dir / archive_name(top, tag_outputs, build_no, suffix)
    info = write_archive(
        item.source,
        target,
        top=top,
        clamp_mtime=lock_time(item),
        replace=replace,
        symlinks=link_rewriter(item, build_dir, names),
        exclude=exclude_from_output,
        add={ROOT_POSTINSTALL.as_posix(): current_postinstall()},
        archive_type=how.fmt.name,
        level=how.level,
        pool=how.pool,
        on_progress=lambda done, total: reporter.bytes(name, done, total),
    )
    if same_lock and previous.get("archive_hashes", {}).get("sha256") == info.sha256:
        build_no -= 1  # same bytes as last time: same build number
        final = output_dir / archive_name(top, tag_outputs, build_no, suffix)
        if final != target:
            os.replace(target, final)
            target = final
    record.update(
        {
            "archive_build": build_no,
            "archive_name": target.name,
            "target_platform": current_platform(),
            "archive_size": info.size,
            "archive_hashes": {"sha256": info.sha256},
        }
    )
    seconds = time.monotonic() - t0
    note = f"{human_bytes(info.size)} {how.fmt.name}"
    reporter.layer_finished(name, "archived", seconds, note)
    return "archived", record
