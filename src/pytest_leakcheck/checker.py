"""The pure core: watch a block of code, then say which watched objects it left alive and why.

Nothing here imports pytest. ``plugin`` is a thin adapter over :class:`LeakCheck`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import sys
import threading
import time
import tracemalloc
import types
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from . import describe, roots, snapshot
from .cycles import Sample, Series
from .retention import Retention, SearchLimits, _FrameIndex, find_path, find_paths
from .roots import Pending, RootInfo
from .sites import SiteRecorder
from .sizes import retained_size
from .watch import WatchFilter, qualified_name

Verdict = Literal["leak", "suspect"]


@dataclass(frozen=True)
class LeakGroup:
    """Survivors of one type held through one kind of root. Text only: it keeps nothing alive."""

    type: str
    count: int
    kind: str
    verdict: Verdict
    retentions: tuple[Retention, ...]
    untraced: int = 0
    retained_bytes: int | None = None
    retained_complete: bool = True
    per_run: tuple[int, ...] = ()  # growth per counted run, under repeated cycles
    created: str | None = None  # where the first traced survivor was made (--leakcheck-trace)

    @property
    def root(self) -> str:
        return self.retentions[0].root if self.retentions else ""

    @property
    def path(self) -> tuple[str, ...]:
        return self.retentions[0].path if self.retentions else ()


@dataclass(frozen=True)
class Heap:
    """Cheap, deterministic heap figures of one check (see the README for what each measures)."""

    objects_added: int  # gc-tracked objects the block made that are still alive after it
    rss_before: int | None = None  # resident set size in bytes (Linux), noisy: informational
    rss_after: int | None = None
    traced_growth: int | None = None  # bytes, when tracemalloc traced the block
    max_growth: int | None = None

    @property
    def over_limit(self) -> bool:
        return (
            self.max_growth is not None
            and self.traced_growth is not None
            and self.traced_growth > self.max_growth
        )


@dataclass(frozen=True)
class Findings:
    groups: tuple[LeakGroup, ...] = ()
    mode: str = ""
    # Why the check compared the whole heap instead of freezing it ("" when it froze).
    no_frozen_window: str = ""
    settle_seconds: float = 0.0
    check_seconds: float = 0.0
    # Spent walking and sizing survivors of a block that left nothing running (the cost that
    # the plugin's budget for explaining suspects counts).
    passive_seconds: float = 0.0
    heap: Heap | None = None
    cycles: Series | None = None
    pending: tuple[Pending, ...] = ()  # what the block started and left running
    proof: tuple[str, ...] = ()  # what stopping it did
    traced: bool = False  # creation sites were recorded

    @property
    def pending_leaks(self) -> tuple[Pending, ...]:
        return tuple(p for p in self.pending if p.is_leak)

    @property
    def leaks(self) -> tuple[LeakGroup, ...]:
        return tuple(g for g in self.groups if g.verdict == "leak")

    @property
    def suspects(self) -> tuple[LeakGroup, ...]:
        return tuple(g for g in self.groups if g.verdict == "suspect")

    @property
    def heap_leak(self) -> bool:
        """The heap outgrew its limit, or grew in every counted cycle."""
        over = self.heap is not None and self.heap.over_limit
        return over or (self.cycles is not None and self.cycles.heap_grows())

    @property
    def verdict(self) -> Verdict | None:
        if self.leaks or self.heap_leak or self.pending_leaks:
            return "leak"
        if self.suspects or self.pending:
            return "suspect"
        return None


def judge(kind: str, *, strict: bool, named: bool) -> Verdict | None:
    """The verdict for one survivor, given what holds it and how the test was selected."""
    if kind == roots.FIXTURE:
        return None
    if strict or named or kind in roots.ACTIVE_KINDS:
        return "leak"
    return "suspect"


NOT_WALKED_REPEAT = "not walked: this type was explained earlier in the session"
NOT_WALKED_BUDGET = (
    "not walked: the session's time budget for explaining suspects is spent "
    "(--leakcheck-explain-budget; --leakcheck-strict or a marker walks every one)"
)


@dataclass
class Options:
    strict: bool = True
    settle: float = 0.25
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

    ``extra_roots`` is called after the block to name holders the search should stop at (the
    plugin passes wider-scoped pytest fixtures). It runs once, after the window closed.
    """

    def __init__(
        self,
        watch: WatchFilter,
        options: Options | None = None,
        extra_roots: Callable[[], Mapping[int, RootInfo]] | None = None,
    ) -> None:
        self.watch = watch
        self.options = options or Options()
        self._extra_roots = extra_roots
        self._window: snapshot.FrozenWindow | snapshot.FullHeapWindow | None = None
        self._atexit = roots.AtexitRecorder()
        self._threads_before: frozenset[int] = frozenset()
        self._thread_keys_before: frozenset[roots.ThreadKey] = frozenset()
        self._tracing: _Tracing | None = None
        self._series: Series | None = None
        self._caller_refs: dict[int, int] = {}
        self._process = roots.ProcessState()
        # Threads that something outside the block owns although the block started them (a
        # wider-scoped pytest fixture set up inside the window): not the block's to leave running.
        self.foreign_threads: set[int] = set()
        self._sites: SiteRecorder | None = None
        self._rss_before: int | None = None
        self._skip_now: frozenset[str] = frozenset()
        self._skip_all_now = False
        self._pool_threads: frozenset[int] = frozenset()
        self._running_now = False
        self.findings: Findings | None = None

    def start(self) -> None:
        self._threads_before = _thread_idents()
        self._thread_keys_before = frozenset(map(roots.thread_key, threading.enumerate()))
        self._rss_before = _rss()
        self._process = roots.ProcessState()
        self._atexit.start()
        try:
            if self.options.max_growth is not None:
                self._tracing = _Tracing.start()
            self._window = snapshot.open_window(self.watch, mode=self.options.mode)
            if self.options.trace:
                recorder = SiteRecorder(self.watch.rootdir, self._wanted_site)
                self._sites = recorder if recorder.start() else None
        except BaseException:
            self._stop_sites()
            self._stop_tracing()
            self._atexit.stop()
            raise

    def _is_project_callable(self, func: object) -> bool:
        """A callable of the project's code (or bound to a watched object); libraries that
        register an exit hook the first time they are used (pytest's tmp_path does) are not
        the test's doing."""
        owner = getattr(func, "__self__", None)
        if owner is not None and self.watch.is_watched(type(owner), {}):
            return True
        module = getattr(func, "__module__", None)
        return isinstance(module, str) and self.watch.is_project_module(module)

    def _wanted_site(self, tp: type) -> bool:
        return self.watch.is_watched(tp, {}) or roots.is_root_type(tp)

    def _stop_sites(self) -> None:
        if self._sites is not None:
            self._sites.stop()

    def _stop_tracing(self) -> int | None:
        tracing, self._tracing = self._tracing, None
        return tracing.stop() if tracing is not None else None

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
        if self._tracing is None:
            self._tracing = _Tracing.start()
        series = self._series = Series(runs=runs, warmup=warmup)
        series.samples.append(self._sample(window))
        for i in range(warmup + runs):
            yield i
            series.samples.append(self._sample(window))

    def _sample(self, window: snapshot.FrozenWindow | snapshot.FullHeapWindow) -> Sample:
        objects, by_type = window.sample()
        traced = self._tracing.current() if self._tracing is not None else None
        return Sample(objects=objects, by_type=by_type, traced_bytes=traced)

    def abort(self) -> None:
        self._stop_sites()
        self._sites = None
        self._stop_tracing()
        self._atexit.stop()
        self._atexit.clear()
        window, self._window = self._window, None
        if isinstance(window, snapshot.FrozenWindow):
            window.abort()

    def finish(self) -> Findings:
        self._stop_sites()
        self._atexit.stop()
        window, self._window = self._window, None
        if window is None:
            raise RuntimeError("LeakCheck.finish() called before start()")
        began = time.perf_counter()
        mode = window.mode
        if isinstance(window, snapshot.FrozenWindow) and window.degraded:
            mode = "full-heap (degraded: the test called the gc module)"
        elif isinstance(window, snapshot.FrozenWindow) and window.thaws:
            mode = f"frozen (thawed around {window.thaws} gc call(s) of the test)"
        no_frozen = window.reason if isinstance(window, snapshot.FullHeapWindow) else ""
        try:
            ids = window.close()
        finally:
            growth = self._stop_tracing()
        heap = Heap(
            objects_added=window.objects_added,
            rss_before=self._rss_before,
            rss_after=_rss(),
            traced_growth=growth,
            max_growth=self.options.max_growth,
        )
        root_ids = window.root_ids
        self._pool_threads = frozenset(i for i in window.pool_threads if i is not None)
        found, window.found = window.found, []
        del window
        series, self._series = self._series, None
        groups: tuple[LeakGroup, ...] = ()
        pending: list[Pending] = self._process_changes()
        proof: list[str] = []
        waited = passive = 0.0
        if ids or root_ids:
            alive, waited = _settle(found, self.options.settle, self._threads_before)
            survivors = [o for o in alive if id(o) in ids]
            started = [o for o in alive if id(o) in root_ids]
            alive.clear()
            try:
                with _threads_paused():
                    running = self._pending(started)
                    # What is still running stays in ``running`` alone. A timer that ended since
                    # the window closed is a plain object now, and held here it would keep alive
                    # what its function holds (a fixed test's cancelled timers, on a loaded
                    # machine, were reported as holding their users "from C").
                    started.clear()
                    # Repeated passive suspects are not walked again, unless the test left
                    # something running that could be what holds them this time.
                    self._skip_now = self.options.skip_tracing if not running else frozenset()
                    self._skip_all_now = not running and not self.options.explain_suspects
                    self._running_now = bool(running)
                    explaining = time.perf_counter()
                    groups = self._explain(survivors, series)
                    if not running:
                        passive = time.perf_counter() - explaining
                groups = self._drop_garbage(groups, survivors)
                groups = self._drop_passing(groups, survivors)
                pending.extend(self._judged(p, groups) for p, _ in running)
                if self.options.stop_pending:
                    proof = self._stop(running, survivors, groups)
            finally:
                survivors.clear()
                started.clear()
                running = []
        elif self.options.stop_pending:
            proof = self._process.restore_itimers()
        self._atexit.clear()
        self.findings = Findings(
            groups=groups,
            mode=mode,
            no_frozen_window=no_frozen,
            settle_seconds=waited,
            check_seconds=time.perf_counter() - began,
            passive_seconds=passive,
            heap=heap,
            cycles=series,
            pending=tuple(pending),
            proof=tuple(proof),
            traced=self._sites is not None,
        )
        if self._sites is not None:
            self._sites.clear()
            self._sites = None
        return self.findings

    def _drop_garbage(
        self, groups: tuple[LeakGroup, ...], survivors: list[object]
    ) -> tuple[LeakGroup, ...]:
        """Survivors with no root at all may be garbage that only a full collection frees.

        The windows collect the young generations only; an old cycle that became garbage during
        the test could still hold new objects. Only then is the whole heap collected.
        """
        rootless = {
            g.type
            for g in groups
            if g.kind == roots.UNKNOWN
            and g.retentions
            and g.path
            and g.retentions[0].root.startswith(("nothing that Python", "no root found"))
        }
        if not rootless:
            return groups
        # A thread that is ending (a cancelled timer, on a loaded machine) can hold what its
        # frames held from C for a moment after it left every list Python shows: the look is
        # repeated, briefly, before they are called held by nothing.
        still = self._look_again(survivors, rootless, first_pause=0.0)
        return tuple(g for g in groups if g.type not in rootless or g.type in still)

    def _judged(self, item: Pending, groups: tuple[LeakGroup, ...]) -> Pending:
        if self.options.strict or item.kind != roots.THREAD:
            return item
        holding = {r.root for g in groups for r in g.retentions}
        return item if item.description in holding else dataclasses.replace(item, passive=True)

    def _drop_passing(
        self, groups: tuple[LeakGroup, ...], survivors: list[object]
    ) -> tuple[LeakGroup, ...]:
        """Survivors held only by a running frame of a thread older than the test (a shared
        pool's worker finishing the test's work item) are looked at again, briefly: a frame
        that lets go was passing through, not leaking."""
        passing = {
            g.type for g in groups if g.retentions and all(r.busy_elsewhere for r in g.retentions)
        }
        if not passing:
            return groups
        still = self._look_again(survivors, passing, first_pause=0.01)
        return tuple(g for g in groups if g.type not in passing or g.type in still)

    def _look_again(self, survivors: list[object], names: set[str], first_pause: float) -> set[str]:
        """Let go of the survivors of these types and look them up again (a full collection
        each time), after doubling pauses within the settle time, until none is left. They are
        followed by id and type meanwhile: held here, they could not go. Returns the names of
        the types still alive; what is alive is put back into ``survivors``."""
        wanted = {id(o): type(o) for o in survivors if qualified_name(type(o)) in names}
        kept = [o for o in survivors if id(o) not in wanted]
        survivors.clear()
        survivors.extend(kept)
        kept.clear()
        deadline = time.monotonic() + self.options.settle
        pause = first_pause
        while True:
            time.sleep(pause)
            alive = snapshot.find_by_id(wanted)
            pause = max(pause * 2, 0.01)
            if not alive or time.monotonic() + pause > deadline:
                break
            wanted = {id(o): type(o) for o in alive}
            alive.clear()
        still = {qualified_name(type(o)) for o in alive}
        survivors.extend(alive)
        alive.clear()
        return still

    def _process_changes(self) -> list[Pending]:
        found = self._process.changes()
        added = self._atexit.added(self._is_project_callable)
        found.extend(Pending(roots.ATEXIT, desc) for desc in added)
        return found

    def _pending(self, started: list[object]) -> list[tuple[Pending, object]]:
        """What the test started that is really still running or scheduled."""
        ignore = (*roots.BUILTIN_IGNORED_THREADS, *self.options.ignore_threads)
        return self._pending_of(started, ignore)

    def _pending_of(
        self, started: list[object], ignore: tuple[str, ...]
    ) -> list[tuple[Pending, object]]:
        found: list[tuple[Pending, object]] = []
        for obj in started:
            if isinstance(obj, threading.Thread) and obj.ident in self.foreign_threads:
                continue
            try:
                kind = roots.pending_kind(obj, ignore)
                if kind is not None:
                    found.append((Pending(kind, describe.root(obj), self._site(obj)), obj))
            except Exception:  # a hostile subclass: it is not what the test left running
                continue
        return found

    def _stop(
        self,
        running: list[tuple[Pending, object]],
        survivors: list[object],
        groups: tuple[LeakGroup, ...],
    ) -> list[str]:
        """Cancel what can be cancelled, one at a time, and say what each freed.

        This is the proof of cause, and it also keeps one test's timers from firing into the
        next tests and a non-daemon timer chain from holding up the interpreter's exit. Each
        stopped object is dropped before the survivors are looked up again: held here, it would
        keep alive what it holds.
        """
        leaked = {g.type for g in groups}
        remaining = {id(o): name for o in survivors if (name := qualified_name(type(o))) in leaked}
        types_of = {id(o): type(o) for o in survivors if id(o) in remaining}
        survivors.clear()  # from here on the survivors are followed by id (and type) only
        # Tasks first: cancelling a task also cancels the timers of the sleep it waits in.
        running.sort(key=lambda entry: entry[0].kind != roots.TASK)
        sizes = {g.type: (g.count, g.retained_bytes) for g in groups}
        results: list[tuple[str, str, Counter[str]]] = []  # (shape, text, freed)
        callbacks: set[object] = set()  # functions of what was stopped, to find re-armed copies
        loops: list[object] = []
        for _ in range(4):  # a chain re-arms while it is stopped: a few rounds, bounded
            while running:
                item, obj = running.pop(0)
                _note_chain(obj, callbacks, loops)
                try:
                    action = roots.stop(obj, item.kind)
                except Exception as exc:
                    action = f"could not stop {item.kind}: {exc!r}"
                    item = Pending("error", action)
                finally:
                    obj = None
                if item.kind == "error" or action is None:
                    why = (
                        "threads cannot be stopped from outside"
                        if item.kind == roots.THREAD
                        else "its loop is not running"
                    )
                    text = action or f"left running ({why}): {item.description}"
                    results.append((_NUMBERS.sub("#", text), text, Counter()))
                    continue
                if remaining:
                    alive = snapshot.find_by_id({key: types_of[key] for key in remaining})
                    still = {id(o) for o in alive}
                    alive.clear()
                else:
                    still = set()
                freed = Counter(name for key, name in remaining.items() if key not in still)
                remaining = {key: name for key, name in remaining.items() if key in still}
                results.append((_NUMBERS.sub("#", action), action, freed))
            if not remaining:
                break
            running = self._rearmed(callbacks, loops)
            if not running and _await_chain_threads(callbacks, self._thread_keys_before):
                # A cancelled timer of the chain was still in its callback, which may have armed
                # the next timer after the look above: looked for too early, that one escapes
                # and ticks into the next test.
                running = self._rearmed(callbacks, loops)
            if not running:
                break
        loops.clear()
        callbacks.clear()
        lines = [_merge_result(text, n, freed, sizes) for text, n, freed in _merged(results)]
        lines.extend(self._process.restore_itimers())
        if remaining and lines:
            held = Counter(remaining.values())
            stuck = any(text.startswith(("left running", "could not")) for _, text, _ in results)
            why = "by what could not be stopped, or by" if stuck else "by"
            lines.append(
                "still alive after stopping what could be stopped: "
                + ", ".join(f"{n} x {t}" for t, n in sorted(held.items()))
                + f" (held {why} something else as well)"
            )
        return lines

    def _site(self, obj: object) -> str | None:
        return self._sites.site_of(obj) if self._sites is not None else None

    def _rearmed(self, callbacks: set[object], loops: list[object]) -> list[tuple[Pending, object]]:
        """Timers and handles that a stopped chain re-armed while the check ran.

        A Timer started after the test began, or a handle on a loop we stopped one on that calls
        the same function, is the same leak one tick later.
        """
        ignore = (*roots.BUILTIN_IGNORED_THREADS, *self.options.ignore_threads)
        candidates: list[object] = [
            t
            for t in threading.enumerate()
            if isinstance(t, threading.Timer)
            and roots.thread_key(t) not in self._thread_keys_before
        ]
        for loop in loops:
            queued = [*getattr(loop, "_scheduled", ()), *getattr(loop, "_ready", ())]
            candidates.extend(h for h in queued if _callback_function(h) in callbacks)
        return self._pending_of(candidates, ignore)

    def _explain(self, survivors: list[object], series: Series | None) -> tuple[LeakGroup, ...]:
        by_type = _by_type(survivors)
        if series is not None:
            # Under cycles, only what grew in every counted run is a leak; what appeared once
            # (a cache warmed up by the first runs) is not.
            growing = series.growing_types()
            for tp in [tp for tp in by_type if qualified_name(tp) not in growing]:
                del by_type[tp]
        if all(map(self._skipped, by_type)):
            # Nothing to walk: no roots to gather, no frames to index.
            counted = [self._untraced_group(tp, len(objs)) for tp, objs in by_type.items()]
            by_type.clear()
            return tuple(counted)
        extra: dict[int, RootInfo] = {
            **roots.signal_roots(),
            **self._atexit.roots(),
            **roots.context_roots(),
        }
        if self._extra_roots is not None:
            extra.update(self._extra_roots())
        frames = _FrameIndex(
            frozenset(self.foreign_threads), self._threads_before | self._pool_threads
        )
        # The checker's own containers refer to the survivors; the search must not stop there,
        # and the sizes must not count them as holders: each survivor is in ``survivors`` and in
        # its type's list.
        ignore = {id(survivors), id(by_type), *(id(v) for v in by_type.values())}
        self._caller_refs = dict.fromkeys(map(id, survivors), 2)
        groups: list[LeakGroup] = []
        walked: dict[type, list[Retention]] = {}
        try:
            walked = self._walk(by_type, extra, ignore, frames)
            # No loop variable may name a survivor after the search: indexing keeps none.
            for tp in list(by_type):
                groups.extend(self._explain_type(tp, by_type[tp], walked.get(tp, []), series))
        finally:
            frames.close()
            by_type.clear()
            walked.clear()
        groups.sort(key=lambda g: (g.verdict != "leak", -(g.retained_bytes or 0), -g.count, g.type))
        return tuple(groups)

    def _skipped(self, tp: type) -> bool:
        """A survivor type that is only counted: it could only be a suspect, never a leak, and
        it was explained before or the time for explaining suspects is spent."""
        if self.options.strict or self.watch.is_named(tp):
            return False
        return self._skip_all_now or qualified_name(tp) in self._skip_now

    def _untraced_group(self, tp: type, count: int) -> LeakGroup:
        """A suspect counted, not walked: walking costs heap passes, and a large suite whose
        every test leaves the same cached object would pay them thousands of times."""
        why = NOT_WALKED_REPEAT if qualified_name(tp) in self._skip_now else NOT_WALKED_BUDGET
        return LeakGroup(
            type=qualified_name(tp),
            count=count,
            kind=roots.UNKNOWN,
            verdict="suspect",
            retentions=(Retention(kind=roots.UNKNOWN, root=why, path=()),),
            untraced=count,
        )

    def _walk(
        self,
        by_type: Mapping[type, list[object]],
        extra: Mapping[int, RootInfo],
        ignore: set[int],
        frames: _FrameIndex,
    ) -> dict[type, list[Retention]]:
        """Paths for a few survivors of each type, all found in one walk."""
        limit = self.options.max_traced_per_type
        targets = [o for tp, objs in by_type.items() if not self._skipped(tp) for o in objs[:limit]]
        if not targets:
            return {}
        rets = find_paths(
            targets,
            extra_roots=extra,
            ignore=ignore,
            limits=self.options.limits,
            frames=frames,
            graph=self.options.graphs,
        )
        walked: dict[type, list[Retention]] = {}
        try:
            for n, ret in enumerate(rets):
                if ret.kind == roots.FIXTURE and self._running_now:
                    # Held by a wider fixture (or pytest) here; but is it held by anything else,
                    # a timer say? Look again with those holders out of the way (only when the
                    # test left something running: otherwise there is no timer to find).
                    owned = {key for key, info in extra.items() if info.kind == roots.FIXTURE}
                    other = find_path(
                        targets[n],
                        extra_roots={k: v for k, v in extra.items() if k not in owned},
                        ignore=ignore | owned | {id(targets)},
                        limits=self.options.limits,
                        frames=frames,
                        graph=self.options.graphs,
                    )
                    if other.kind in roots.ACTIVE_KINDS:  # a passive holder: the same one
                        ret = other
                walked.setdefault(type(targets[n]), []).append(ret)
        finally:
            targets.clear()
        return walked

    def _explain_type(
        self,
        tp: type,
        objs: list[object],
        rets: list[Retention],
        series: Series | None,
    ) -> Iterable[LeakGroup]:
        traced: dict[str, list[Retention]] = {}
        limit = self.options.max_traced_per_type
        if self._skipped(tp):
            yield self._untraced_group(tp, len(objs))
            return
        created = next((site for o in objs if (site := self._site(o)) is not None), None)
        for ret in rets:
            traced.setdefault(ret.kind, []).append(ret)
        untraced = max(0, len(objs) - limit)
        named = self.watch.is_named(tp)
        name = qualified_name(tp)
        retained = (
            retained_size(objs, caller_refs=self._caller_refs) if self.options.sizes else None
        )
        per_run = tuple(series.growing_types().get(name, ())) if series is not None else ()
        first = True
        for kind, rets in traced.items():
            verdict = judge(kind, strict=self.options.strict, named=named)
            if verdict is None:
                continue
            # Still in use by a thread older than the test (a shared pool's worker running the
            # test's job) after the second look: in flight, not forgotten. Leniently, a suspect;
            # a marked test fails on it.
            lenient = not (self.options.strict or named)
            if verdict == "leak" and lenient and all(r.busy_elsewhere for r in rets):
                verdict = "suspect"
            extra_count = untraced if first else 0
            first = False
            yield LeakGroup(
                type=name,
                count=len(rets) + extra_count,
                kind=kind,
                verdict=verdict,
                retentions=tuple(_distinct(rets)),
                untraced=extra_count,
                retained_bytes=retained.bytes if retained is not None else None,
                retained_complete=retained.complete if retained is not None else True,
                per_run=per_run,
                created=created,
            )

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


