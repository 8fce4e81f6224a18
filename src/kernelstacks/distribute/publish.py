"""``kernelstacks publish`` and ``export``: a built stack as archives or as a deployed layout.

``publish`` writes one reproducible ``.tar.xz`` per layer, named by deploy name, plus
venvstacks-compatible metadata in ``__venvstacks__/<platform>/``. ``export`` (alias
``local-export``) writes the deployed layout directly, hard-linking files from the build where the
filesystem allows, and runs each layer's post-install step there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.host import current_platform
from kernelstacks._support.progress import Reporter
from kernelstacks.build.engine import LAYER_METADATA, POSTINSTALL
from kernelstacks.distribute.layout import (
    METADATA_DIR,
    LayerOut,
    deploy_names,
    deployed_layer_metadata,
    exclude_from_output,
    layers_out,
    link_rewriter,
    published_record,
    runpath_replacements,
)
from kernelstacks.lock.metadata import write_json_atomic
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import StackSpec


@dataclass
class OutputSummary:
    """What publish/export did per layer."""

    output_dir: Path
    states: dict[str, str] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"output_dir": str(self.output_dir), "layers": self.states, "ok": True}


def _select(stack: StackSpec, include: list[str] | None) -> list:
    platform = current_platform()
    return [layer for layer in stack.with_lower(include) if platform in layer.platforms]


def _lock_time(item: LayerOut) -> int:
    """The clamp for archive mtimes: when the layer was locked."""
    stamp = item.lock_meta.get("locked_at")
    try:
        return int(datetime.fromisoformat(stamp).timestamp()) if stamp else 0
    except ValueError:
        return 0


def _metadata_dir(output_dir: Path) -> Path:
    return output_dir / METADATA_DIR / current_platform()


def _previous(output_dir: Path, deploy_name: str) -> dict[str, Any]:
    path = _metadata_dir(output_dir) / "env_metadata" / f"{deploy_name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_summary(output_dir: Path, records: list[dict[str, Any]]) -> None:
    """``venvstacks.json``: every layer's record, grouped by kind."""
    groups: dict[str, list] = {"runtimes": [], "frameworks": [], "applications": []}
    for record in records:
        kind = record["kernelstacks"]["kind"]
        groups[{"runtime": "runtimes", "framework": "frameworks"}.get(kind, "applications")].append(
            record
        )
    for record in records:
        write_json_atomic(
            _metadata_dir(output_dir) / "env_metadata" / f"{record['install_target']}.json", record
        )
    write_json_atomic(_metadata_dir(output_dir) / "venvstacks.json", {"layers": groups})


