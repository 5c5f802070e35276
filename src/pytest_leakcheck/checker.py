"""The pure core: watch a block of code, then say which watched objects it left alive and why.

Nothing here imports pytest. ``plugin`` is a thin adapter over :class:`LeakCheck`. The steps of a
check live in their own modules: ``snapshot`` (the window), ``settle`` (waiting for what is
stopping), ``running`` (what was left running), ``explain`` (what holds the survivors),
``stopping`` (cancelling, and what that freed), ``findings`` (the results and their verdicts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from . import frozen, kinds, provenance, running, snapshot
from .cycles import Sample, Series
from .explain import Explainer, ExplainPolicy, holding
from .findings import Findings, Heap, LeakGroup, Pending, Proof
from .frames import FrameIndex
from .heap import WindowResult
from .kinds import RootInfo
from .memory import rss
from .recording import Recording
from .retention import SearchLimits
from .settle import SETTLE_BUDGET, settle
from .sites import InitMonitor
from .stopping import stop_all
from .watch import WatchFilter

ExtraRoots = Mapping[int, RootInfo] | Callable[[], Mapping[int, RootInfo]]


@dataclass
class Options:
    strict: bool = True
    settle: float = SETTLE_BUDGET
    max_traced_per_type: int = 3
    mode: str = "auto"
    limits: SearchLimits = field(default_factory=SearchLimits)
    max_growth: int | None = None  # bytes; traces the block with tracemalloc when set
    sizes: bool = True  # measure what each leaked group retains
    ignore_threads: tuple[str, ...] = ()  # name globs of threads a test may leave running
    trace: bool = False  # note where objects are created (a profile function: slower)
    graphs: bool = False  # draw each traced path with objgraph (a full collection per path)
    stop_pending: bool = True  # cancel what the block left pending, and say what that freed
    # Types whose survivors are counted, not walked, when the check is lenient and the block
    # left nothing running: the plugin fills it with types it already explained in the session.
    skip_tracing: frozenset[str] = frozenset()
    # False when the plugin's time budget for explaining lenient suspects is spent: then no
    # passive suspect is walked or sized (a block that left something running still is).
    explain_suspects: bool = True


class RepeatError(RuntimeError):
    """A body that passed once raised when it ran again: it cannot be judged in cycles."""


class LeakCheck:
    """Context manager around a block; ``findings`` is set when the block exits.

    ``extra_roots`` names holders the search should stop at (the plugin passes what wider-scoped
    pytest fixtures and pytest itself hold): a mapping, or a function called once after the
    window closed. ``foreign_threads`` are idents of threads the block started that something
    else owns (a wider-scoped fixture's server).
    """

    def __init__(
        self,
        watch: WatchFilter,
        options: Options | None = None,
        extra_roots: ExtraRoots | None = None,
        sites: InitMonitor | None = None,
    ) -> None:
        self.watch = watch
        self.options = options or Options()
        self._extra_roots: ExtraRoots = extra_roots or {}
        self._window: snapshot.Window | None = None
        self._recording = Recording(watch, sites)
        self._tag: int | None = None  # the test's tag (``provenance``), when tags are given
        self._series: Series | None = None
        self.foreign_threads: set[int] = set()
        self.findings: Findings | None = None

    # -- the window ------------------------------------------------------------------------

    def start(self) -> None:
        self._tag = provenance.current()
        recording = self._recording
        try:
            recording.start(trace_memory=self.options.max_growth is not None)
            self._window = snapshot.open_window(self.watch, mode=self.options.mode)
            if self.options.trace:
                recording.start_sites()
        except BaseException:
            recording.stop()
            recording.stop_tracing()
            raise

    def cycles(self, runs: int, warmup: int = 0) -> Iterator[int]:
        """Yield ``warmup + runs`` times inside the window, sampling the heap after each run.

        ``for _ in check.cycles(5, warmup=2): connect(); disconnect()``. The findings then judge
        survivors by growth per counted run: what appeared once (a cache) is not a leak.
        """
        window = self._window
        if window is None:
            raise RuntimeError("LeakCheck.cycles() needs a started check")
        if runs < 1 or warmup < 0:
            raise ValueError(f"cycles() needs runs >= 1 and warmup >= 0, not {runs}, {warmup}")
        self._recording.trace_memory()
        series = self._series = Series(runs=runs, warmup=warmup)
        series.samples.append(self._sample(window))
        for i in range(warmup + runs):
            yield i
            series.samples.append(self._sample(window))

    def abort(self) -> None:
        """End the check without judging anything (the block raised, or the plugin failed)."""
        self._recording.stop()
        self._recording.stop_tracing()
        self._recording.clear()
        window, self._window = self._window, None
        if isinstance(window, frozen.FrozenWindow):
            window.abort()

    def finish(self, extra_roots: ExtraRoots | None = None) -> Findings:
        """End the window, then: wait for what is stopping, find what was left running,
        explain the survivors, judge them, stop what can be stopped and prove what it held.

        ``extra_roots``, when given, replaces the one the check was made with.
        """
        if extra_roots is not None:
            self._extra_roots = extra_roots
        recording = self._recording
        recording.stop()
        window, self._window = self._window, None
        if window is None:
            raise RuntimeError("LeakCheck.finish() called before start()")
        began = time.perf_counter()
        mode, no_frozen = _mode_of(window)
        try:
            result = window.close()
        finally:
            growth = recording.stop_tracing()
        del window
        heap = self._heap(result.objects_added, growth)
        series, self._series = self._series, None
        pending = recording.changes()
        if result.survivor_ids or result.root_ids:
            found = self._investigate(result, series, registered=bool(pending))
        else:
            found = Findings(stopped=Proof(disarmed=self._disarm()))
        traced = recording.traced_sites
        recording.clear()
        self.findings = dataclasses.replace(
            found,
            mode=mode,
            no_frozen_window=no_frozen,
            check_seconds=time.perf_counter() - began,
            heap=heap,
            cycles=series,
            pending=(*pending, *found.pending),
            traced=traced,
        )
        return self.findings

    # -- the steps of finish() -------------------------------------------------------------

    def _investigate(
        self, result: WindowResult, series: Series | None, *, registered: bool
    ) -> Findings:
        """What the window found, explained: the groups, what the test left running, the proof,
        the seconds waited and spent explaining, and what earlier tests left running and hold.

        ``registered``: the test left a signal handler, an exit hook or an interval timer behind,
        which may be what holds its survivors.
        """
        before = self._recording
        pool_threads = result.pool_threads
        # Whose roots the window saw, before waiting: a leftover chain's timers come and go.
        other_tags = self._other_tags(result)
        alive, waited = settle(
            result.found, self.options.settle, before.threads_before, self._others_threads
        )
        survivors = [o for o in alive if id(o) in result.survivor_ids]
        started = [o for o in alive if id(o) in result.root_ids]
        alive.clear()
        left: list[tuple[Pending, object]] = []
        others: list[tuple[Pending, object]] = []
        try:
            with _threads_paused():
                mine, theirs = self._by_origin(started, result.pool_threads, other_tags)
                left = self._left_running(mine)
                others = self._leftovers(theirs)
                # What is still running stays in ``left`` alone. A timer that ended since the
                # window closed is a plain object now, and held here it would keep alive what
                # its function holds.
                started.clear()
                mine.clear()
                theirs.clear()
                # Survivors that what others left running made are walked as well: held by it,
                # they are its, and must not pass for this test's suspects.
                others_alive = bool(others) or bool(self._others_threads())
                explainer = self._explainer(
                    bool(left), registered or others_alive, result.pool_threads
                )
                explaining = time.perf_counter()
                groups, retained = explainer.explain(survivors, series)
                explained = left or registered or others_alive
                passive = 0.0 if explained else time.perf_counter() - explaining
            groups = explainer.drop_garbage(groups, survivors)
            groups = explainer.drop_passing(groups, survivors)
            groups, held_by_others = self._split_by_origin(groups)
            pending = [self._judged(item, obj, groups) for item, obj in left]
            leftovers = tuple(item for item, _ in others)
            if self.options.stop_pending:
                self._stop_leftovers(others)
            proof = Proof(disarmed=self._disarm())
            if self.options.stop_pending:
                proof = dataclasses.replace(
                    stop_all(
                        left,
                        survivors,
                        groups,
                        threads_before=before.thread_keys_before,
                        ignore_threads=self.options.ignore_threads,
                        foreign_threads=frozenset(self.foreign_threads) | pool_threads,
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

    def _other_tags(self, result: WindowResult) -> set[int]:
        """The tags of roots made by other tests (their leftovers) among what the window found."""
        own = self._tag
        if own is None:
            return set()
        tags = {provenance.tag_of(o) for o in result.found if id(o) in result.root_ids}
        return {tag for tag in tags if tag is not None and tag != own}

    def _others_threads(self) -> frozenset[int]:
        """Idents of live threads that other tests made: nothing to wait for on this test's
        behalf."""
        own = self._tag
        if own is None:
            return frozenset()
        return frozenset(
            t.ident
            for t in threading.enumerate()
            if t.ident is not None and provenance.tag_of(t) not in (None, own)
        )

    def _by_origin(
        self, started: list[object], pool_threads: frozenset[int], other_tags: set[int]
    ) -> tuple[list[object], list[object]]:
        """The roots this test made (with what its chains armed since), and those that other
        tests' leftovers made while it ran. Without tags, every young root is the test's. The
        workers that an older pool started for the test are the pool's (``pool_threads``)."""
        own = self._tag
        if own is None:
            return list(started), []
        mine: list[object] = []
        theirs: list[object] = []
        for obj in started:
            tag = provenance.tag_of(obj)
            (mine if tag in (None, own) else theirs).append(obj)
        # What the chains armed since the window closed, the test's and the others'.
        known = {id(o) for o in mine} | {id(o) for o in theirs}
        before = self._recording.thread_keys_before
        mine.extend(running.made_under(own, running.loops_of(mine), known, before, pool_threads))
        for tag in other_tags | {provenance.tag_of(o) for o in theirs}:
            if tag is not None:
                theirs.extend(running.made_under(tag, running.loops_of(theirs), known, before))
        return mine, theirs

    def _leftovers(self, theirs: list[object]) -> list[tuple[Pending, object]]:
        found = self._left_running(theirs)
        return [
            (dataclasses.replace(item, made_by=provenance.name(provenance.tag_of(obj) or 0)), obj)
            for item, obj in found
        ]

    def _stop_leftovers(self, others: list[tuple[Pending, object]]) -> None:
        """Stop what other tests left running, chains and all, so that it does not tick into
        the next tests. ``others`` is emptied."""
        by_tag: dict[int, list[tuple[Pending, object]]] = {}
        for item, obj in others:
            by_tag.setdefault(provenance.tag_of(obj) or 0, []).append((item, obj))
        others.clear()
        for tag, items in by_tag.items():
            stop_all(
                items,
                [],
                (),
                threads_before=self._recording.thread_keys_before,
                ignore_threads=self.options.ignore_threads,
                foreign_threads=frozenset(self.foreign_threads),
                tag=tag or None,
            )
        by_tag.clear()

    def _split_by_origin(
        self, groups: tuple[LeakGroup, ...]
    ) -> tuple[tuple[LeakGroup, ...], tuple[LeakGroup, ...]]:
        """Groups held only by roots another test made are that test's, not this one's."""
        own = self._tag
        if own is None:
            return groups, ()
        theirs = tuple(
            g
            for g in groups
            if g.retentions and all(r.root_tag not in (None, own) for r in g.retentions)
        )
        return tuple(g for g in groups if g not in theirs), theirs

    def _left_running(self, started: list[object]) -> list[tuple[Pending, object]]:
        return running.left_running(
            started,
            ignore_threads=self.options.ignore_threads,
            foreign_threads=frozenset(self.foreign_threads),
            site_of=self._recording.site_of,
        )

    def _explainer(
        self, something_running: bool, registered: bool, pool_threads: frozenset[int]
    ) -> Explainer:
        options = self.options
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
        )
        older = self._recording.threads_before | pool_threads
        foreign = frozenset(self.foreign_threads)
        return Explainer(
            self.watch,
            policy,
            roots=self._roots,
            frames=lambda: FrameIndex(foreign, older),
            site_of=self._recording.site_of,
            first_site_of=self._recording.first_site_of,
        )

    def _roots(self) -> dict[int, RootInfo]:
        """Holders the search stops at beyond what it finds by itself."""
        extra = self._extra_roots
        return {
            **kinds.signal_roots(running.handlers()),
            **self._recording.roots(),
            **kinds.context_roots(),
            **(extra() if callable(extra) else extra),
        }

    def _judged(self, item: Pending, obj: object, groups: tuple[LeakGroup, ...]) -> Pending:
        """A thread that holds none of the survivors is passive under a lenient check."""
        if self.options.strict or item.kind != kinds.THREAD or id(obj) in holding(groups):
            return item
        return dataclasses.replace(item, passive=True)

    def _disarm(self) -> tuple[str, ...]:
        return self._recording.disarm() if self.options.stop_pending else ()

    def _heap(self, objects_added: int, growth: int | None) -> Heap:
        return Heap(
            objects_added=objects_added,
            rss_before=self._recording.rss_before,
            rss_after=rss(),
            traced_growth=growth,
            max_growth=self.options.max_growth,
        )

    def _sample(self, window: snapshot.Window) -> Sample:
        objects, by_type = window.sample()
        return Sample(objects=objects, by_type=by_type, traced_bytes=self._recording.traced_now())

    def __enter__(self) -> LeakCheck:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            # The block's traceback holds its frames and locals: nothing could be judged fairly.
            self.abort()
            return
        self.finish()


