"""The pure core: watch a block of code, then say which watched objects it left alive and why.

Nothing here imports pytest. ``plugin`` is a thin adapter over :class:`LeakCheck`. The steps of a
check live in their own modules: ``snapshot`` (the window), ``investigation`` (the steps after
it), which uses ``settle`` (waiting for what is stopping), ``origins`` (whose is it), ``running``
(what was left running), ``explain`` (what holds the survivors), ``stopping`` (cancelling, and
what that freed); ``expectations`` (objects a test named), ``findings`` (the results and their
verdicts).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType

from . import frozen, kinds, provenance, running, snapshot
from .cycles import Sample, Series
from .expectations import Expectation, expect, with_expected
from .findings import Findings, Heap, Proof
from .investigation import Investigation
from .kinds import RootInfo
from .memory import rss
from .options import Options
from .recording import Recording
from .settle import thread_idents, workers_between_jobs
from .sites import InitMonitor, Site, caller_site
from .watch import WatchFilter

ExtraRoots = Mapping[int, RootInfo] | Callable[[], Mapping[int, RootInfo]]


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
        self._expected: list[Expectation] = []

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

    def expect_released(self, obj: object, why: str = "", *, at: Site | None = None) -> None:
        """Fail the check if ``obj`` is still alive when it ends, whatever its strictness.

        Raises ``NotWeaklyReferable`` for an object that refuses weak references."""
        self.expect(expect(obj, why, at=at if at is not None else caller_site(skip=1, depth=4)))

    @property
    def started(self) -> bool:
        return self._window is not None

    def expect(self, expectation: Expectation) -> None:
        if self._window is None:
            raise RuntimeError("LeakCheck.expect_released() needs a started check")
        self._expected.append(expectation)

    def abort(self) -> None:
        """End the check without judging anything (the block raised, or the plugin failed)."""
        self._expected.clear()
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
        # Before the window's collection: a thread the test started that ends after it may have
        # held what the window finds alive. Not a pool worker between two jobs: it holds
        # nothing, and the workers of a closed loop's default executor end this way by the
        # hundred on tornado's suite. Most tests start no thread: no frames are read then.
        threads_found = thread_idents() - recording.threads_before
        if threads_found:
            threads_found -= workers_between_jobs()
        try:
            result = window.close()
        finally:
            growth = recording.stop_tracing()
        del window
        heap = self._heap(result.objects_added, growth)
        series, self._series = self._series, None
        pending = recording.changes()
        steps = Investigation(
            self.watch,
            self.options,
            recording,
            tag=self._tag,
            foreign_threads=frozenset(self.foreign_threads),
            roots=self._roots,
            expected=self._expected,
        )
        expected = steps.unreleased(result)
        if result.survivor_ids or result.root_ids or steps.leftovers_waiting():
            found = steps.run(
                result,
                series,
                registered=bool(pending),
                expected=expected,
                threads_found=threads_found,
            )
        else:
            found = Findings(stopped=Proof(disarmed=steps.disarm()))
        found = with_expected(found, expected)
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

    def _roots(self) -> dict[int, RootInfo]:
        """Holders the search stops at beyond what it finds by itself."""
        extra = self._extra_roots
        return {
            **kinds.signal_roots(running.handlers()),
            **self._recording.roots(),
            **kinds.context_roots(),
            **(extra() if callable(extra) else extra),
        }

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
