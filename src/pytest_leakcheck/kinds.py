"""What kind of root holds a survivor: the report's vocabulary, and one small predicate per kind.

The search in ``retention`` walks from a survivor back to something that lives on by itself (a
module, a class, a running thread's frame, a handler the interpreter keeps in C). The *kind* shown
to the user is then the holder nearest to the survivor that explains why it is still alive: for the
seed's leak that is the ``threading.Timer`` on the path, not the ``threading`` module at its top.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import sched
import signal
import threading
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import describe, provenance
from .sites import where

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
ITIMER = "itimer"  # signal.setitimer: left running, never a holder on a path
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

# Kinds that are a leak by themselves when a test leaves them pending; the others are listed.
PENDING_LEAK_KINDS = frozenset({TIMER, THREAD, TIMER_HANDLE, HANDLE, TASK, SCHED_EVENT, ITIMER})

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


# Common wrappers around a timer, handle or thread: the call that stops them is theirs, and the
# generic advice for the root underneath ("cancel the handle") names something the user never
# held. Matched on the root's description (what it calls, or the thread's target).
WRAPPER_HINTS = (
    ("PeriodicCallback", "stop the PeriodicCallback when its owner goes away (callback.stop())"),
    (
        "concurrent.futures.thread",
        "shut the executor down when its owner goes away (executor.shutdown()), or use it in a "
        "with block",
    ),
    ("sched.scheduler.run", "cancel the scheduler's events (scheduler.cancel(event))"),
)


def hint(kind: str, description: str) -> str | None:
    """What to do about a root of this kind, with this description."""
    for marker, text in WRAPPER_HINTS:
        if marker in description:
            return text
    return HINTS.get(kind)


@dataclass(frozen=True)
class RootInfo:
    """A holder that the search treats as a starting point, known before the walk begins."""

    kind: str
    description: str
    # A frame of a thread older than the check (a shared pool's worker): what it holds now it
    # may be about to let go of, so the checker looks again before calling it a leak.
    busy_elsewhere: bool = False
    # id() of the object that is the root (a running frame's thread), when there is one.
    holder: int | None = None
    tag: int | None = None  # the test that made it (``provenance``), when known
    site: str | None = None  # where it was made (``provenance``), when noted


@dataclass(frozen=True)
class Root:
    """What a path was classified as: the kind, its description, id() of the holder, and the
    test that made the holder (``provenance``), when known."""

    kind: str
    description: str
    holder: int | None
    tag: int | None = None
    site: str | None = None  # where the holder was made (``provenance``), when noted


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


def classify(path: Sequence[object], root: RootInfo | None, top: object) -> Root:
    """The root of a path listed from the top holder down to the survivor."""
    for obj in reversed(path[:-1]):
        for kind, matches in _PATH_PREDICATES:
            try:
                hit = matches(obj)
            except Exception:  # a hostile subclass must not break the report
                hit = False
            if hit:
                return Root(kind, describe.root(obj), id(obj), provenance.tag_of(obj), _site(obj))
    if root is not None:
        return Root(root.kind, root.description, root.holder, root.tag, root.site)
    if isinstance(top, types.ModuleType):
        return Root(MODULE_GLOBAL, f"module {describe.safe_name(top)}", id(top))
    if isinstance(top, type):
        return Root(CLASS_ATTRIBUTE, f"class {describe.type_name(top)}", id(top))
    return Root(UNKNOWN, describe.short(top), id(top))


def _site(obj: object) -> str | None:
    site = provenance.site_of(obj)
    return where(site) if site is not None else None


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


def signal_roots(handlers: dict[int, object]) -> dict[int, RootInfo]:
    """Handlers the interpreter keeps in C, where no referrer points at them."""
    found: dict[int, RootInfo] = {}
    for sig, handler in handlers.items():
        if callable(handler) and not isinstance(handler, int):
            name = signal.Signals(sig).name
            site = provenance.signal_site(sig, handler)
            found[id(handler)] = RootInfo(
                SIGNAL_HANDLER,
                f"{name} handler {describe.short(handler)}",
                site=where(site) if site is not None else None,
            )
    return found
