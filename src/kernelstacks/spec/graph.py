"""Passes 3 to 6 of validation: names, references between layers, the layer graph, platforms.

Names must be unique; ``runtime``/``frameworks`` must name layers of the right kind; frameworks
must not form a cycle and must agree on one runtime; C3 linearisation gives every layer its lower
layers in ``sys.path`` order; a layer's platforms default to what all its lower layers build.
"""

from __future__ import annotations

import unicodedata

from kernelstacks._support.errors import did_you_mean
from kernelstacks.spec.c3 import C3Conflict, Linearizer, bottom_up, find_cycle
from kernelstacks.spec.fields import NAME_RE, PLATFORMS, Kind
from kernelstacks.spec.problems import LayersByName, ProblemLog, RawLayer
from kernelstacks.spec.problems import bottom_up as bottom_up_layers

# -- pass 3: names ------------------------------------------------------------------------------


def check_names(raw: list[RawLayer], log: ProblemLog) -> None:
    """Names unique per kind, and build names unique across the stack.

    Build names that differ only in case (or Unicode normalisation) are one directory on
    macOS and Windows file systems, so they count as the same name.
    """
    seen: dict[str, RawLayer] = {}
    for layer in raw:
        name = layer.data.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            layer.ok = False
            continue
        build = layer.kind.build_name(name)
        folded = unicodedata.normalize("NFC", build).casefold()
        if folded in seen:
            first = seen[folded]
            same = "is already used" if first.build_name == build else "collides with"
            log.problem(
                f"duplicate layer name '{name}' (build name '{build}' {same} "
                f"{first.label}, table {first.index + 1} of [[{first.kind.section}]]"
                + (
                    ""
                    if first.build_name == build
                    else f", whose build name '{first.build_name}' is the same directory on "
                    "case-insensitive file systems"
                )
                + ")",
                layer,
                "name",
            )
        else:
            seen[folded] = layer


def index_by_name(raw: list[RawLayer]) -> LayersByName:
    """Layers with a usable name, per kind (first wins on duplicates).

    Layers with other problems stay in the index so that references to them are not
    reported again as "unknown".
    """
    index: LayersByName = {k: {} for k in Kind}
    for r in raw:
        name = r.data.get("name")
        if isinstance(name, str) and NAME_RE.match(name):
            index[r.kind].setdefault(name, r)
    return index


# -- pass 4: references -------------------------------------------------------------------------


def check_references(raw: list[RawLayer], by_name: LayersByName, log: ProblemLog) -> None:
    """``runtime``/``frameworks`` exist, are of the right kind, and exactly one is set."""
    for layer in raw:
        if layer.kind is Kind.RUNTIME:
            layer.refs_ok = True
            continue
        if {"runtime", "frameworks"} & layer.bad_keys:
            continue
        data = layer.data
        has_rt, has_fw = "runtime" in data, "frameworks" in data
        if has_rt and has_fw:
            log.problem(
                "set either 'runtime' or 'frameworks', not both (the runtime of "
                "'frameworks' is implied)",
                layer,
                "frameworks",
            )
            continue
        if not has_rt and not has_fw:
            log.problem(
                "missing 'runtime' or 'frameworks': say which layer this one builds on", layer
            )
            continue
        layer.refs_ok = _check_layer_refs(layer, by_name, log)


def _check_layer_refs(layer: RawLayer, by_name: LayersByName, log: ProblemLog) -> bool:
    """Check one layer's ``runtime`` or ``frameworks``; True when they can be followed."""
    data = layer.data
    runtimes, frameworks = by_name[Kind.RUNTIME], by_name[Kind.FRAMEWORK]
    has_fw = "frameworks" in data
    ok = "runtime" not in data or _check_ref(
        layer, "runtime", data["runtime"], runtimes, by_name, log
    )
    for fw in data.get("frameworks", []):
        if fw == data.get("name") and layer.kind is Kind.FRAMEWORK:
            log.problem(f"dependency cycle: '{fw}' -> '{fw}'", layer, "frameworks")
            ok = False
            continue
        ok = _check_ref(layer, "frameworks", fw, frameworks, by_name, log) and ok
    fws = data.get("frameworks", [])
    for dup in sorted({f for f in fws if fws.count(f) > 1}):
        log.problem(f"framework '{dup}' is listed more than once", layer, "frameworks")
        ok = False
    return ok and bool(fws) if has_fw else ok


def _check_ref(
    layer: RawLayer,
    key: str,
    target: str,
    pool: dict[str, RawLayer],
    by_name: LayersByName,
    log: ProblemLog,
) -> bool:
    """Report a reference to a missing or wrong-kind layer; True when it is fine."""
    if target in pool:
        return True
    wanted = "runtime" if key == "runtime" else "framework"
    other = [k for k in Kind if target in by_name[k]]
    if other:
        message = f"'{target}' is a{'n' if other[0] is Kind.APPLICATION else ''} "
        message += f"{other[0].value} layer, not a {wanted} layer"
    else:
        message = f"unknown {wanted} '{target}'{did_you_mean(target, pool)}"
        if pool:
            message += f" ({wanted}s defined: {', '.join(pool)})"
    log.problem(message, layer, key)
    return False


