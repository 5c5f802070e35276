"""What kind of root holds a survivor: the report's vocabulary, and one small predicate per kind.

The search in ``retention`` walks from a survivor back to something that lives on by itself (a
module, a class, a running thread's frame, a handler the interpreter keeps in C). The *kind* shown
to the user is then the holder nearest to the survivor that explains why it is still alive: for the
seed's leak that is the ``threading.Timer`` on the path, not the ``threading`` module at its top.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
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
    UNKNOWN: "nothing in Python holds it: look for C extensions or reference-count bugs",
}


@dataclass(frozen=True)
class RootInfo:
    """A holder that the search treats as a starting point, known before the walk begins."""

    kind: str
    description: str


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


def signal_roots() -> dict[int, RootInfo]:
    """Handlers the interpreter keeps in C, where no referrer points at them."""
    found: dict[int, RootInfo] = {}
    for sig in signal.valid_signals():
        try:
            handler = signal.getsignal(sig)
        except (ValueError, OSError):
            continue
        if callable(handler) and not isinstance(handler, int):
            name = getattr(sig, "name", str(sig))
            found[id(handler)] = RootInfo(
                SIGNAL_HANDLER, f"{name} handler {describe.short(handler)}"
            )
    return found


class AtexitRecorder:
    """Notes what a block registers with ``atexit``, whose table lives in C and has no referrers.

    ``atexit.register`` is wrapped for the duration of a check; the wrapper registers exactly what
    the caller passed and returns what ``atexit.register`` returns. Only weak references (or ids,
    for callables that refuse them) are kept, so an unregistered callable is not kept alive.
    """

    def __init__(self) -> None:
        self._refs: list[weakref.ref[Any] | int] = []
        self._real: Callable[..., Any] | None = None

    def start(self) -> None:
        real: Callable[..., Any] = atexit.register
        self._real = real

        @functools.wraps(real)
        def register(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            try:
                self._refs.append(weakref.ref(func))
            except TypeError:
                self._refs.append(id(func))
            return real(func, *args, **kwargs)

        register.__leakcheck_wrapper__ = True  # type: ignore[attr-defined]
        setattr(atexit, "register", register)  # noqa: B010 - typeshed's signature is generic

    def stop(self) -> None:
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
