"""C3 linearisation of framework layer dependencies (Python's MRO rule).

venvstacks orders an upper layer's lower layers exactly as Python orders base classes, so a
diamond of frameworks gets one consistent ``sys.path`` order and an inconsistent declaration is an
error rather than a surprise at import time.

Stacks can be deep (a generated chain of a thousand frameworks must load in well under a
second or two), so nothing here recurses: a deep chain would exhaust Python's stack, and
per-layer recomputation would make loading quadratic in depth times merge cost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence


class C3Conflict(Exception):
    """No consistent order exists; ``orders`` holds the sequences that could not be merged."""

    def __init__(self, orders: list[list[str]]):
        self.orders = orders
        shown = "; ".join(" -> ".join(o) for o in orders if o)
        super().__init__(f"no consistent layer order (C3 conflict between orders: {shown})")


def c3_merge(sequences: Sequence[Sequence[str]]) -> list[str]:
    """Merge linearisations: repeatedly take the first head that is in no other tail.

    Heads are tracked by position and tails by a count of their members, so one merge costs
    the total length of its inputs times their number, rather than that squared.
    """
    seqs = [list(s) for s in sequences if s]
    pos = [0] * len(seqs)
    in_tails = Counter(x for s in seqs for x in s[1:])
    active = list(range(len(seqs)))
    result: list[str] = []
    while active:
        for i in active:
            head = seqs[i][pos[i]]
            if not in_tails[head]:
                break
        else:
            raise C3Conflict([seqs[i][pos[i] :] for i in active])
        result.append(head)
        still: list[int] = []
        for i in active:
            seq = seqs[i]
            if seq[pos[i]] == head:
                pos[i] += 1
                if pos[i] == len(seq):
                    continue
                in_tails[seq[pos[i]]] -= 1  # the new head has left this tail
            still.append(i)
        active = still
    return result


class Linearizer:
    """C3 linearisations of every node of one acyclic graph, each computed once.

    A node's result is reused by every node above it; a conflict is remembered too, so every
    layer built on an inconsistent framework gets the same :class:`C3Conflict`.
    """

    def __init__(self, parents: Callable[[str], Sequence[str]]):
        self._parents = parents
        self._memo: dict[str, list[str] | C3Conflict] = {}

    def __call__(self, node: str) -> list[str]:
        """``node`` first, then its ancestors in C3 order (raises :class:`C3Conflict`)."""
        for n in _post_order([node], self._parents, self._memo.keys()):
            direct = list(self._parents(n))
            lowers = [self._memo[p] for p in direct]
            failed = next((x for x in lowers if isinstance(x, C3Conflict)), None)
            if failed is not None:
                self._memo[n] = failed
                continue
            try:
                self._memo[n] = [n, *self._merge(lowers, direct)]  # type: ignore[arg-type]
            except C3Conflict as exc:
                self._memo[n] = exc
        found = self._memo[node]
        if isinstance(found, C3Conflict):
            raise found
        return found

    def merge(self, direct: Sequence[str]) -> list[str]:
        """The C3 order of everything below a node whose direct parents are ``direct``."""
        return self._merge([self(p) for p in direct], direct)

    @staticmethod
    def _merge(lowers: list[list[str]], direct: Sequence[str]) -> list[str]:
        """C3 merge, with a shortcut for the common single-parent case (a chain)."""
        if len(lowers) == 1:
            return list(lowers[0])  # it starts with the one parent: nothing to merge
        return c3_merge([*lowers, list(direct)])


def linearize(node: str, parents: Callable[[str], Sequence[str]]) -> list[str]:
    """C3 linearisation of ``node`` (itself first) given a function returning direct parents.

    The caller guarantees the graph is acyclic (cycles are reported separately, with the path).
    """
    return Linearizer(parents)(node)


def _post_order(
    roots: Iterable[str], parents: Callable[[str], Sequence[str]], done: Iterable[str] = ()
) -> list[str]:
    """Nodes reachable from ``roots`` (skipping ``done``), every node after its parents."""
    seen = set(done)
    order: list[str] = []
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(parents(root)))]
        while stack:
            node, pending = stack[-1]
            for p in pending:
                if p not in seen:
                    seen.add(p)
                    stack.append((p, iter(parents(p))))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def find_cycle(nodes: Sequence[str], parents: Callable[[str], Sequence[str]]) -> list[str] | None:
    """Return one dependency cycle as a path (first node repeated at the end), or None.

    An iterative depth-first search: a cycle through a thousand layers is an input error to
    report, not a reason to run out of stack.
    """
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    for start in nodes:
        if start in state:
            continue
        state[start] = 1
        path = [start]
        stack = [iter(parents(start))]
        while stack:
            for p in stack[-1]:
                if state.get(p) == 1:
                    return [*path[path.index(p) :], p]
                if p not in state:
                    state[p] = 1
                    path.append(p)
                    stack.append(iter(parents(p)))
                    break
            else:
                stack.pop()
                state[path.pop()] = 2
    return None


def bottom_up(nodes: Iterable[str], parents: Callable[[str], Sequence[str]]) -> list[str]:
    """``nodes`` and everything below them, each after its parents (the graph is acyclic)."""
    return _post_order(nodes, parents)