# -- pass 5: graph: cycles, runtimes, C3 --------------------------------------------------------


def check_graph(raw: list[RawLayer], by_name: LayersByName, log: ProblemLog) -> None:
    """Detect cycles, infer each layer's runtime, linearise lower layers with C3.

    A cycle is reported once, at the first of its members in the file. Everything here walks the
    graph bottom-up without recursion and computes each framework's order once, so loading
    stays fast and safe for stacks thousands of layers deep.
    """
    frameworks = by_name[Kind.FRAMEWORK]

    def parents(name: str) -> list[str]:
        layer = frameworks.get(name)
        if layer is None or not layer.refs_ok:
            return []
        return list(layer.data.get("frameworks", []))

    cycle = find_cycle(list(frameworks), parents)
    if cycle:
        log.problem(
            f"dependency cycle: {_show_cycle(cycle)}; remove one of these 'frameworks' "
            "entries to break it",
            frameworks[cycle[0]],
            "frameworks",
        )
        for name in cycle[1:]:
            frameworks[name].ok = False
        return
    for name in bottom_up(list(frameworks), parents):
        _resolve_runtime(frameworks[name], frameworks, log)
    for layer in raw:
        if layer.kind is Kind.APPLICATION:
            _resolve_runtime(layer, frameworks, log)
    linearizer = Linearizer(parents)
    for layer in raw:
        if layer.refs_ok and (layer.kind is Kind.RUNTIME or layer.runtime is not None):
            _linearize(layer, linearizer, log)


def _show_cycle(cycle: list[str], most: int = 12) -> str:
    """``'a' -> 'b' -> 'a'``; a long cycle shows its ends and how many layers it goes through."""
    names = [f"'{c}'" for c in cycle]
    if len(names) > most:
        skipped = len(names) - most
        names = [*names[: most - 4], f"... ({skipped} more) ...", *names[-4:]]
    return " -> ".join(names) + (f" ({len(cycle) - 1} layers)" if len(cycle) > most else "")


def _resolve_runtime(layer: RawLayer, frameworks: dict[str, RawLayer], log: ProblemLog) -> None:
    """A layer on frameworks uses their runtime; they must all agree.

    Called bottom-up, so the frameworks' runtimes are already known (None when unresolvable).
    """
    if layer.runtime is not None or not layer.refs_ok or layer.kind is Kind.RUNTIME:
        return
    if "runtime" in layer.data:
        layer.runtime = layer.data["runtime"]
        return
    found: dict[str, str] = {}
    for fw_name in layer.data.get("frameworks", []):
        fw = frameworks[fw_name]
        if fw.runtime is None:
            return
        found[fw_name] = fw.runtime
    if len(set(found.values())) > 1:
        shown = ", ".join(f"'{f}' uses '{r}'" for f, r in found.items())
        log.problem(f"frameworks use different runtimes ({shown})", layer, "frameworks")
        return
    layer.runtime = next(iter(found.values()), None)


def _linearize(layer: RawLayer, linearizer: Linearizer, log: ProblemLog) -> None:
    """Lower layers in sys.path order: C3 over frameworks, then the runtime."""
    if layer.kind is Kind.RUNTIME:
        layer.lower = ()
        return
    if layer.runtime is None:
        return
    direct = list(layer.data.get("frameworks", []))
    try:
        merged = linearizer.merge(direct)
    except C3Conflict as exc:
        shown = "; ".join("[" + ", ".join(o) + "]" for o in exc.orders if o)
        log.problem(
            f"C3 conflict: the framework orders {shown} cannot be merged into one "
            "consistent sys.path order; reorder 'frameworks' so every layer comes before "
            "the layers it builds on",
            layer,
            "frameworks",
        )
        return
    layer.lower = (*(Kind.FRAMEWORK.build_name(n) for n in merged), layer.runtime)
    layer.frameworks = tuple(direct)


# -- pass 6: platforms --------------------------------------------------------------------------


def check_platforms(raw: list[RawLayer], by_name: LayersByName, log: ProblemLog) -> None:
    """Default to the lower layers' intersection; asking for more is an error.

    Layers are taken bottom-up (a lower layer always has fewer lower layers than the layers
    on it), so each one's lower layers are settled before it, without recursion.
    """
    for layer, lowers in bottom_up_layers(raw, by_name):
        available = list(PLATFORMS)
        limiting: dict[str, str] = {}
        for low in lowers:
            missing = [p for p in available if p not in low.platforms]
            for p in missing:
                limiting.setdefault(p, low.build_name)
            if missing:
                available = [p for p in available if p in low.platforms]
        _choose_platforms(layer, available, limiting, log)


def _choose_platforms(
    layer: RawLayer, available: list[str], limiting: dict[str, str], log: ProblemLog
) -> None:
    """Set the layer's platforms: those asked for (when lower layers build them), or all."""
    asked = layer.data.get("platforms")
    if asked is None:
        layer.platforms = tuple(available)
        return
    for p in asked:
        if p in PLATFORMS and p not in available:
            log.problem(
                f"platform '{p}' is not built by lower layer '{limiting[p]}'", layer, "platforms"
            )
    layer.platforms = tuple(dict.fromkeys(p for p in asked if p in available))
