"""What a test started and left running: timers, threads, handles, tasks, ``sched`` events, and
the process-wide things it changed (interval timers, signal handlers, ``atexit`` registrations).

``kinds`` says what kind of holder keeps a survivor alive; this module says which of the roots a
test made are still pending when it ends. ``stopping`` then cancels them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures.thread
import contextlib
import fnmatch
import gc
import importlib
import logging
import sched
import signal
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import describe, provenance
from .findings import Pending
from .kinds import (
    ATEXIT,
    HANDLE,
    ITIMER,
    LOGGING_HANDLER,
    SCHED_EVENT,
    SIGNAL_HANDLER,
    TASK,
    THREAD,
    TIMER,
    TIMER_HANDLE,
    RootInfo,
)
from .sites import Site, caller_site, where
from .wrappers import transparent

_PyTask = getattr(asyncio.tasks, "_PyTask", asyncio.Task)
_pool_worker = getattr(concurrent.futures.thread, "_worker", None)
_ROOT_TYPES: tuple[type, ...] = (
    threading.Thread,
    asyncio.Handle,
    asyncio.Task,
    _PyTask,
    sched.Event,
    logging.Handler,
)

# Threads that the standard library starts lazily and keeps on purpose; a test that happens to be
# the first to need one did not leak it.
BUILTIN_IGNORED_THREADS = (
    "asyncio_*",  # the default executor of an event loop (loop.run_in_executor(None, ...))
    "ExecutorManagerThread",  # concurrent.futures.ProcessPoolExecutor's manager
    "QueueFeederThread",  # multiprocessing.Queue's feeder
    # trio's process-wide thread cache (trio.to_thread) keeps idle workers for 10 s on purpose.
    "Trio thread *",
)

_WAKE_SLEEPER = getattr(asyncio.futures, "_set_result_unless_cancelled", None)

ThreadKey = tuple[int | None, int | None]


def thread_key(thread: threading.Thread) -> ThreadKey:
    """A thread's identity over time: an ident alone is reused by the next thread as soon as one
    ends (a re-armed timer often gets it); with the OS thread id, not that soon."""
    return thread.ident, getattr(thread, "native_id", None)


def pool_of(thread: object) -> object | None:
    """The ThreadPoolExecutor a worker thread serves (its first argument is a weak reference
    to it, from Python 3.10 to 3.14), or None."""
    if getattr(thread, "_target", None) is not _pool_worker:
        return None
    args = getattr(thread, "_args", ())
    ref = args[0] if isinstance(args, tuple) and args else None
    return ref() if isinstance(ref, weakref.ref) else None


def is_root_type(tp: type) -> bool:
    try:
        return issubclass(tp, _ROOT_TYPES)
    except TypeError:
        return False


def maybe_pending(obj: object) -> bool:
    """A cheap first look (run on every young root-type object at the end of each test)."""
    try:
        if isinstance(obj, threading.Thread):
            return obj.is_alive()
        if isinstance(obj, asyncio.Handle):
            return not obj.cancelled()
        if isinstance(obj, asyncio.Future):
            return not obj.done()
        if isinstance(obj, logging.Handler):
            return _attached(obj)
        return isinstance(obj, sched.Event)
    except Exception:  # a hostile subclass: look at it on the slow path
        return True


def queued_event(event: sched.Event) -> sched.scheduler | None:
    """The scheduler whose queue holds this event (a referrer search: leak path only)."""
    for holder in gc.get_referrers(event):
        if type(holder) is list:
            for owner in _owners(holder):
                if isinstance(owner, sched.scheduler) and getattr(owner, "_queue", None) is holder:
                    return owner
    return None


def _owners(value: object) -> list[object]:
    """Objects that refer to ``value`` directly or through their ``__dict__``.

    An instance's attributes live in the instance itself until something reads its
    ``__dict__``; from then on, the dict is what refers to them.
    """
    found = []
    for holder in gc.get_referrers(value):
        found.append(holder)
        if type(holder) is dict:
            found.extend(o for o in gc.get_referrers(holder) if dict_of(o) is holder)
    return found


def dict_of(obj: object) -> object:
    try:
        return object.__getattribute__(obj, "__dict__")
    except Exception:
        return None


def _attached(handler: logging.Handler) -> bool:
    """Whether a logger holds this handler (the root logger, or any named one)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return any(handler in getattr(logger, "handlers", ()) for logger in loggers)


def _loop_alive(loop: object) -> bool:
    closed = getattr(loop, "is_closed", None)
    return callable(closed) and not closed()


