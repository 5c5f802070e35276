"""Which test made a timer, thread, handle, task or ``sched`` event: a tag given at creation.

While a session checks tests, every test runs with a tag (a number, ``begin``/``end``). A thread,
timer or ``sched`` event gets the tag of the code that made it: the test's, or, when a thread made
it, that thread's own tag. So a timer chain's next timer, armed by the previous timer's callback in
its thread, belongs to the test that started the chain, however many ticks later it is found.
asyncio needs no bookkeeping: a handle or a task copies the context it is made in, and the tag is a
context variable, so a ``call_later`` chain carries it from handle to handle.

A leftover found while another test is checked is then told apart: it is not that test's, it is the
test's that made it, which is named.

Tags of threads and events are kept by ``id()`` with what else identifies the object (a thread's
ident and native id, an event's time and sequence number): no reference to any of them is kept.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import sched
import threading
from collections.abc import Callable
from typing import Any

# The context variable of the test being run. Visible to a test that lists its context's
# variables; that is its whole footprint (see the documentation's limits).
TEST: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "pytest_leakcheck_test", default=None
)

_serials = itertools.count(1)
_names: dict[int, str] = {}  # tag -> the test's node id
# id -> (identity, tag); the identity is None until the thread has started.
_threads: dict[int, tuple[tuple[int | None, int | None] | None, int]] = {}
_events: dict[int, tuple[float, int, int]] = {}  # id -> (time, sequence, tag)
_lock = threading.Lock()
_real_start: Callable[..., Any] | None = None
_real_enterabs: Callable[..., Any] | None = None

_SWEEP_AT = 4096  # entries kept for ended threads and run events before they are swept


def begin(nodeid: str) -> tuple[int, contextvars.Token[int | None]]:
    """The test ``nodeid`` starts: its tag, and the token that ``end`` takes."""
    tag = next(_serials)
    _names[tag] = nodeid
    return tag, TEST.set(tag)


def end(token: contextvars.Token[int | None]) -> None:
    TEST.reset(token)


def name(tag: int) -> str:
    return _names.get(tag, "an earlier test")


def current() -> int | None:
    """The tag of the code running now: the test's, or the thread's that runs it."""
    tag = TEST.get()
    if tag is not None:
        return tag
    return _thread_tag(threading.current_thread())


def _thread_tag(thread: threading.Thread) -> int | None:
    found = _threads.get(id(thread))
    if found is None or found[0] not in (None, _identity(thread)):
        return None  # another thread object that had the same id()
    return found[1]


def tag_of(obj: object) -> int | None:
    """The tag ``obj`` was given when it was made, or None (made before, or not known)."""
    if isinstance(obj, threading.Thread):
        return _thread_tag(obj)
    if isinstance(obj, asyncio.Handle):
        context = getattr(obj, "_context", None)
        return context.get(TEST) if isinstance(context, contextvars.Context) else None
    if isinstance(obj, asyncio.Task):
        get_context = getattr(obj, "get_context", None)  # 3.12 and later
        context = get_context() if callable(get_context) else getattr(obj, "_context", None)
        return context.get(TEST) if isinstance(context, contextvars.Context) else None
    if isinstance(obj, sched.Event):
        event = _events.get(id(obj))
        if event is not None and event[:2] == (obj.time, obj.sequence):
            return event[2]
    return None


def _identity(thread: threading.Thread) -> tuple[int | None, int | None]:
    return thread.ident, getattr(thread, "native_id", None)


def _start(real: Callable[..., Any], self: threading.Thread, *args: Any, **kwargs: Any) -> Any:
    tag = current()
    if tag is None:
        return real(self, *args, **kwargs)
    # Noted before the thread runs: a timer's callback may start the next timer before start()
    # has even returned here, on a loaded machine.
    with _lock:
        if len(_threads) >= _SWEEP_AT:
            _sweep_threads()
        _threads[id(self)] = (None, tag)
    result = real(self, *args, **kwargs)
    with _lock:
        if _threads.get(id(self)) == (None, tag):
            _threads[id(self)] = (_identity(self), tag)  # an ident and a native id by now
    return result


def _enterabs(real: Callable[..., Any], self: sched.scheduler, *args: Any, **kwargs: Any) -> Any:
    tag = current()
    event = real(self, *args, **kwargs)
    if tag is not None and isinstance(event, sched.Event):
        with _lock:
            if len(_events) >= _SWEEP_AT:
                _events.clear()  # an event this old has run or been cancelled long ago
            _events[id(event)] = (event.time, event.sequence, tag)
    return event


def _sweep_threads() -> None:
    alive = {id(t) for t in threading.enumerate()}
    for key in [key for key in _threads if key not in alive]:
        del _threads[key]


def _method(impl: Callable[..., Any], real: Callable[..., Any]) -> Callable[..., Any]:
    """A method that calls ``impl(real, self, ...)``, dressed as ``real``."""

    @functools.wraps(real)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return impl(real, self, *args, **kwargs)

    method.__leakcheck_wrapper__ = True  # type: ignore[attr-defined]
    return method


def install() -> None:
    """Tag threads and ``sched`` events from now on (idempotent)."""
    global _real_start, _real_enterabs
    if _real_start is None:
        _real_start = threading.Thread.start
        threading.Thread.start = _method(_start, _real_start)  # type: ignore[method-assign]
    if _real_enterabs is None:
        _real_enterabs = sched.scheduler.enterabs
        sched.scheduler.enterabs = _method(_enterabs, _real_enterabs)  # type: ignore[method-assign]


def uninstall() -> None:
    """Put ``Thread.start`` and ``scheduler.enterabs`` back, unless someone replaced them since."""
    global _real_start, _real_enterabs
    if _real_start is not None:
        if getattr(threading.Thread.start, "__leakcheck_wrapper__", False):
            threading.Thread.start = _real_start  # type: ignore[method-assign]
        _real_start = None
    if _real_enterabs is not None:
        if getattr(sched.scheduler.enterabs, "__leakcheck_wrapper__", False):
            sched.scheduler.enterabs = _real_enterabs  # type: ignore[method-assign]
        _real_enterabs = None
    with _lock:
        _threads.clear()
        _events.clear()
