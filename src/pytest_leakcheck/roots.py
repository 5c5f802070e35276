"""What kind of root holds a survivor: the report's vocabulary, and one small predicate per kind.

The search in ``retention`` walks from a survivor back to something that lives on by itself (a
module, a class, a running thread's frame, a handler the interpreter keeps in C). The *kind* shown
to the user is then the holder nearest to the survivor that explains why it is still alive: for the
seed's leak that is the ``threading.Timer`` on the path, not the ``threading`` module at its top.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures.thread
import contextlib
import contextvars
import fnmatch
import gc
import importlib
import logging
import sched
import signal
import threading
import types
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import describe
from .wrappers import transparent

TIMER = "threading.Timer"
THREAD = "threading.Thread"
TIMER_HANDLE = "asyncio.TimerHandle"
HANDLE = "asyncio.Handle"
TASK = "asyncio.Task"
SCHED_EVENT = "sched.Event"
SIGNAL_HANDLER = "signal handler"
ATEXIT = "atexit"
LOGGING_HANDLER = "logging handler"
FUNCTOOLS_CACHE = "functools cache"
MODULE_GLOBAL = "module global"
CLASS_ATTRIBUTE = "class attribute"
CONTEXT_VARIABLE = "context variable"
UNKNOWN = "unknown"
# Not a user-facing verdict: objects a wider-scoped pytest fixture holds belong to that fixture.
FIXTURE = "fixture"

KINDS = (
    TIMER,
    THREAD,
    TIMER_HANDLE,
    HANDLE,
    TASK,
    SCHED_EVENT,
    SIGNAL_HANDLER,
    ATEXIT,
    LOGGING_HANDLER,
    FUNCTOOLS_CACHE,
    MODULE_GLOBAL,
    CLASS_ATTRIBUTE,
    CONTEXT_VARIABLE,
    UNKNOWN,
)

# Kinds that keep something alive because it is still running or scheduled: a leak even when the
# test is checked only because of --leakcheck.
ACTIVE_KINDS = frozenset(
    {
        TIMER,
        THREAD,
        TIMER_HANDLE,
        HANDLE,
        TASK,
        SCHED_EVENT,
        SIGNAL_HANDLER,
        ATEXIT,
        LOGGING_HANDLER,
    }
)

HINTS = {
    TIMER: "cancel the timer when its owner goes away (timer.cancel(), then timer.join())",
    THREAD: "stop the thread when its owner goes away (set its stop event, then thread.join())",
    TIMER_HANDLE: "keep the handle from loop.call_later()/call_at() and call handle.cancel()",
    HANDLE: "keep the handle from loop.call_soon() and call handle.cancel(), or run the loop",
    TASK: "cancel the task (task.cancel(), then await it) when its owner goes away",
    SCHED_EVENT: "cancel the event with scheduler.cancel(event) when its owner goes away",
    SIGNAL_HANDLER: "restore the previous handler with signal.signal(sig, old_handler)",
    ATEXIT: "call atexit.unregister(func) when the object is done",
    LOGGING_HANDLER: "remove the handler (logger.removeHandler(h)) and close it",
    FUNCTOOLS_CACHE: "do not cache on methods or objects; clear the cache (f.cache_clear())",
    MODULE_GLOBAL: "remove the object from the module-level container when it is done",
    CLASS_ATTRIBUTE: "remove the object from the class-level container when it is done",
    CONTEXT_VARIABLE: "reset the variable when done (var.reset(token)), or set it in a copied "
    "context (contextvars.copy_context().run(...))",
    UNKNOWN: "nothing in Python holds it: look for C extensions or reference-count bugs",
}


@dataclass(frozen=True)
class RootInfo:
    """A holder that the search treats as a starting point, known before the walk begins."""

    kind: str
    description: str
    # A frame of a thread older than the check (a shared pool's worker): what it holds now it
    # may be about to let go of, so the checker looks again before calling it a leak.
    busy_elsewhere: bool = False


def _timer_pending(obj: object) -> bool:
    # A Timer that is running its function is still the holder; one that ended is a plain object.
    return isinstance(obj, threading.Timer) and (obj.is_alive() or not obj.finished.is_set())


def _thread_running(obj: object) -> bool:
    # Threads that ended are plain objects; one not started yet will run, so it holds its target.
    if not isinstance(obj, threading.Thread) or isinstance(obj, threading.Timer):
        return False
    started = getattr(obj, "_started", None)  # no public way to tell "not started yet"
    if started is not None and not started.is_set():
        return True
    return obj.is_alive()


def _handle_pending(obj: object) -> bool:
    return isinstance(obj, asyncio.Handle) and not obj.cancelled()


def _task_pending(obj: object) -> bool:
    return isinstance(obj, asyncio.Task) and not obj.done()


def _lru_cache(obj: object) -> bool:
    return type(obj).__name__ == "_lru_cache_wrapper" and type(obj).__module__ == "functools"


# Most specific first; the first holder on the path (from the survivor outwards) that matches wins.
_PATH_PREDICATES: tuple[tuple[str, Callable[[object], bool]], ...] = (
    (TIMER, _timer_pending),
    (THREAD, _thread_running),
    (TIMER_HANDLE, lambda o: isinstance(o, asyncio.TimerHandle) and _handle_pending(o)),
    (HANDLE, _handle_pending),
    (TASK, _task_pending),
    (SCHED_EVENT, lambda o: isinstance(o, sched.Event)),
    (LOGGING_HANDLER, lambda o: isinstance(o, logging.Handler)),
    (FUNCTOOLS_CACHE, _lru_cache),
)


def classify(path: Sequence[object], root: RootInfo | None, top: object) -> tuple[str, str]:
    """Return (kind, description) for a path listed from the top holder down to the survivor."""
    for obj in reversed(path[:-1]):
        for kind, matches in _PATH_PREDICATES:
            try:
                hit = matches(obj)
            except Exception:  # a hostile subclass must not break the report
                hit = False
            if hit:
                return kind, describe.root(obj)
    if root is not None:
        return root.kind, root.description
    if isinstance(top, types.ModuleType):
        return MODULE_GLOBAL, f"module {describe.safe_name(top)}"
    if isinstance(top, type):
        return CLASS_ATTRIBUTE, f"class {describe.type_name(top)}"
    return UNKNOWN, describe.short(top)


def context_roots() -> dict[int, RootInfo]:
    """The context variables of the checking thread's current context.

    The thread state holds its context in C, where no referrer points at it; a copy of the
    context shares its table of variables, which the walk then recognises.
    """
    found: dict[int, RootInfo] = {}
    context = contextvars.copy_context()
    for table in gc.get_referents(context):
        if type(table).__name__ == "hamt":
            found[id(table)] = RootInfo(
                CONTEXT_VARIABLE,
                f"a context variable of thread {threading.current_thread().name!r}'s context",
            )
    del context
    return found


def signal_roots() -> dict[int, RootInfo]:
    """Handlers the interpreter keeps in C, where no referrer points at them."""
    found: dict[int, RootInfo] = {}
    for sig, handler in _handlers().items():
        if callable(handler) and not isinstance(handler, int):
            name = signal.Signals(sig).name
            found[id(handler)] = RootInfo(
                SIGNAL_HANDLER, f"{name} handler {describe.short(handler)}"
            )
    return found


_recording: AtexitRecorder | None = None


def _note_then_register(real: Callable[..., Any], func: Any, *args: Any, **kwargs: Any) -> Any:
    recorder = _recording
    if recorder is not None:
        recorder.note(func)
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
        self._real: Callable[..., Any] | None = None
        self._count_before = 0

    def added(self, relevant: Callable[[object], bool]) -> list[str]:
        """Registrations the block added and did not take back, of callables ``relevant`` keeps."""
        count = getattr(atexit, "_ncallbacks", None)
        now = count() if callable(count) else None
        if now is not None and now <= self._count_before:
            return []
        found = []
        for ref in self._refs:
            func = ref() if isinstance(ref, weakref.ref) else None
            if func is not None and relevant(func):
                found.append(describe.callable_name(func))
            del func
        return [f"atexit.register({name})" for name in found]

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

    def note(self, func: object) -> None:
        try:
            self._refs.append(weakref.ref(func))
        except TypeError:
            self._refs.append(id(func))

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


# -- what a test started and left running ------------------------------------------------------

_PyTask = getattr(asyncio.tasks, "_PyTask", asyncio.Task)
_pool_worker = getattr(concurrent.futures.thread, "_worker", None)
_ROOT_TYPES: tuple[type, ...] = (
    threading.Thread,
    asyncio.Handle,
    asyncio.Task,
    _PyTask,
    sched.Event,
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

# Kinds that are a leak by themselves when a test leaves them pending; the others are listed.
PENDING_LEAK_KINDS = frozenset({TIMER, THREAD, TIMER_HANDLE, HANDLE, TASK, SCHED_EVENT, "itimer"})


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
        return isinstance(obj, sched.Event)
    except Exception:  # a hostile subclass: look at it on the slow path
        return True


@dataclass(frozen=True)
class Pending:
    """Something the test started and left running or scheduled. Text only."""

    kind: str
    description: str
    created: str | None = None  # where the test started it (--leakcheck-trace)
    # A thread that holds none of the project's objects, under a lenient check: listed as a
    # suspect. Servers and workers that end a little after their test are common in real
    # suites; a marked (strict) check fails on them.
    passive: bool = False

    @property
    def is_leak(self) -> bool:
        return self.kind in PENDING_LEAK_KINDS and not self.passive


def _queued_event(event: sched.Event) -> sched.scheduler | None:
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
            found.extend(o for o in gc.get_referrers(holder) if _dict_of(o) is holder)
    return found


def _dict_of(obj: object) -> object:
    try:
        return object.__getattribute__(obj, "__dict__")
    except Exception:
        return None


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
        return TASK if not obj.done() and _loop_alive(obj.get_loop()) else None
    if isinstance(obj, sched.Event):
        return SCHED_EVENT if _queued_event(obj) is not None else None
    return None


def stop(obj: object, kind: str) -> str | None:
    """Cancel a pending timer, handle, task or event; return what was done, None if it cannot be.

    Handles and tasks of a loop running in another thread are cancelled from that thread, as
    asyncio requires, and waited for briefly.
    """
    if kind == TIMER and isinstance(obj, threading.Timer):
        obj.cancel()
        obj.join(1.0)
        return f"cancelling threading.Timer {obj.name!r}"
    if kind in (TIMER_HANDLE, HANDLE) and isinstance(obj, asyncio.Handle):
        what = describe.callable_name(getattr(obj, "_callback", None))  # cancel() clears it
        _in_loop_thread(getattr(obj, "_loop", None), obj.cancel)
        return f"cancelling {kind} calling {what}"
    if kind == TASK and isinstance(obj, asyncio.Task):
        loop = obj.get_loop()
        if not loop.is_running():
            return None  # cancel() would only take effect when the loop runs again
        _in_loop_thread(loop, obj.cancel)
        return f"cancelling asyncio.Task {obj.get_name()!r}"
    if kind == SCHED_EVENT and isinstance(obj, sched.Event):
        scheduler = _queued_event(obj)
        if scheduler is None:
            return None
        with contextlib.suppress(ValueError):
            scheduler.cancel(obj)
        return f"cancelling sched event calling {describe.callable_name(obj.action)}"
    return None


def _in_loop_thread(loop: object, action: Callable[[], object]) -> None:
    if not isinstance(loop, asyncio.AbstractEventLoop) or loop.is_closed():
        action()
        return
    if not loop.is_running():
        action()
        return
    done = threading.Event()

    def run() -> None:
        try:
            action()
        finally:
            done.set()

    loop.call_soon_threadsafe(run)
    done.wait(1.0)


class ProcessState:
    """Interval timers and signal handlers before a test, to tell what it changed."""

    def __init__(self) -> None:
        self.itimers = _itimers()
        self.handlers = _handlers()

    def changes(self) -> list[Pending]:
        found = [
            Pending("itimer", f"signal.setitimer({name}) left armed: {value}")
            for name, value in _itimers().items()
            if self._armed_by_block(name, value)
        ]
        for sig, handler in _handlers().items():
            if handler is not self.handlers.get(sig):
                name = signal.Signals(sig).name
                found.append(
                    Pending(SIGNAL_HANDLER, f"{name} handler changed to {describe.short(handler)}")
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


def _itimers() -> dict[str, tuple[float, float]]:
    names = ("ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF")
    return {n: signal.getitimer(getattr(signal, n)) for n in names if hasattr(signal, n)}


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


def _handlers() -> dict[int, object]:
    return dict(zip(_SIGNALS, map(_getsignal, _SIGNALS), strict=True))