def _prepare(
    stack: StackSpec, include: list[str] | None, build_dir: Path, output_dir: Path
) -> tuple[list[LayerOut], dict[str, str], OutputSummary]:
    """The built layers to write out, their deploy names, and an empty summary."""
    items = layers_out(stack, _select(stack, include), build_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return items, deploy_names(stack), OutputSummary(output_dir)


# -- publish ---------------------------------------------------------------------------------------


def publish_stack(
    stack: StackSpec,
    include: list[str] | None,
    build_dir: Path,
    output_dir: Path,
    *,
    tag_outputs: bool = False,
    jobs: int = 2,
    reporter: Reporter | None = None,
) -> OutputSummary:
    """Archive every selected built layer (in parallel), then write the metadata."""
    reporter = reporter or Reporter()
    items, names, summary = _prepare(stack, include, build_dir, output_dir)
    reporter.start("publish", [i.layer.build_name for i in items])
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(
            pool.map(
                lambda item: _publish_one(
                    stack, item, build_dir, output_dir, names, tag_outputs, reporter
                ),
                items,
            )
        )
    for item, (state, record) in zip(items, results, strict=True):
        summary.states[item.layer.build_name] = state
        summary.records.append(record)
    _write_summary(output_dir, summary.records)
    reporter.done(summary.as_dict())
    return summary


def archive_name(deploy_name: str, tag_outputs: bool, build: int) -> str:
    """``<deploy>.tar.xz``, or ``<deploy>-<platform>-<build>.tar.xz`` with --tag-outputs."""
    if tag_outputs:
        return f"{deploy_name}-{current_platform()}-{build}.tar.xz"
    return f"{deploy_name}.tar.xz"


def _publish_one(
    stack: StackSpec,
    item: LayerOut,
    build_dir: Path,
    output_dir: Path,
    names: dict[str, str],
    tag_outputs: bool,
    reporter: Reporter,
) -> tuple[str, dict[str, Any]]:
    """Archive one layer unless an identical archive of the same build is already there."""
    from kernelstacks.distribute.archives import sha256_file, write_archive

    t0 = time.monotonic()
    name = item.layer.build_name
    reporter.layer_started(name, "archiving")
    record = published_record(item, stack, names)
    previous = _previous(output_dir, item.deploy_name)
    build_no = int(previous.get("archive_build", 0) or 0)
    same_build = (
        previous.get("kernelstacks", {}).get("build_inputs_hash")
        == record["kernelstacks"]["build_inputs_hash"]
    )
    old_archive = output_dir / str(previous.get("archive_name", ""))
    old_sha = previous.get("archive_hashes", {}).get("sha256")
    if (
        same_build
        and old_archive.is_file()
        and old_archive.name
        and sha256_file(old_archive) == old_sha
    ):
        reporter.layer_finished(name, "unchanged", time.monotonic() - t0)
        return "unchanged", previous
    top = item.deploy_name
    replace = {
        LAYER_METADATA.as_posix(): _json_bytes(deployed_layer_metadata(item, names)),
        POSTINSTALL.as_posix(): current_postinstall(),
        **runpath_replacements(item, names),
    }
    build_no += 1
    target = output_dir / archive_name(top, tag_outputs, build_no)
    info = write_archive(
        item.source,
        target,
        top=top,
        clamp_mtime=_lock_time(item),
        replace=replace,
        symlinks=link_rewriter(item, build_dir, names),
        exclude=exclude_from_output,
    )
    if previous.get("archive_hashes", {}).get("sha256") == info.sha256:
        build_no -= 1  # same bytes as last time: same build number
        final = output_dir / archive_name(top, tag_outputs, build_no)
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
    reporter.layer_finished(name, "archived", time.monotonic() - t0, f"{info.size} bytes")
    return "archived", record


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


# -- export ----------------------------------------------------------------------------------------


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
    items, names, summary = _prepare(stack, include, build_dir, output_dir)
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
        run_postinstall(python, staged, final)
        _swap(staged, final)
        record = published_record(item, stack, names)
        summary.records.append(record)
        summary.states[item.layer.build_name] = "exported"
        reporter.layer_finished(item.layer.build_name, "exported", time.monotonic() - t0)
    _write_summary(output_dir, summary.records)
    reporter.done(summary.as_dict())
    return summary


def _stage_copy(item: LayerOut, build_dir: Path, output_dir: Path, names: dict[str, str]) -> Path:
    """Copy a layer beside its final place with hard links, rewriting what names siblings."""
    staged = output_dir / f".{item.deploy_name}.export-{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
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
    for rel, data in ((LAYER_METADATA, _json_bytes(meta)), (POSTINSTALL, current_postinstall())):
        (staged / rel).unlink(missing_ok=True)
        (staged / rel).write_bytes(data)
    return staged


def current_postinstall() -> bytes:
    """This kernelstacks' post-install step (layers built by older versions get the new one)."""
    return (Path(__file__).parent.parent / "build" / "postinstall.py").read_bytes()


def _copy_entry(src: Path, dst: Path, rel: str, rewrite, patched: dict[str, bytes]) -> None:
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


def run_postinstall(python: Path, layer: Path, final: Path) -> None:
    """Run a layer's own post-install step (relocate for ``final``, compile bytecode)."""
    script = layer / POSTINSTALL
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [str(python), "-I", str(script), str(layer), "--final-dir", str(final)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise KernelstacksError(
            f"post-install step of {final.name} failed: "
            f"{((proc.stderr or proc.stdout).strip().splitlines() or ['no output'])[-1]}"
        )


def _swap(staged: Path, final: Path) -> None:
    """Replace ``final`` with ``staged`` (old copy removed only once the new one is in)."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
    os.rename(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