def _mode_of(window: snapshot.Window) -> tuple[str, str]:
    """How the window told new from old, and why it did not freeze ("" when it did)."""
    if isinstance(window, frozen.FrozenWindow):
        if window.degraded:
            return "full-heap (degraded: the test called the gc module)", ""
        if window.thaws:
            return f"frozen (thawed around {window.thaws} gc call(s) of the test)", ""
        return window.mode, ""
    return window.mode, window.reason


@contextlib.contextmanager
def _threads_paused() -> Iterator[None]:
    """Keep other threads from running while the search reads the heap.

    A loop thread that re-arms its handle between two steps of the walk would leave the search
    holding objects that nothing refers to any more. A long switch interval keeps the GIL with the
    search (bounded by its own limits); the interval is restored afterwards.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(max(previous, 30.0))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def check_leaks(
    *types: type | str,
    rootdir: str | None = None,
    strict: bool = True,
) -> LeakCheck:
    """The public entry point: ``with check_leaks(User) as check: ...`` then ``check.findings``.

    ``types`` are classes or ``module.QualName`` globs; ``rootdir`` additionally watches every class
    defined under that directory (what the pytest plugin does with pytest's rootdir).
    """
    classes = frozenset(t for t in types if isinstance(t, type))
    patterns = tuple(t for t in types if isinstance(t, str))
    watch = WatchFilter(rootdir=rootdir, types=classes, patterns=patterns)
    return LeakCheck(watch, Options(strict=strict))
