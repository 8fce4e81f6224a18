"""C3 linearisation of framework layer dependencies (Python's MRO rule).

venvstacks orders an upper layer's lower layers exactly as Python orders base classes, so a
diamond of frameworks gets one consistent ``sys.path`` order and an inconsistent declaration is an
error rather than a surprise at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class C3Conflict(Exception):
    """No consistent order exists; ``orders`` holds the sequences that could not be merged."""

    def __init__(self, orders: list[list[str]]):
        self.orders = orders
        shown = "; ".join(" -> ".join(o) for o in orders if o)
        super().__init__(f"no consistent layer order (C3 conflict between orders: {shown})")


def c3_merge(sequences: Sequence[Sequence[str]]) -> list[str]:
    """Merge linearisations: repeatedly take the first head that is in no other tail."""
    seqs = [list(s) for s in sequences if s]
    result: list[str] = []
    while seqs:
        for seq in seqs:
            head = seq[0]
            if not any(head in other[1:] for other in seqs):
                break
        else:
            raise C3Conflict(seqs)
        result.append(head)
        seqs = [s[1:] if s[0] == head else s for s in seqs]
        seqs = [s for s in seqs if s]
    return result


def linearize(node: str, parents: Callable[[str], Sequence[str]]) -> list[str]:
    """C3 linearisation of ``node`` (itself first) given a function returning direct parents.

    The caller guarantees the graph is acyclic (cycles are reported separately, with the path).
    """
    memo: dict[str, list[str]] = {}

    def lin(n: str) -> list[str]:
        if n not in memo:
            direct = list(parents(n))
            memo[n] = [n, *c3_merge([*(lin(p) for p in direct), direct])]
        return memo[n]

    return lin(node)


def find_cycle(nodes: Sequence[str], parents: Callable[[str], Sequence[str]]) -> list[str] | None:
    """Return one dependency cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for p in parents(n):
            if state.get(p) == 1:
                return [*stack[stack.index(p) :], p]
            if p not in state and (found := visit(p)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in nodes:
        if n not in state and (found := visit(n)):
            return found
    return None