def pending_kind(obj: object, ignore_threads: Sequence[str]) -> str | None:
    """The kind of a started-and-left object that is really still pending, or None."""
    if isinstance(obj, threading.Timer):
        return TIMER if obj.is_alive() and not obj.finished.is_set() else None
    if isinstance(obj, threading.Thread):
        name = obj.name
        ignored = any(fnmatch.fnmatchcase(name, p) for p in ignore_threads)
        return THREAD if obj.is_alive() and not ignored else None
    if isinstance(obj, asyncio.TimerHandle):
        loop = getattr(obj, "_loop", None)
        scheduled = getattr(obj, "_scheduled", True)
        if getattr(obj, "_callback", None) is _WAKE_SLEEPER:
            return None  # the inside of an asyncio.sleep(): its task is what is left running
        return TIMER_HANDLE if not obj.cancelled() and scheduled and _loop_alive(loop) else None
    if isinstance(obj, asyncio.Handle):
        loop = getattr(obj, "_loop", None)
        ready = getattr(loop, "_ready", ())
        return HANDLE if not obj.cancelled() and _loop_alive(loop) and obj in ready else None
    if isinstance(obj, asyncio.Task):
        # On a closed loop too: it never finishes then, and whatever still holds it (tornado's
        # IOLoop._pending_tasks does) keeps its coroutine and all it refers to for good.
        return TASK if not obj.done() else None
    if isinstance(obj, sched.Event):
        return SCHED_EVENT if queued_event(obj) is not None else None
    if isinstance(obj, logging.Handler):
        return LOGGING_HANDLER if _attached(obj) else None
    return None


def loops_of(roots: Iterable[object]) -> list[asyncio.AbstractEventLoop]:
    """The event loops that these handles and tasks are on, each once."""
    loops: list[asyncio.AbstractEventLoop] = []
    for obj in roots:
        loop = getattr(obj, "_loop", None)
        if isinstance(loop, asyncio.AbstractEventLoop) and all(loop is not seen for seen in loops):
            loops.append(loop)
    return loops


def made_under(
    tag: int,
    loops: Iterable[asyncio.AbstractEventLoop],
    known: set[int],
    threads_before: frozenset[ThreadKey],
    not_threads: frozenset[int] = frozenset(),
) -> list[object]:
    """Timers, threads, and handles and tasks on ``loops``, made under ``tag`` and not ``known``
    (ids); not threads that ran before the check (another plugin's, started for the test before
    its window), nor threads whose ident is in ``not_threads`` (the workers of an older pool).

    What a chain armed after the window closed: its next timer, its next handle. Pending or not:
    ``left_running`` tells.
    """
    found: list[object] = [
        t
        for t in threading.enumerate()
        if id(t) not in known
        and t.ident not in not_threads
        and thread_key(t) not in threads_before
        and provenance.tag_of(t) == tag
    ]
    for loop in loops:
        queued = [*getattr(loop, "_scheduled", ()), *getattr(loop, "_ready", ())]
        # RuntimeError: the loop's tasks changed while they were listed; the next look sees them.
        with contextlib.suppress(RuntimeError):
            queued.extend(asyncio.all_tasks(loop))
        found.extend(h for h in queued if id(h) not in known and provenance.tag_of(h) == tag)
        queued.clear()
    return found


def left_running(
    started: Iterable[object],
    *,
    ignore_threads: Sequence[str],
    foreign_threads: frozenset[int],
    site_of: Callable[[object], str | None],
) -> list[tuple[Pending, object]]:
    """Of the roots a test made, those really still pending, each with what describes it.

    Threads that something outside the test owns (a wider-scoped fixture's) are not its.
    """
    ignore = (*BUILTIN_IGNORED_THREADS, *ignore_threads)
    found: list[tuple[Pending, object]] = []
    for obj in started:
        if isinstance(obj, threading.Thread) and obj.ident in foreign_threads:
            continue
        try:
            kind = pending_kind(obj, ignore)
            if kind is not None:
                found.append((Pending(kind, describe.root(obj), site_of(obj)), obj))
        except Exception:  # a hostile subclass: it is not what the test left running
            continue
    return found


class ProcessState:
    """Interval timers and signal handlers before a test, to tell what it changed."""

    def __init__(
        self,
        itimers: dict[str, tuple[float, float]] | None = None,
        handlers_: dict[int, object] | None = None,
    ) -> None:
        self.itimers = _itimers() if itimers is None else itimers
        self.handlers = handlers() if handlers_ is None else handlers_

    def changes(self) -> list[Pending]:
        found = [
            Pending(ITIMER, f"signal.setitimer({name}) left armed: {value}")
            for name, value in _itimers().items()
            if self._armed_by_block(name, value)
        ]
        for sig, handler in handlers().items():
            if handler is not self.handlers.get(sig):
                name = signal.Signals(sig).name
                site = provenance.signal_site(sig, handler)
                found.append(
                    Pending(
                        SIGNAL_HANDLER,
                        f"{name} handler changed to {describe.short(handler)}",
                        where(site) if site is not None else None,
                    )
                )
        return found

    def _armed_by_block(self, name: str, value: tuple[float, float]) -> bool:
        # The remaining time of a timer armed before the block counts down by itself: only a
        # timer that was off before and is on now is the block's (pytest-timeout's alarm is not).
        return value != (0.0, 0.0) and self.itimers.get(name, (0.0, 0.0)) == (0.0, 0.0)

    def restore_itimers(self) -> list[str]:
        done = []
        for name, value in _itimers().items():
            if self._armed_by_block(name, value):
                signal.setitimer(getattr(signal, name), 0)
                done.append(f"disarming signal.setitimer({name})")
        return done


