"""Who made a timer, thread, handle, task or ``sched`` event, and where: noted at creation.

While a session checks tests, every test runs with a tag (a number, ``begin``/``end``). A thread,
timer or ``sched`` event gets the tag of the code that made it: the test's, or, when a thread made
it, that thread's own tag. So a timer chain's next timer, armed by the previous timer's callback in
its thread, belongs to the test that started the chain, however many ticks later it is found.
asyncio needs no bookkeeping for tags: a handle or a task copies the context it is made in, and
the tag is a context variable, so a ``call_later`` chain carries it from handle to handle.

With the tag goes the creation site: the first frame of user code that made it. A chain keeps the
site where it started: a timer started by a tagged thread takes that thread's site, a handle with
the callback of an earlier handle of the same test takes the earlier one's. So a leaked timer's
report names the user's ``start()`` call, not the chain's own re-arm nor a library's internals.

A leftover found while another test is checked is then told apart: it is not that test's, it is the
test's that made it, which is named.

Everything is kept by ``id()`` with what else identifies the object (a thread's ident and native
id, an event's time and sequence number, a handle's callback): no reference to any of them is kept.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import contextvars
import functools
import itertools
import sched
import signal
import threading
from collections.abc import Callable
from typing import Any

from .sites import Site, caller_site

# The context variable of the test being run. Visible to a test that lists its context's
# variables; that is its whole footprint (see the documentation's limits).
TEST: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "pytest_leakcheck_test", default=None
)

_serials = itertools.count(1)
_names: dict[int, str] = {}  # tag -> the test's node id, or the fixture's description
_fixtures: set[int] = set()  # tags of wider-scoped fixtures set up and not torn down yet
_running: int | None = None  # the tag of the test whose protocol runs now
Identity = tuple[int | None, int | None]
# id -> (identity, tag, site); the identity is None until the thread has started.
_threads: dict[int, tuple[Identity | None, int, Site | None]] = {}
_events: dict[int, tuple[float, int, int, Site | None]] = {}  # id -> (time, sequence, tag, site)
_handles: dict[int, tuple[int, Site | None]] = {}  # id -> (id of the callback, site)
_chains: dict[tuple[int, int], Site | None] = {}  # (tag, id of the callback) -> first site
_signals: dict[int, tuple[int, Site | None]] = {}  # signal number -> (id of the handler, site)
_real_signal: Callable[..., Any] | None = None
_lock = threading.Lock()
_patched: dict[tuple[type, str], Callable[..., Any]] = {}

_SWEEP_AT = 4096  # entries kept for ended threads and run events before they are swept

_LOOP = asyncio.base_events.BaseEventLoop
_LOOP_MAKERS = ("call_soon", "call_soon_threadsafe", "call_later", "call_at", "create_task")


def begin(nodeid: str) -> tuple[int, contextvars.Token[int | None]]:
    """The test ``nodeid`` starts: its tag, and the token that ``end`` takes."""
    global _running
    tag = _new(nodeid)
    _running = tag
    return tag, TEST.set(tag)


def _new(name: str) -> int:
    tag = next(_serials)
    _names[tag] = name
    return tag


def end(token: contextvars.Token[int | None]) -> None:
    global _running
    TEST.reset(token)
    if TEST.get() is None:
        _running = None


def begin_fixture(description: str) -> tuple[int, contextvars.Token[int | None]]:
    """A wider-scoped fixture's setup starts: what it makes, and every chain that goes on from
    it, is the fixture's, not the test's that happened to need it first (``end`` its token when
    the setup ends, ``fixture_ended`` when the fixture is torn down)."""
    tag = _new(description)
    _fixtures.add(tag)
    return tag, TEST.set(tag)


def fixture_ended(tag: int) -> None:
    """From now on what the fixture left running is a leftover, like a test's."""
    _fixtures.discard(tag)


def live_fixture(tag: int | None) -> bool:
    """``tag`` is a wider-scoped fixture's that is still set up: what it runs is its own."""
    return tag in _fixtures


def name(tag: int) -> str:
    return _names.get(tag, "an earlier test")


def current() -> int | None:
    """The tag of the code running now: the test's, or the thread's that runs it.

    A wider fixture's thread that is not a timer (a server's) works for the test running now:
    what it starts (a request's handler, the user's timer) is that test's. A fixture's timer
    starting the next one is the fixture's heartbeat going on."""
    tag = TEST.get()
    if tag is not None:
        return tag
    thread = threading.current_thread()
    found = _thread_entry(thread)
    if found is None:
        return None
    own = found[1]
    if own in _fixtures and _running is not None and not isinstance(thread, threading.Timer):
        return _running
    return own


def _thread_entry(thread: threading.Thread) -> tuple[Identity | None, int, Site | None] | None:
    found = _threads.get(id(thread))
    if found is None or found[0] not in (None, _identity(thread)):
        return None  # another thread object that had the same id()
    return found


def tag_of(obj: object) -> int | None:
    """The tag ``obj`` was given when it was made, or None (made before, or not known)."""
    if isinstance(obj, threading.Thread):
        found = _thread_entry(obj)
        return found[1] if found is not None else None
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


