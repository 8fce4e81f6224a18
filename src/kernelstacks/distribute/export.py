"""``kernelstacks export`` (alias ``local-export``): the deployed layout of a built stack.

Files are hard-linked from the build where the filesystem allows; what names sibling layers is
rewritten on a copy, and each layer's post-install step runs where it lands. Every layer is
prepared beside its final place and swapped in whole.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from kernelstacks._support.progress import Reporter
from kernelstacks._support.swap import new_staging_dir, remove_tree, swap_in
from kernelstacks.distribute.layout import (
    LAYER_METADATA,
    LayerOut,
    OutputSummary,
    deployed_layer_metadata,
    exclude_from_output,
    link_rewriter,
    prepare,
    runpath_replacements,
)
from kernelstacks.distribute.metadata import json_bytes, published_record, write_summary
from kernelstacks.distribute.relocation import (
    ROOT_POSTINSTALL,
    current_postinstall,
    run_postinstall,
)
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import StackSpec


def export_stack(
    stack: StackSpec,
    include: list[str] | None,
    build_dir: Path,
    output_dir: Path,
    *,
    reporter: Reporter | None = None,
) -> OutputSummary:
    """Write the deployed layout of the selected layers to ``output_dir`` (hard links)."""
    reporter = reporter or Reporter()
    items, names, summary = prepare(stack, include, build_dir, output_dir)
    reporter.start("export", [i.layer.build_name for i in items])
    runtimes = {
        i.layer.build_name: output_dir / i.deploy_name
        for i in items
        if i.layer.kind is Kind.RUNTIME
    }
    for item in items:  # runtimes first (spec order), so post-install steps can use them
        t0 = time.monotonic()
        reporter.layer_started(item.layer.build_name, "exporting")
        staged = _stage_copy(item, build_dir, output_dir, names)
        runtime_dir = runtimes.get(item.layer.runtime_build_name) or (
            output_dir / names[item.layer.runtime_build_name]
        )
        python = (staged if item.layer.kind is Kind.RUNTIME else runtime_dir) / "bin" / "python3"
        final = output_dir / item.deploy_name
        try:
            run_postinstall(python, staged, final)
            swap_in(staged, final)
        except BaseException:
            remove_tree(staged)
            raise
        record = published_record(item, stack, names)
        summary.records.append(record)
        summary.states[item.layer.build_name] = "exported"
        reporter.layer_finished(item.layer.build_name, "exported", time.monotonic() - t0)
    write_summary(output_dir, summary.records)
    reporter.done(summary.as_dict())
    return summary


def _stage_copy(item: LayerOut, build_dir: Path, output_dir: Path, names: dict[str, str]) -> Path:
    """Copy a layer beside its final place with hard links, rewriting what names siblings."""
    staged = new_staging_dir(output_dir / item.deploy_name)
    rewrite = link_rewriter(item, build_dir, names)
    patched = runpath_replacements(item, names)
    for dirpath, dirnames, filenames in os.walk(item.source):
        rel_dir = Path(dirpath).relative_to(item.source)
        dirnames[:] = sorted(d for d in dirnames if not exclude_from_output(str(rel_dir / d)))
        (staged / rel_dir).mkdir(parents=True, exist_ok=True)
        for entry in [*filenames, *(d for d in dirnames if (Path(dirpath) / d).is_symlink())]:
            rel = rel_dir / entry
            if exclude_from_output(str(rel)):
                continue
            _copy_entry(item.source / rel, staged / rel, str(rel), rewrite, patched)
    meta = deployed_layer_metadata(item, names)
    for rel, data in (
        (LAYER_METADATA, json_bytes(meta)),
        (ROOT_POSTINSTALL, current_postinstall()),
    ):
        (staged / rel).unlink(missing_ok=True)
        (staged / rel).write_bytes(data)
    return staged


def _copy_entry(
    src: Path, dst: Path, rel: str, rewrite: Callable[[str, str], str], patched: dict[str, bytes]
) -> None:
    """Hard-link a file from the build (copy across filesystems); links and patched files anew."""
    if src.is_symlink():
        os.symlink(rewrite(rel, os.readlink(src)), dst)
    elif rel in patched:
        dst.write_bytes(patched[rel])
        shutil.copymode(src, dst)
    else:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