_ITIMERS = tuple(
    (name, getattr(signal, name))
    for name in ("ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF")
    if hasattr(signal, name)
)


def _itimers() -> dict[str, tuple[float, float]]:
    return {name: signal.getitimer(which) for name, which in _ITIMERS}


# Plain numbers and the C function: signal.getsignal() converts every answer to an enum, which
# made this the most expensive step of a clean check.
_getsignal: Callable[[int], object] = importlib.import_module("_signal").getsignal


def _gettable(sig: int) -> bool:
    try:
        _getsignal(sig)
    except (ValueError, OSError):
        return False
    return True


_SIGNALS = tuple(int(s) for s in signal.valid_signals() if _gettable(int(s)))


def handlers() -> dict[int, object]:
    """Every signal's current handler, by number."""
    return dict(zip(_SIGNALS, map(_getsignal, _SIGNALS), strict=True))


# -- atexit: its table lives in C, where no referrer points at it ------------------------------

_recording: AtexitRecorder | None = None


def _note_then_register(real: Callable[..., Any], func: Any, *args: Any, **kwargs: Any) -> Any:
    recorder = _recording
    if recorder is not None:
        recorder.note(func, caller_site(skip=1))
    return real(func, *args, **kwargs)


def _register_wrapper(real: Callable[..., Any]) -> Callable[..., Any]:
    return transparent(_note_then_register, real)


_REAL_REGISTER: Callable[..., Any] = atexit.register
_REGISTER = _register_wrapper(_REAL_REGISTER)


class AtexitRecorder:
    """Notes what a block registers with ``atexit``, whose table lives in C and has no referrers.

    ``atexit.register`` is wrapped for the duration of a check; the wrapper registers exactly what
    the caller passed and returns what ``atexit.register`` returns. Only weak references (or ids,
    for callables that refuse them) are kept, so an unregistered callable is not kept alive.
    """

    def __init__(self) -> None:
        self._refs: list[weakref.ref[Any] | int] = []
        self._sites: list[Site | None] = []  # where each was registered
        self._real: Callable[..., Any] | None = None
        self._count_before = 0

    def added(self, relevant: Callable[[object], bool]) -> list[Pending]:
        """Registrations the block added and did not take back, of callables ``relevant`` keeps."""
        count = getattr(atexit, "_ncallbacks", None)
        now = count() if callable(count) else None
        if now is not None and now <= self._count_before:
            return []
        found = []
        for ref, site in zip(self._refs, self._sites, strict=True):
            func = ref() if isinstance(ref, weakref.ref) else None
            if func is not None and relevant(func):
                where_ = where(site) if site is not None else None
                found.append(
                    Pending(ATEXIT, f"atexit.register({describe.callable_name(func)})", where_)
                )
            del func
        return found

    def start(self) -> None:
        global _recording
        count = getattr(atexit, "_ncallbacks", None)
        self._count_before = count() if callable(count) else 0
        real: Callable[..., Any] = atexit.register
        self._real = real
        _recording = self
        # The wrapper is made once (making one per test was a measurable cost); a register
        # that someone else replaced gets one of its own.
        wrapper = _REGISTER if real is _REAL_REGISTER else _register_wrapper(real)
        setattr(atexit, "register", wrapper)  # noqa: B010 - typeshed's signature is generic

    def note(self, func: object, site: Site | None = None) -> None:
        try:
            self._refs.append(weakref.ref(func))
        except TypeError:
            self._refs.append(id(func))
        self._sites.append(site)

    def stop(self) -> None:
        global _recording
        if _recording is self:
            _recording = None
        if self._real is not None and getattr(atexit.register, "__leakcheck_wrapper__", False):
            setattr(atexit, "register", self._real)  # noqa: B010
        self._real = None

    def roots(self) -> dict[int, RootInfo]:
        found: dict[int, RootInfo] = {}
        for ref in self._refs:
            func = ref() if isinstance(ref, weakref.ref) else None
            key = id(func) if func is not None else ref if isinstance(ref, int) else None
            if key is not None:
                name = describe.callable_name(func) if func is not None else "a callable"
                found[key] = RootInfo(ATEXIT, f"atexit registration of {name}")
            del func
        return found

    def clear(self) -> None:
        self._refs.clear()
        self._sites.clear()