def site_of(obj: object) -> Site | None:
    """Where the user code that made ``obj`` (or started its chain) is, when it was noted."""
    if isinstance(obj, threading.Thread):
        found = _thread_entry(obj)
        return found[2] if found is not None else None
    if isinstance(obj, sched.Event):
        event = _events.get(id(obj))
        return event[3] if event is not None and event[:2] == (obj.time, obj.sequence) else None
    if isinstance(obj, (asyncio.Handle, asyncio.Task)):
        handle = _handles.get(id(obj))
        if handle is not None and handle[0] == id(_callback(obj)):
            return handle[1]
    return None


def _identity(thread: threading.Thread) -> Identity:
    return thread.ident, getattr(thread, "native_id", None)


def _callback(obj: object) -> object:
    """What a handle calls, or the code a task runs: what a chain's links have in common."""
    if isinstance(obj, asyncio.Task):
        coro = obj.get_coro()
        return getattr(coro, "cr_code", coro)
    func = getattr(obj, "_callback", None)
    return getattr(func, "__func__", func)


def _maker_site() -> Site | None:
    """The site for something made now: the making thread's own, when a tagged thread makes it
    (a chain's next link), or the user code calling into the library."""
    if TEST.get() is None:
        found = _thread_entry(threading.current_thread())
        if found is not None:
            return found[2]
    return caller_site(skip=3)


def _start(real: Callable[..., Any], self: threading.Thread, *args: Any, **kwargs: Any) -> Any:
    tag = current()
    if tag is None:
        return real(self, *args, **kwargs)
    site = _maker_site()
    # Noted before the thread runs: a timer's callback may start the next timer before start()
    # has even returned here, on a loaded machine.
    with _lock:
        if len(_threads) >= _SWEEP_AT:
            _sweep_threads()
        _threads[id(self)] = (None, tag, site)
    result = real(self, *args, **kwargs)
    with _lock:
        if _threads.get(id(self)) == (None, tag, site):
            _threads[id(self)] = (_identity(self), tag, site)  # an ident and native id by now
    return result


def _enterabs(real: Callable[..., Any], self: sched.scheduler, *args: Any, **kwargs: Any) -> Any:
    tag = current()
    event = real(self, *args, **kwargs)
    if tag is not None and isinstance(event, sched.Event):
        site = _maker_site()
        with _lock:
            if len(_events) >= _SWEEP_AT:
                _events.clear()  # an event this old has run or been cancelled long ago
            _events[id(event)] = (event.time, event.sequence, tag, site)
    return event


def _loop_made(real: Callable[..., Any], self: object, *args: Any, **kwargs: Any) -> Any:
    made = real(self, *args, **kwargs)
    tag = TEST.get()  # the context a handle copies: the tag it carries
    if tag is not None:
        callback = id(_callback(made))
        site = _chains.get((tag, callback))
        if site is None:
            # The user code calling call_later() (or asyncio.create_task(), a frame further).
            site = caller_site(skip=2, depth=4)
            if len(_chains) >= _SWEEP_AT:
                _chains.clear()
            _chains[(tag, callback)] = site
        if len(_handles) >= _SWEEP_AT:
            _handles.clear()  # handles of tests long gone: run, cancelled or judged by now
        _handles[id(made)] = (callback, site)
    return made


def _signal(sig: int, handler: Any) -> Any:
    """``signal.signal``, noting where a tagged test set a handler (one entry per signal)."""
    real = _real_signal if _real_signal is not None else _REAL_SIGNAL
    previous = real(sig, handler)
    if TEST.get() is not None and callable(handler):
        site = caller_site(skip=1, depth=4)
        with _lock:
            _signals[int(sig)] = (id(handler), site)
    return previous


def signal_site(sig: int, handler: object) -> Site | None:
    """Where the handler now set for ``sig`` was set, when a test set it."""
    found = _signals.get(int(sig))
    return found[1] if found is not None and found[0] == id(handler) else None


_REAL_SIGNAL = signal.signal


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


def _patch(cls: type, name: str, impl: Callable[..., Any]) -> None:
    if (cls, name) not in _patched:
        real = getattr(cls, name)
        _patched[(cls, name)] = real
        setattr(cls, name, _method(impl, real))


def install() -> None:
    """Tag and place threads, ``sched`` events, asyncio handles and signal handlers from now on
    (idempotent)."""
    global _real_signal
    if _real_signal is None:
        _real_signal = signal.signal
        wrapper = functools.wraps(_real_signal)(_signal)
        wrapper.__leakcheck_wrapper__ = True  # type: ignore[attr-defined]
        setattr(signal, "signal", wrapper)  # noqa: B010 - typeshed's signature is overloaded
    _patch(threading.Thread, "start", _start)
    _patch(sched.scheduler, "enterabs", _enterabs)
    for name in _LOOP_MAKERS:
        _patch(_LOOP, name, _loop_made)


def uninstall() -> None:
    """Put the methods back, unless someone replaced them since."""
    global _real_signal
    if _real_signal is not None and getattr(signal.signal, "__leakcheck_wrapper__", False):
        setattr(signal, "signal", _real_signal)  # noqa: B010
    _real_signal = None
    for (cls, name), real in _patched.items():
        if getattr(getattr(cls, name), "__leakcheck_wrapper__", False):
            setattr(cls, name, real)
    _patched.clear()
    with _lock:
        _threads.clear()
        _events.clear()
        _handles.clear()
        _chains.clear()
        _signals.clear()
        _fixtures.clear()
