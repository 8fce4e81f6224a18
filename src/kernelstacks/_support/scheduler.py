"""Run per-layer work in dependency order, independent layers in parallel.

A layer starts once every layer below it (that is part of the run) has finished.  When a layer
fails, the layers above it are not attempted (they are reported as blocked) while unrelated
layers carry on: one broken app must not stop its siblings from building.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from kernelstacks._support.processes import stop_children

T = TypeVar("T")


_told = threading.Event()  # an interruption's summary has been given to the user


def interruption_reported() -> bool:
    """Whether a run has already said what an interruption kept (so the CLI need not)."""
    return _told.is_set()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run: which layers were finished (kept) and which were not.

    Unfinished work is discarded by its own step (a build never commits a half-made layer), so
    the user is told what survives instead of a bare "interrupted".
    """

    def __init__(self, verb: str, kept: list[str], discarded: list[str]):
        self.verb, self.kept, self.discarded = verb, kept, discarded
        super().__init__(self.summary())

    def summary(self) -> str:
        """``interrupted: kept: a, b (built); discarded: c, d (not finished)``."""
        kept = f"{', '.join(self.kept)} ({self.verb})" if self.kept else "none"
        discarded = f"{', '.join(self.discarded)} (not finished)" if self.discarded else "none"
        return f"interrupted: kept: {kept}; discarded: {discarded}"


@dataclass
class Outcome(Generic[T]):
    """What happened to one layer."""

    name: str
    result: T | None = None
    error: BaseException | None = None
    blocked_by: str | None = None

    @property
    def ok(self) -> bool:
        """True when the work ran and succeeded."""
        return self.error is None and self.blocked_by is None


def run_in_order(
    names: Iterable[str],
    deps: Callable[[str], Iterable[str]],
    work: Callable[[str], T],
    jobs: int = 1,
    cancel: threading.Event | None = None,
    verb: str = "done",
    tell: Callable[[str], None] | None = None,
    lanes: Mapping[str, int] | None = None,
) -> dict[str, Outcome[T]]:
    """Run ``work(name)`` for every name once its ``deps`` (within ``names``) are done.

    At most ``jobs`` run at once; a name ``<lane>:<rest>`` whose lane is in ``lanes`` also
    waits while ``lanes[lane]`` of its lane run (a deploy unpacks a few layers at a time while
    any number of finished ones wait for their bytecode). Ready names start in ``names``' order.

    Ctrl-C (or SIGTERM, see :func:`~kernelstacks._support.processes.install_interrupt_handlers`)
    sets ``cancel`` (so running work can give up before committing anything), stops the
    programs it is running, waits for it and raises :class:`Interrupted` saying which layers
    were finished (``verb``: "built", "locked") and which were not, after passing that summary
    to ``tell`` (the command's reporter); nothing new is started.
    """
    order = list(names)
    wanted = set(order)
    pending = {n: {d for d in deps(n) if d in wanted} for n in order}
    outcomes: dict[str, Outcome[T]] = {}
    running: dict[Future[T], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            _drive(order, pending, running, outcomes, pool, work, _Slots(jobs, lanes or {}))
        except KeyboardInterrupt:
            if cancel is not None:
                cancel.set()
            for future in running:
                future.cancel()
            stop_children()
            wait(list(running))
            kept = [n for n in order if n in outcomes and outcomes[n].ok]
            interrupted = Interrupted(verb, kept, [n for n in order if n not in kept])
            if tell is not None:
                tell(interrupted.summary())
                _told.set()
            raise interrupted from None
    return {n: outcomes[n] for n in order}


@dataclass
class _Slots:
    """How many names may run at once: in all (``jobs``) and per lane."""

    jobs: int
    lanes: Mapping[str, int]

    def free(self, name: str, running: Iterable[str]) -> bool:
        """Whether ``name`` may start beside the ``running`` ones."""
        running = list(running)
        if len(running) >= max(1, self.jobs):
            return False
        lane = name.partition(":")[0]
        if lane not in self.lanes:
            return True
        busy = sum(1 for other in running if other.partition(":")[0] == lane)
        return busy < max(1, self.lanes[lane])


def _drive(
    order: list[str],
    pending: dict[str, set[str]],
    running: dict[Future[T], str],
    outcomes: dict[str, Outcome[T]],
    pool: ThreadPoolExecutor,
    work: Callable[[str], T],
    slots: _Slots,
) -> None:
    """The scheduling loop of :func:`run_in_order`."""
    while pending or running:
        for name in [n for n in order if n in pending]:
            blockers = [d for d in pending[name] if d in outcomes and not outcomes[d].ok]
            if blockers:
                outcomes[name] = Outcome(name, blocked_by=blockers[0])
                del pending[name]
            elif all(d in outcomes for d in pending[name]) and slots.free(name, running.values()):
                running[pool.submit(work, name)] = name
                del pending[name]
        if not running:
            continue
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            name = running.pop(future)
            exc = future.exception()
            outcomes[name] = (
                Outcome(name, error=exc) if exc else Outcome(name, result=future.result())
            )


def summarize(
    outcomes: dict[str, Outcome[T]], verb: str, describe: Callable[[BaseException], str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Per-layer states and error messages for a command's summary."""
    states: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, outcome in outcomes.items():
        if outcome.ok:
            states[name] = str(outcome.result)
        elif outcome.blocked_by:
            states[name] = "blocked"
            errors[name] = f"not {verb}: lower layer {outcome.blocked_by} failed"
        else:
            states[name] = "failed"
            errors[name] = describe(outcome.error) if outcome.error else "failed"
    return states, errors
