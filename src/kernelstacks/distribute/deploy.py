"""``kernelstacks deploy``: unpack published archives (or copy an export) into a target.

Every layer is unpacked or copied into a staging directory inside TARGET, relocated for its final
place by its own post-install step and compiled there; only when every layer is ready are they
renamed into place. A failure before that leaves TARGET exactly as it was. Layers whose deployed
copy came from the same archive (or the same build) are left alone, so redeploying after one app
changed replaces only that app.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.host import current_platform
from kernelstacks._support.progress import Reporter
from kernelstacks.build.engine import LAYER_METADATA, POSTINSTALL
from kernelstacks.distribute.layout import DEPLOY_RECORD, METADATA_DIR
from kernelstacks.distribute.publish import run_postinstall
from kernelstacks.lock.metadata import write_json_atomic


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
    try:
        return json.loads((layer_dir / DEPLOY_RECORD).read_text(encoding="utf-8"))["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None


def deploy(source: Path, target: Path, *, reporter: Reporter | None = None) -> DeploySummary:
    """Deploy every layer of ``source`` into ``target`` (all or nothing)."""
    reporter = reporter or Reporter()
    source, target = source.absolute(), target.absolute()
    records = read_source(source)
    target.mkdir(parents=True, exist_ok=True)
    summary = DeploySummary(target)
    staging = Path(tempfile.mkdtemp(prefix=".kernelstacks-deploy-", dir=target))
    staged: list[tuple[dict[str, Any], Path]] = []
    reporter.start("deploy", [r["install_target"] for r in records])
    try:
        for record in records:
            name = record["install_target"]
            t0 = time.monotonic()
            reporter.layer_started(name, "unpacking")
            fingerprint = _fingerprint(source, record)
            if _deployed_fingerprint(target / name) == fingerprint:
                summary.states[name] = "unchanged"
                reporter.layer_finished(name, "unchanged", time.monotonic() - t0)
                continue
            layer = _stage(source, record, staging)
            write_json_atomic(
                layer / DEPLOY_RECORD, {"fingerprint": fingerprint, "source": str(source)}
            )
            staged.append((record, layer))
            summary.states[name] = "deployed"
        for record, layer in staged:
            reporter.step(record["install_target"], "post-install")
            python = _runtime_python(record, staged, target)
            run_postinstall(python, layer, target / record["install_target"])
        _swap_all(staged, target)
        for record, _ in staged:
            reporter.layer_finished(record["install_target"], "deployed", 0.0)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_json_atomic(
        target / METADATA_DIR / current_platform() / "venvstacks.json",
        json.loads(
            (source / METADATA_DIR / current_platform() / "venvstacks.json").read_text(
                encoding="utf-8"
            )
        ),
    )
    reporter.done(summary.as_dict())
    return summary


def _stage(source: Path, record: dict[str, Any], staging: Path) -> Path:
    """Unpack (verifying the hash) or copy one layer into the staging dir."""
    name = record["install_target"]
    if record.get("archive_name"):
        from kernelstacks.distribute.archives import safe_extract

        unpack = staging / f"{name}.unpack"
        unpack.mkdir()
        return safe_extract(
            source / record["archive_name"],
            staging.parent,
            unpack,
            expected_sha256=record.get("archive_hashes", {}).get("sha256"),
            expected_top=name,
        )
    src = source / name
    if not (src / LAYER_METADATA).is_file():
        raise KernelstacksError(f"{source}: layer {name} is missing from the export")
    dst = staging / name
    shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    return dst


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _runtime_python(record: dict[str, Any], staged: list, target: Path) -> Path:
    """The interpreter of the layer's runtime: staged now, or already deployed."""
    runtime = record.get("runtime_layer") or record["install_target"]
    for other, layer in staged:
        if other["install_target"] == runtime:
            return layer / "bin" / "python3"
    python = target / runtime / "bin" / "python3"
    if not python.exists():
        raise KernelstacksError(f"runtime layer {runtime} is neither in the source nor in {target}")
    return python


def _swap_all(staged: list[tuple[dict[str, Any], Path]], target: Path) -> None:
    """Rename every staged layer into place; undo the renames if one fails."""
    done: list[tuple[Path, Path | None]] = []
    try:
        for record, layer in staged:
            final = target / record["install_target"]
            old = None
            if os.path.lexists(final):
                old = final.with_name(f".{final.name}.old-{os.getpid()}")
                os.rename(final, old)
            os.rename(layer, final)
            done.append((final, old))
    except OSError:
        for final, old in reversed(done):
            shutil.rmtree(final, ignore_errors=True)
            if old is not None:
                os.rename(old, final)
        raise
    for _, old in done:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


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


def deployed_kernel_plans(target: Path) -> list:
    """Kernel plans for deployed applications whose stack provides ipykernel."""
    from kernelstacks.jupyter.kernelspecs import KernelPlan

    plans = []
    records = read_source(target)
    for record in records:
        ks = record.get("kernelstacks", {})
        if ks.get("kind") != "application":
            continue
        chain = [record["install_target"], *ks.get("lower_layers", [])]
        if not any(_has_ipykernel(target / name) for name in chain):
            continue
        versions = {
            r["install_target"]: r.get("lock_version")
            for r in records
            if r["install_target"] in chain
        }
        raw = f"kernelstacks-{ks['stack']}-{ks['app']}".lower()
        plans.append(
            KernelPlan(
                name="".join(c if c.isalnum() or c in "._-" else "-" for c in raw),
                stack=ks["stack"],
                app=ks["app"],
                layer=record["layer_name"],
                deploy_name=record["install_target"],
                layers_dir=target,
                chain=chain,
                lock_versions=versions,
                spec_path=None,
            )
        )
    return plans


def _has_ipykernel(layer: Path) -> bool:
    return any(layer.glob("lib/python*/site-packages/ipykernel-*.dist-info"))