_NUMBERS = re.compile(r"\d+|\['[^']*'\]")


@dataclass
class _Tracing:
    """tracemalloc around the block, for the bytes it allocated and kept.

    Started only when a test asks for a heap limit or for cycles: tracing slows allocation.
    If the tested code already traces, its tracing is used and left running.
    """

    base: int
    owned: bool

    @classmethod
    def start(cls) -> _Tracing:
        owned = not tracemalloc.is_tracing()
        if owned:
            tracemalloc.start(1)
        return cls(base=tracemalloc.get_traced_memory()[0], owned=owned)

    def current(self) -> int:
        return tracemalloc.get_traced_memory()[0] - self.base if tracemalloc.is_tracing() else 0

    def stop(self) -> int:
        growth = self.current()
        if self.owned:
            tracemalloc.stop()
        return growth


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int | None:
    """Resident memory from /proc (O(1), unlike anything that counts the heap); None elsewhere."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        return None
    try:
        return int(os.read(fd, 200).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)


def _callback_function(obj: object) -> object:
    """The plain function behind a timer's or handle's callback (bound methods unwrapped)."""
    func = getattr(obj, "function", None) if isinstance(obj, threading.Timer) else None
    if isinstance(obj, asyncio.Handle):
        func = getattr(obj, "_callback", None)
    return getattr(func, "__func__", func)


def _await_chain_threads(
    callbacks: set[object],
    before: frozenset[roots.ThreadKey],
    timeout: float = 2.0,
) -> bool:
    """Wait for the timer threads of a stopped chain that are still alive to end.

    A cancelled timer that was already firing runs its callback to the end, and a repeating
    timer's callback arms the next timer; looked for too early, that one escapes, and ticks on
    into the next test, which is then blamed for it. Returns whether there was one to wait for.
    """
    deadline = time.monotonic() + timeout
    waited = False
    for thread in threading.enumerate():
        # Cancelled (or done) but alive: still inside its callback. A timer still waiting to
        # fire is not waited for: the caller stops it.
        if (
            isinstance(thread, threading.Timer)
            and thread.finished.is_set()
            and roots.thread_key(thread) not in before
            and thread is not threading.current_thread()
            and _in(callbacks, _callback_function(thread))
        ):
            waited = True
            thread.join(max(0.0, deadline - time.monotonic()))
    return waited


def _in(items: set[object], item: object) -> bool:
    try:
        return item in items
    except TypeError:  # an unhashable callable
        return False


def _note_chain(obj: object, callbacks: set[object], loops: list[object]) -> None:
    func = _callback_function(obj)
    if func is not None:
        with contextlib.suppress(TypeError):  # an unhashable callable
            callbacks.add(func)
    loop = getattr(obj, "_loop", None)
    if (
        isinstance(obj, asyncio.Handle)
        and loop is not None
        and all(loop is not seen for seen in loops)
    ):
        loops.append(loop)


def _merged(
    results: list[tuple[str, str, Counter[str]]],
) -> list[tuple[str, int, Counter[str]]]:
    """One line per kind of action: five timers of one chain read as one."""
    merged: dict[str, tuple[str, int, Counter[str]]] = {}
    for shape, text, freed in results:
        first, n, total = merged.get(shape, (text, 0, Counter()))
        merged[shape] = (first, n + 1, total + freed)
    return list(merged.values())


def _merge_result(
    text: str, n: int, freed: Counter[str], sizes: Mapping[str, tuple[int, int | None]]
) -> str:
    times = f" (and {n - 1} more like it)" if n > 1 else ""
    if text.startswith(("left running", "could not")):
        return text + times
    if not freed:
        return f"{text}{times} freed nothing that leaked"
    return f"confirmed: {text}{times} freed {_freed_text(freed, sizes)}"


def _freed_text(freed: Counter[str], sizes: Mapping[str, tuple[int, int | None]]) -> str:
    parts = []
    for name, n in sorted(freed.items()):
        count, size = sizes.get(name, (0, None))
        whole = size is not None and n == count
        parts.append(f"{n} x {name}" + (f" ({_human(size)})" if whole and size else ""))
    return ", ".join(parts)


def _human(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _by_type(objs: list[object]) -> dict[type, list[object]]:
    grouped: dict[type, list[object]] = {}
    for obj in objs:
        grouped.setdefault(type(obj), []).append(obj)
    return grouped


def _distinct(rets: list[Retention]) -> list[Retention]:
    """Paths that differ only in indexes, ids or line numbers are the same path."""
    seen: set[tuple[str, ...]] = set()
    out: list[Retention] = []
    for r in rets:
        shape = tuple(_NUMBERS.sub("#", step) for step in r.path)
        if shape not in seen:
            seen.add(shape)
            out.append(r)
    return out


def _winding_down() -> list[threading.Thread]:
    """Timers that were cancelled or fired but whose thread has not exited yet."""
    return [
        t
        for t in threading.enumerate()
        if isinstance(t, threading.Timer) and t.finished.is_set() and t.is_alive()
    ]


WINDING_DOWN_SECONDS = 2.0


def _thread_idents() -> frozenset[int]:
    """Every thread that still has an interpreter state.

    Not ``threading.enumerate()``: a thread leaves it a little before its last frames let go of
    their locals, and those locals may be what keeps a survivor alive for that moment.
    """
    return frozenset(sys._current_frames())


def _settle(
    found: list[object], budget: float, threads_before: frozenset[int]
) -> tuple[list[object], float]:
    """Re-check survivors while something visibly stops, within a bounded time.

    A cancelled Timer's thread needs a moment to exit, and a thread that the test told to stop
    may be on its way out; a thread leaves ``threading.enumerate()`` a little before its frames
    let go of their locals. So the survivors are looked up again, after a short pause, while
    threads that the test started are alive or exiting, or when the set of threads changed
    while they were looked up (a thread that exits during a collection leaves its garbage for
    the next one). While a thread the test started still runs, it may be finishing its work:
    the pauses double up to the budget. Without one, a real leak costs one short pause.
    """
    pause = 0.002
    threads = _thread_idents()
    alive = list(found)  # what the window found, without a second walk over the heap
    found.clear()
    began = time.monotonic()  # what is reported is the waiting, not the first look-up
    while alive and time.monotonic() - began < budget:
        now = _thread_idents()
        if now == threads and not (now - threads_before):
            break  # nothing the test started is running, and nothing changed: nothing will
        remaining = max(0.0, budget - (time.monotonic() - began))
        # A cancelled or fired Timer is certain to exit; on a loaded machine that can take longer
        # than the budget, and giving up early would report a fixed test as leaking.
        joined = _join_winding_down(max(remaining, WINDING_DOWN_SECONDS))
        time.sleep(min(pause, remaining))
        pause *= 2
        count = len(alive)
        ids = {id(o): type(o) for o in alive}
        alive.clear()
        threads = _thread_idents()
        alive = snapshot.find_by_id(ids)
        progress = len(alive) < count or joined or threads != now or _exiting(threads)
        running = bool(_thread_idents() - threads_before - _waiting_timers())
        if not progress and not running and _thread_idents() == threads:
            break
    return alive, time.monotonic() - began


_TIMER_RUN = threading.Timer.run.__code__
_EVENT_WAIT = threading.Event.wait.__code__


def _waiting_timers() -> set[int]:
    """Timers still waiting for their interval: not about to finish anything, not worth waiting
    for (a timer that is running its function is)."""
    waiting: set[int] = set()
    frames = sys._current_frames()
    try:
        for ident, frame in frames.items():
            inner: types.FrameType | None = None
            outer: types.FrameType | None = frame
            while outer is not None and outer.f_code is not _TIMER_RUN:
                inner, outer = outer, outer.f_back
            if outer is not None and inner is not None and _called_from(inner, outer):
                waiting.add(ident)
            inner = outer = None
    finally:
        frames.clear()
    return waiting


def _called_from(inner: types.FrameType, outer: types.FrameType) -> bool:
    """``inner`` is the frame of ``Event.wait`` that ``outer`` (a ``Timer.run``) called."""
    return inner.f_code is _EVENT_WAIT and inner.f_back is outer


def _exiting(idents: frozenset[int]) -> bool:
    """Threads that already left threading's table but whose frames are still unwinding."""
    return bool(idents - {t.ident for t in threading.enumerate()})


def _join_winding_down(timeout: float) -> bool:
    """Wait for timers that were cancelled or fired but whose thread has not exited yet.

    The Timer objects are dropped before returning: held across the next collection, they
    would keep their callbacks' owners alive.
    """
    stopping = _winding_down()
    for t in stopping:
        t.join(timeout)
    found = bool(stopping)
    stopping.clear()
    return found


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
