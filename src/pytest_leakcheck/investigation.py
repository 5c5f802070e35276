"""The steps of a check once its window has closed: what the test named that is still alive,
waiting for what is stopping, whose roots are whose, what was left running, explaining the
survivors, and stopping what can be stopped to prove what it held."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Iterator

from . import garbage, kinds, provenance, running
from .cycles import Series
from .expectations import Expectation, Unreleased, still_alive, unreleased
from .explain import Explainer, ExplainPolicy, holding
from .findings import Findings, LeakGroup, Pending, Proof
from .frames import FrameIndex
from .heap import WindowResult, find_by_id, followed
from .kinds import RootInfo
from .options import Options
from .origins import Origins, idle_leftovers
from .reach import threads_hold
from .recording import Recording
from .settle import settle, ticking, timer_threads, wait_for_ticks
from .stopping import stop_all
from .watch import WatchFilter


class Investigation:
    """One check's findings, from what its window found. ``roots`` gives the holders the search
    stops at beyond what it finds by itself; ``foreign_threads`` are threads the test started
    that something else owns."""

    def __init__(
        self,
        watch: WatchFilter,
        options: Options,
        recording: Recording,
        *,
        tag: int | None,
        foreign_threads: frozenset[int],
        roots: Callable[[], dict[int, RootInfo]],
        expected: list[Expectation],
    ) -> None:
        self._watch = watch
        self._options = options
        self._recording = recording
        self._tag = tag
        self._foreign = foreign_threads
        self._roots = roots
        self._expected = expected

    def unreleased(self, result: WindowResult) -> Unreleased:
        """The objects the test said must be released, still alive: each one a leak."""
        if not self._expected:
            return Unreleased()
        foreign = self._foreign
        older = self._recording.threads_before
        # What the window found would keep alive what it holds (a cancelled timer, and the
        # owner of its function): let go of while the expected objects are looked at, then
        # found again by id and type.
        held = followed(result.found)
        result.found.clear()
        try:
            return unreleased(
                self._expected,
                settle=self._options.settle,
                threads_before=older,
                extra_roots=self._roots(),
                frames=lambda: FrameIndex(foreign, older),
                site_of=self._recording.site_of,
                sizes=self._options.sizes,
            )
        finally:
            result.found.extend(find_by_id(held))

    def run(
        self,
        result: WindowResult,
        series: Series | None,
        *,
        registered: bool,
        expected: Unreleased | None = None,
        threads_found: frozenset[int] = frozenset(),
    ) -> Findings:
        """What the window found, explained: the groups, what the test left running, the proof,
        the seconds waited and spent explaining, and what earlier tests left running and hold.

        ``registered``: the test left a signal handler, an exit hook or an interval timer behind,
        which may be what holds its survivors. ``threads_found``: the threads alive when the
        window closed. ``expected``: the objects the test named that are
        still alive, explained already; they count in the proof.
        """
        before = self._recording
        pool_threads = result.pool_threads
        # Whose roots the window saw, before waiting: a leftover chain's timers come and go.
        origins = Origins(
            self._tag,
            threads_before=before.thread_keys_before,
            ignore_threads=self._options.ignore_threads,
            foreign_threads=self._foreign,
        )
        other_tags = origins.other_tags(result)
        alive, waited = settle(
            result.found,
            self._options.settle,
            before.threads_before,
            origins.others_threads,
            threads_found,
        )
        expected = expected or Unreleased()
        survivors = [o for o in alive if id(o) in result.survivor_ids and id(o) not in expected.ids]
        started = [o for o in alive if id(o) in result.root_ids]
        alive.clear()
        left: list[tuple[Pending, object]] = []
        others: list[tuple[Pending, object]] = []
        try:
            _drop_garbage(survivors, started)
            with _threads_paused(self._options.settle) as pause:
                mine, theirs = origins.by_origin(
                    started, result.pool_threads, other_tags, idle=self._options.stop_pending
                )
                left = self._left_running(mine)
                others = self._left_running(theirs)
                chains = other_tags | _timer_tags(mine) | _timer_tags(theirs)
                for item in origins.handed_over(chains, [*left, *others], self._left_running):
                    (left if provenance.tag_of(item[1]) in (None, self._tag) else others).append(
                        item
                    )
                others = origins.leftovers(others)
                # What is still running stays in ``left`` alone. A timer that ended since the
                # window closed is a plain object now, and held here it would keep alive what
                # its function holds.
                started.clear()
                mine.clear()
                theirs.clear()
                # Survivors that what others left running made are walked as well: held by it,
                # they are its, and must not pass for this test's suspects.
                others_alive = bool(others) or threads_hold(origins.others_threads(), survivors)
                explainer = self._explainer(
                    bool(left), registered or others_alive, result.pool_threads, pause.quiet
                )
                explaining = time.perf_counter()
                groups, retained = explainer.explain(survivors, series)
                explained = left or registered or others_alive
                passive = 0.0 if explained else time.perf_counter() - explaining
            groups = explainer.drop_garbage(groups, survivors)
            groups = explainer.drop_passing(groups, survivors)
            groups, held_by_others = origins.split(groups)
            pending = [self._judged(item, obj, groups) for item, obj in left]
            leftovers = origins.reported(others)
            if self._options.stop_pending:
                origins.stop_leftovers(others)
            proof = Proof(disarmed=self.disarm())
            if self._options.stop_pending:
                survivors.extend(still_alive(expected.refs))
                proof = dataclasses.replace(
                    stop_all(
                        left,
                        survivors,
                        (*expected.groups, *groups),
                        threads_before=before.thread_keys_before,
                        ignore_threads=self._options.ignore_threads,
                        foreign_threads=self._foreign | pool_threads,
                        tag=self._tag,
                    ),
                    disarmed=proof.disarmed,
                )
        finally:
            survivors.clear()
            started.clear()
            left.clear()
            others.clear()
        return Findings(
            groups=groups,
            settle_seconds=waited,
            passive_seconds=passive,
            pending=tuple(pending),
            stopped=proof,
            leftovers=leftovers,
            held_by_leftovers=held_by_others,
            retained_bytes=retained.bytes if retained is not None else None,
            retained_complete=retained.complete if retained is not None else True,
        )

    def leftovers_waiting(self) -> bool:
        """Another test left a timer that is still pending: worth a look though the window
        found nothing (each one found is stopped, so this is not true twice for the same)."""
        return self._options.stop_pending and bool(idle_leftovers(self._tag))

    def _left_running(self, started: list[object]) -> list[tuple[Pending, object]]:
        return running.left_running(
            started,
            ignore_threads=self._options.ignore_threads,
            foreign_threads=self._foreign,
            site_of=self._recording.site_of,
        )

    def _explainer(
        self,
        something_running: bool,
        registered: bool,
        pool_threads: frozenset[int],
        quiet: Callable[[], None],
    ) -> Explainer:
        options = self._options
        # Repeated passive suspects are not walked again, and none is once the time for them is
        # spent, unless the test left something running or registered that could be what holds
        # them this time: a leak held by it must never pass for a suspect.
        left_something = something_running or registered
        policy = ExplainPolicy(
            strict=options.strict,
            max_traced_per_type=options.max_traced_per_type,
            limits=options.limits,
            graphs=options.graphs,
            sizes=options.sizes,
            settle=options.settle,
            skip_types=frozenset() if left_something else options.skip_tracing,
            walk_suspects=left_something or options.explain_suspects,
            something_running=something_running,
            walk_seconds=None if left_something else options.explain_seconds,
        )
        older = self._recording.threads_before | pool_threads
        foreign = self._foreign
        return Explainer(
            self._watch,
            policy,
            roots=self._roots,
            frames=lambda: FrameIndex(foreign, older),
            site_of=self._recording.site_of,
            first_site_of=self._recording.first_site_of,
            quiet=quiet,
        )

    def _judged(self, item: Pending, obj: object, groups: tuple[LeakGroup, ...]) -> Pending:
        """A thread that holds none of the survivors is passive under a lenient check."""
        if self._options.strict or item.kind != kinds.THREAD or id(obj) in holding(groups):
            return item
        return dataclasses.replace(item, passive=True)

    def disarm(self) -> tuple[str, ...]:
        return self._recording.disarm() if self._options.stop_pending else ()


class _Pause:
    """Other threads kept from running while the search reads the heap.

    A loop thread that re-arms its handle between two steps of the walk would leave the search
    holding objects that nothing refers to any more. A long switch interval keeps the GIL with the
    search (bounded by its own limits), except where the search itself blocks (reading a file).
    A timer whose function is running is let finish first (within ``budget`` seconds): paused in
    the middle, its frames would hold what it ticks for, and which group retains which would
    come out otherwise than a moment later.
    """

    def __init__(self, budget: float) -> None:
        self._budget = budget
        self._previous = sys.getswitchinterval()
        self._ticking: frozenset[int] = frozenset()

    def start(self) -> None:
        deadline = time.monotonic() + self._budget
        while True:
            # Ticks are waited for before the long interval is set: a thread that holds the GIL
            # when this one wakes up from a pause would otherwise keep it for the whole interval.
            wait_for_ticks(max(0.0, deadline - time.monotonic()))
            # A tick that outlasted the budget was in the heap before the search, as it always
            # was: it is not waited for again.
            self._ticking = frozenset(ticking())
            sys.setswitchinterval(max(self._previous, 30.0))
            if not timer_threads():
                return
            # A timer that fired a moment ago waits for the GIL with the old interval: it takes
            # it once within that interval, and stops at its first blocking call, in the middle
            # of its tick. Let that happen here, not while the heap is read.
            _run_for(2 * self._previous)
            if not ticking() - self._ticking or time.monotonic() >= deadline:
                return
            sys.setswitchinterval(self._previous)

    def end(self) -> None:
        sys.setswitchinterval(self._previous)

    def quiet(self) -> None:
        """Let a tick that began since the pause started finish (the search blocked, and a
        timer took the GIL): read now, the heap would show its frames."""
        if ticking() - self._ticking:
            self.end()
            self.start()


def _run_for(seconds: float) -> None:
    """Run Python code, never blocking, for ``seconds``: a thread that waits for the GIL with a
    timeout of that length gets it meanwhile."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


@contextlib.contextmanager
def _threads_paused(budget: float) -> Iterator[_Pause]:
    pause = _Pause(budget)
    pause.start()
    try:
        yield pause
    finally:
        pause.end()


def _drop_garbage(survivors: list[object], started: list[object]) -> None:
    """Leave out what a full collection would free: a cycle through an object older than the
    window survives the window's collection of the young generations.

    What the test started goes too (a task pending on a closed loop that nothing holds, its
    sleep's handle), but not threads: a timer that has just fired is garbage, and it is how its
    chain is followed to the next timer."""
    gone = garbage.garbage(survivors, started)
    if gone:
        survivors[:] = [o for o in survivors if id(o) not in gone]
        started[:] = [o for o in started if id(o) not in gone or isinstance(o, threading.Thread)]


def _timer_tags(roots: list[object]) -> set[int]:
    """The tags of the timers among ``roots``: the chains whose next timer may be missed."""
    return {
        tag
        for obj in roots
        if isinstance(obj, threading.Timer) and (tag := provenance.tag_of(obj)) is not None
    }
