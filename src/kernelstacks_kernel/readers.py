"""The reading subcommands: ``show``, ``packages``, ``why``, ``diff`` (layers and locks only)."""

from __future__ import annotations

import argparse

from kernelstacks_kernel import display
from kernelstacks_kernel.commands import require_chain, subcommand
from kernelstacks_kernel.display import VenvstacksError

show_cmd = subcommand("show", "The chain of layers this kernel runs on.", json_option=True)


@show_cmd
def show(args: argparse.Namespace) -> None:
    """The chain of layers this kernel runs on: app, frameworks, runtime."""
    chain = require_chain()
    if args.json:
        display.publish(display.json_bundle({"layers": [layer.as_dict() for layer in chain]}))
        return
    rows = [
        [
            layer.name,
            layer.kind,
            layer.lock_version if layer.lock_version is not None else "",
            layer.py_version,
            layer.path if layer.present else f"MISSING: {layer.path}",
        ]
        for layer in chain
    ]
    title = f"kernelstacks chain of {chain[0].name} (Python {chain[0].py_version})"
    display.publish(
        display.table_bundle(title, ["layer", "kind", "lock", "python", "path"], rows, 0)
    )


packages_cmd = subcommand(
    "packages", "Every distribution this kernel can import, per layer.", json_option=True
)
packages_cmd.parser.add_argument("--layer", help="only this layer (name or build name)")


@packages_cmd
def packages(args: argparse.Namespace) -> None:
    """Distributions with version, providing layer, size; shadowed copies flagged."""
    from kernelstacks_kernel.inventory import inventory

    chain = require_chain()
    dists = inventory(chain)
    if args.layer:
        names = {layer.name: layer for layer in chain}
        names.update({layer.build_name: layer for layer in chain})
        if args.layer not in names:
            known = ", ".join(names)
            raise VenvstacksError(f"no layer '{args.layer}' in this kernel's chain ({known})")
        dists = [d for d in dists if d.layer == names[args.layer].name]
    if args.json:
        display.publish(display.json_bundle({"packages": [d.as_dict() for d in dists]}))
        return
    rows = []
    for d in dists:
        note = ""
        if d.shadowed_by:
            note = f"SHADOWED by {d.shadowed_by}"
        elif d.shadows:
            note = f"shadows {', '.join(d.shadows)}"
        rows.append([d.display_name, d.version, d.layer, display.human_size(d.size), note])
    title = f"{len(dists)} distributions in {args.layer or 'this kernel'}"
    display.publish(
        display.table_bundle(title, ["package", "version", "layer", "size", "note"], rows)
    )


why_cmd = subcommand(
    "why", "Which layer provides a package and what pulled it in.", json_option=True
)
why_cmd.parser.add_argument("package")


@why_cmd
def why(args: argparse.Namespace) -> None:
    """Providing layer, dependency path(s) from declared requirements, locked vs installed."""
    from kernelstacks_kernel.inventory import why as explain

    info = explain(args.package, require_chain())
    if not info["found"]:
        raise VenvstacksError(f"'{args.package}' is not installed in any layer of this kernel")
    if args.json:
        display.publish(display.json_bundle(info))
        return
    rows = [
        ["provided by", f"{info['layer']} ({info['version']})"],
        ["locked version", info["locked_version"] or "unknown"],
        ["installed version", info["version"]],
    ]
    for path in info["paths"] or [["(not reachable from any declared requirement)"]]:
        rows.append(["required via", " -> ".join(path)])
    for copy in info["shadowed_copies"]:
        rows.append(
            ["hidden copy", f"{copy['layer']} ({copy['version']}), hidden by {info['layer']}"]
        )
    name = info["package"]
    title = f"why {name}: {name} {info['version']} is provided by layer {info['layer']}"
    display.publish(display.table_bundle(title, ["", "answer"], rows))


diff_cmd = subcommand("diff", "Each layer's lock against what is installed.", json_option=True)


@diff_cmd
def diff(args: argparse.Namespace) -> None:
    """Drift between locks and installed packages (manual changes)."""
    from kernelstacks_kernel.inventory import diff as compare

    report = compare(require_chain())
    if args.json:
        display.publish(display.json_bundle({"layers": report}))
        return
    rows = []
    for entry in report:
        if not entry["lock_found"]:
            rows.append([entry["layer"], "no lock file found", ""])
            continue
        changes = [f"missing {n}" for n in entry["missing"]]
        changes += [f"not in lock: {n}" for n in entry["extra"]]
        changes += [
            f"{c['name']}: locked {c['locked']}, installed {c['installed']}"
            for c in entry["changed"]
        ]
        rows.append(
            [entry["layer"], "matches its lock" if not changes else "DRIFT", "; ".join(changes)]
        )
    display.publish(display.table_bundle("lock vs installed", ["layer", "state", "details"], rows))
