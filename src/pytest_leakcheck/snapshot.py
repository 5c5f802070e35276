"""What is alive and new: the window around a block of code, and the watched objects it left behind.

Two ways to tell new objects from old ones:

* ``FrozenWindow`` (the default where the interpreter allows it) calls ``gc.freeze()`` at the start,
  so every object that existed before sits in the permanent generation, which ``gc.collect()`` and
  ``gc.get_objects()`` skip. At the end, a collection and a walk over the young objects alone find
  the survivors: the cost follows what the block allocated, not the size of the heap
  (``../shared/FACTS.md``: 0.01 ms against 300 ms for one full collection on a 1M-object heap).
* ``FullHeapWindow`` records the ids of every watched instance before and compares after. It costs
  a walk over the whole heap at each end and is used where freezing cannot be trusted: on the
  free-threaded build (no generations), when something else already froze objects, or when the
  start-up probe finds that ``gc.freeze()`` does not hide old objects on this interpreter.

Freezing must stay invisible to the code under test. While a window is frozen, the ``gc`` functions
whose answers depend on the frozen set (``collect``, ``get_objects``, ``get_referrers``, ``freeze``,
``unfreeze``, ``get_freeze_count``, ``get_count``) are replaced by wrappers:

* ``collect`` *thaws* the window around the call: it notes the ids of the watched objects made so
  far (a walk over the young objects only), unfreezes, runs the collection as the test expected,
  and freezes again. An id noted then can only belong, later, to that object or to one made after
  it: both are the block's. At the end, a window that was thawed looks those ids up in one pass
  over the heap, without classifying it. Freezing again resets the allocation count that
  ``get_count`` reports, as the full collection itself just did: the test cannot tell.
* ``get_freeze_count`` answers what the permanent generation would hold without the window.
* The other calls, or a fourth thaw, *degrade* the window for good: it notes which watched
  objects are old, unfreezes, puts the real functions back and becomes a whole-heap comparison.
  Freezing again after them would reset that count where the test could see it.

What others froze. ``gc.freeze()`` and ``gc.unfreeze()`` move *every* tracked object; CPython has no
call that freezes a chosen set, so a window that unfreezes at its end also unfreezes whatever was in
the permanent generation before it. Two cases:

* CPython 3.12's collector itself moves the immortal objects it meets (a few hundred tuples of the
  standard library's deep-frozen code) into the permanent generation. They can never be freed, so
  it changes nothing the collector does whether they sit there or in the oldest generation, and
  the collector moves them back by itself. The window freezes on top of them, and
  ``get_freeze_count`` keeps counting them as frozen (``_Permanent``).
* An application that calls ``gc.freeze()`` itself (pre-fork servers do, at import) wants its
  objects to stay frozen: unfreezing them would show them to ``get_objects`` and let the collector
  walk them, and freezing everything again would keep every later object from ever being
  collected. So while an application's objects are frozen, windows compare the unfrozen heap
  (``FullHeapWindow``) and leave the permanent generation alone.
"""

from __future__ import annotations

import gc
import sysconfig
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Mapping
from itertools import compress
from typing import Any, Protocol

from . import roots
from .watch import WatchFilter, qualified_name
from .wrappers import transparent

# Saved at import so that the checker itself never goes through its own wrappers.
_real_collect = gc.collect
_real_get_objects = gc.get_objects
_real_freeze = gc.freeze
_real_unfreeze = gc.unfreeze
_real_get_freeze_count = gc.get_freeze_count

_INTERCEPTED = (
    "collect",
    "get_objects",
    "get_referrers",
    "freeze",
    "unfreeze",
    "get_freeze_count",
    "get_count",
)


# The calls after which the heap can be frozen again unseen: a full collection resets the
# allocation count as freezing does. After get_objects, get_referrers or get_count, freezing
# again would reset a count the test can read; freeze and unfreeze manage the frozen set
# themselves, and get_freeze_count is answered without touching it.
_THAWABLE = frozenset({"collect"})
_MANAGING = frozenset({"freeze", "unfreeze"})
_COUNTING = "get_freeze_count"
# Kept through a degraded window: they keep the permanent generation's count as the test expects.
_KEPT_WHEN_DEGRADED = (*_MANAGING, _COUNTING)

# Thawing costs a walk over the young objects; a test that calls gc in a loop would pay it each
# time, so after this many thaws the window degrades instead.
MAX_THAWS = 3


_INTERPRETER_AT_MOST = 2000


class _Permanent:
    """What the permanent generation would hold without the windows, and who put it there.

    CPython 3.12 moves its immortal objects there (``interpreter`` of them, counted when the plugin
    was imported, before any test code ran; 0 on 3.10, 3.11 and 3.13). A window's unfreeze moves
    them back to the oldest generation until the collector's next full collection; ``owed``
    remembers how many, so that ``get_freeze_count`` still counts them. A test that calls
    ``freeze`` or ``unfreeze`` itself takes the count over.
    """

    RECOUNT_EVERY = 50

    def __init__(self) -> None:
        count = _real_get_freeze_count()
        # Not tied to 3.12: a later version that does the same is handled alike. A freeze made
        # by code (a sitecustomize, before pytest loads its plugins) holds at least the whole
        # start-up heap, several thousand objects; the interpreter's own are a few hundred.
        self.interpreter = count if count <= _INTERPRETER_AT_MOST else 0
        self.owed = 0
        self._recount_in = 0

    def others(self) -> int:
        """Objects that someone other than the windows put there (a walk of that list only)."""
        return _real_get_freeze_count()

    def application_froze(self) -> bool:
        """Whether more than the interpreter's own objects are frozen.

        Counting walks the whole permanent list: nothing when only the interpreter's few hundred
        objects are there, milliseconds when an application froze a large heap. So once an
        application's freeze is seen, it is counted again only every ``RECOUNT_EVERY`` checks:
        a stale answer only keeps the exact (whole-heap) comparison a little longer.
        """
        if self._recount_in > 0:
            self._recount_in -= 1
            return True
        froze = self.others() > self.interpreter
        self._recount_in = self.RECOUNT_EVERY if froze else 0
        return froze

    def unfrozen_by_window(self, others: int) -> None:
        self.owed = max(self.owed, others)

    def taken_over(self) -> None:
        self.owed = 0

    def count(self, real: int) -> int:
        return max(real, self.owed)


_permanent = _Permanent()


def interpreter_frozen() -> int:
    """How many objects the interpreter itself keeps in the permanent generation (3.12)."""
    return _permanent.interpreter


def _degrade_then(real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    window = _current
    if window is not None:
        window.degrade()
    return real(*args, **kwargs)


def _referrers_then(real: Callable[..., Any], *args: Any) -> Any:
    window = _current
    if window is not None:
        window.degrade()
    found = real(*args)
    # ``args`` is this call's own tuple of the objects asked about: a referrer of each of them
    # that the caller's call did not make (3.13 lists it).
    return [holder for holder in found if holder is not args]


def _manage_then(real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    window = _current
    if window is not None:
        window.degrade()
        _permanent.taken_over()
    return real(*args, **kwargs)


def _count_frozen(real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    window = _current
    if window is None or args or kwargs:  # a wrong call: let gc raise its own error
        return real(*args, **kwargs)
    return window.freeze_count(real)


def _thaw_then(real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    window = _current
    if window is None:
        return real(*args, **kwargs)
    return window.thawed_call(real, args, kwargs)


def _wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    """A gc function that thaws, degrades or answers for the frozen window, then runs."""
    if name in _THAWABLE:
        impl = _thaw_then
    elif name in _MANAGING:
        impl = _manage_then
    elif name == _COUNTING:
        impl = _count_frozen
    elif name == "get_referrers":
        impl = _referrers_then
    else:
        impl = _degrade_then
    return transparent(impl, real)


_SHARED_WRAPPERS = {name: _wrap(name, getattr(gc, name)) for name in _INTERCEPTED}
_current: FrozenWindow | None = None

# Only one frozen window may exist at a time in a process: a nested one (a pytester run inside a
# checked test) would unfreeze the outer one's objects.
_frozen_lock = threading.Lock()
_frozen_active = False
_freeze_probe_result: bool | None = None


class Window(Protocol):
    mode: str
    objects_added: int  # after close: tracked objects the window made that are still alive

    root_ids: set[int]  # after close: timers, threads, handles, tasks, events it made and left
    pool_threads: set[int | None]  # after close: idents of workers that old pools started
    found: list[object]  # after close: those objects and the watched survivors; the caller clears

    def close(self) -> set[int]:
        """End the window and return the ids of watched objects it made that are still alive."""

    def sample(self) -> tuple[int, Counter[str]]:
        """Without ending the window: tracked objects in the heap, and new watched ones by type."""


def collect_all() -> None:
    _real_collect()


def find_by_id(expected: Mapping[int, type]) -> list[object]:
    """The live objects with these ids and types, after a full collection: a heap walk, leak
    path only. The type is checked because an id freed since may name a new object now (once it
    was a list the checker itself had just made)."""
    _real_collect()
    return [o for o in _look_up(expected.keys()) if type(o) is expected[id(o)]]


def classify(objects: list[Any], watch: WatchFilter) -> tuple[set[int], set[int]]:
    """Ids of watched instances, and of timers, threads, handles, tasks and events that may
    still be pending. The per-object work is done in C (``map``, ``compress``); Python looks at
    each distinct type once."""
    types = list(map(type, objects))
    cache = watch.new_cache()
    watched_types: set[type] = set()
    root_types: set[type] = set()
    for tp in set(types):
        if watch.is_watched(tp, cache):
            watched_types.add(tp)
        if roots.is_root_type(tp):
            root_types.add(tp)
    watched: set[int] = set()
    rooted: set[int] = set()
    if watched_types:
        watched = set(map(id, compress(objects, map(watched_types.__contains__, types))))
    if root_types:
        candidates = compress(objects, map(root_types.__contains__, types))
        rooted = {id(o) for o in candidates if roots.maybe_pending(o)}
    return watched, rooted


def _workers_of_old_pools(
    objects: list[Any], root_ids: set[int], young: list[Any]
) -> dict[int, int | None]:
    """Worker threads that a thread pool made before the window started during it.

    A pool starts its workers lazily, on its first jobs: a class-level pool kept on purpose
    (asgiref's) starts one in whichever test uses it first. That thread is the pool's, not the
    test's. Only the frozen window can tell an old pool from a new one (it is not young).
    Returns their ids and thread idents.
    """
    workers = [(o, pool) for o in objects if id(o) in root_ids and (pool := roots.pool_of(o))]
    if not workers:
        return {}
    young_pools = set(map(id, _pick(young, {id(pool) for _, pool in workers})))
    old = {
        id(thread): getattr(thread, "ident", None)
        for thread, pool in workers
        if id(pool) not in young_pools
    }
    workers.clear()
    return old


def _look_up(wanted: Container[int]) -> list[object]:
    """The live objects with these ids: one pass over the heap."""
    return _pick(_real_get_objects(), wanted)


def _pick(objects: list[Any], ids: Container[int]) -> list[object]:
    """Those of ``objects`` whose id is in ``ids``, picked in C: no Python code per object."""
    return list(compress(objects, map(ids.__contains__, map(id, objects))))


def _count_by_type(objects: list[Any], watch: WatchFilter, skip: set[int]) -> Counter[str]:
    cache = watch.new_cache()
    is_watched = watch.is_watched
    types = Counter(type(o) for o in objects if is_watched(type(o), cache) and id(o) not in skip)
    return Counter({qualified_name(tp): n for tp, n in types.items()})


class FullHeapWindow:
    """Compare the watched instances of the whole heap before and after."""

    mode = "full-heap"
    reason = ""  # why no frozen window was used, when one was wanted

    def __init__(
        self, watch: WatchFilter, before: set[int] | None = None, objects_before: int = 0
    ) -> None:
        # ``objects_before`` counts the heap the comparison starts from; whole-heap walks are
        # this window's price anyway.
        self._watch = watch
        if before is None:
            objects = _real_get_objects()
            watched, rooted = classify(objects, watch)
            before = watched | rooted
            objects_before = len(objects)
            del objects
        self._before = before
        self.objects_before = objects_before
        self.objects_added = 0
        self.root_ids: set[int] = set()
        self.found: list[object] = []
        self.pool_threads: set[int | None] = set()  # only the frozen window can tell

    def close(self) -> set[int]:
        objects = _real_get_objects()
        watched, rooted = classify(objects, self._watch)
        watched -= self._before
        rooted -= self._before
        if watched or rooted:
            # Only now is a full collection worth its cost: something new may be garbage.
            candidates = watched | rooted
            del objects
            _real_collect()
            objects = _real_get_objects()
            watched, rooted = classify(_pick(objects, candidates), self._watch)
        self.objects_added = len(objects) - self.objects_before
        self.root_ids = rooted
        self.found = _pick(objects, watched | rooted)
        del objects
        return watched

    def sample(self) -> tuple[int, Counter[str]]:
        _real_collect()
        objects = _real_get_objects()
        added = len(objects) - self.objects_before
        return added, _count_by_type(objects, self._watch, self._before)


class FrozenWindow:
    """Freeze the old heap so that the end of the window looks only at what is new."""

    mode = "frozen"

    def __init__(self, watch: WatchFilter, others: int = 0) -> None:
        global _frozen_active
        self._watch = watch
        # What the permanent generation held before: the interpreter's own (see _Permanent).
        self._others = others
        self._lock = threading.RLock()
        self._degraded: FullHeapWindow | None = None
        self._saved: dict[str, Callable[..., Any]] = {}
        # Ids of watched objects and roots made before a thaw, which then froze them again.
        self._thawed_ids: set[int] = set()
        self._young_at_thaw = 0
        self.thaws = 0
        self._thaw_depth = 0
        _real_freeze()
        _frozen_active = True
        # Not gc.get_freeze_count(): it walks the frozen list, a walk over the whole heap.
        self.objects_added = 0
        self.found: list[object] = []
        self.root_ids: set[int] = set()
        # Idents of worker threads that a pool older than the window started during it.
        self.pool_threads: set[int | None] = set()
        # Per window, not only the module flag: a wrapper that a test kept a reference to must not
        # unfreeze a later window.
        self._frozen = True
        self._install()

    @property
    def degraded(self) -> bool:
        return self._degraded is not None

    def _install(self) -> None:
        global _current
        _current = self
        for name in _INTERCEPTED:
            real = getattr(gc, name)
            # A wrapper that a test's monkeypatch put back: wrap what it wraps.
            while getattr(real, "__leakcheck_wrapper__", False):
                real = real.__wrapped__
            self._saved[name] = real
            shared = _SHARED_WRAPPERS[name]
            # The wrappers are made once: making eight per test cost more than the check itself.
            # Only a gc function that someone else replaced needs a wrapper of its own.
            wrapper = shared if real is getattr(shared, "__wrapped__", None) else _wrap(name, real)
            setattr(gc, name, wrapper)

    def _uninstall(self, keep: tuple[str, ...] = ()) -> None:
        global _current
        if _current is self and not keep:
            _current = None
        for name, real in list(self._saved.items()):
            if name in keep:
                continue
            current = getattr(gc, name, None)
            # A test may have replaced the attribute itself (monkeypatch); leave its value alone
            # unless it is still ours.
            if getattr(current, "__leakcheck_wrapper__", False):
                setattr(gc, name, real)
            del self._saved[name]

    def _unfreeze(self) -> None:
        _real_unfreeze()
        _permanent.unfrozen_by_window(self._others)

    def freeze_count(self, real: Callable[[], int]) -> int:
        """``gc.get_freeze_count()`` as the test would see it without the window."""
        with self._lock:
            if self._frozen and self._thaw_depth == 0:
                return _permanent.count(self._others)
        return _permanent.count(real())

    def thawed_call(
        self, real: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run a gc call on the whole heap, as the test expects, and freeze again after it.

        No lock is held during the call: a finalizer that the collection runs may call gc again
        (it runs unfrozen, in the same thaw) or wait for a thread that does.
        """
        with self._lock:
            if not self._frozen:
                thawing = False
            elif self._thaw_depth == 0 and self.thaws >= MAX_THAWS:
                self.degrade()
                thawing = False
            else:
                thawing = True
                if self._thaw_depth == 0:
                    self._note_young()
                    self._unfreeze()
                self._thaw_depth += 1
        if not thawing:
            return real(*args, **kwargs)
        try:
            return real(*args, **kwargs)
        finally:
            with self._lock:
                self._thaw_depth -= 1
                if self._thaw_depth == 0 and self._frozen:
                    # The collection may have put the interpreter's own objects back (3.12).
                    self._others = _permanent.others()
                    _real_freeze()

    def _note_young(self) -> None:
        young = _real_get_objects()
        watched, rooted = classify(young, self._watch)
        self._young_at_thaw += len(young)
        del young
        self._thawed_ids |= watched | rooted
        self.thaws += 1

    def degrade(self) -> None:
        """Turn this window into a full-heap one, from now on, with the same notion of "before"."""
        global _frozen_active
        with self._lock:
            if not self._frozen:
                return
            if self._thaw_depth == 0:
                young = _real_get_objects()
                new_watched, new_roots = classify(young, self._watch)
                young_count = len(young) + self._young_at_thaw
                del young
            else:
                # Inside a thaw (another thread's gc call) the heap is unfrozen already, and
                # what is new is what the thaw noted.
                new_watched, new_roots, young_count = set(), set(), self._young_at_thaw
            # freeze, unfreeze and get_freeze_count stay wrapped: they keep the count as the
            # test expects it until the window closes.
            self._uninstall(keep=_KEPT_WHEN_DEGRADED)
            if self._thaw_depth == 0:
                self._unfreeze()
            _frozen_active = self._frozen = False
            everything = _real_get_objects()
            old_watched, old_roots = classify(everything, self._watch)
            new = new_watched | new_roots | self._thawed_ids
            old = (old_watched | old_roots) - new
            self._degraded = FullHeapWindow(
                self._watch, before=old, objects_before=len(everything) - young_count
            )
            del everything

    def close(self) -> set[int]:
        global _frozen_active
        with self._lock:
            if self._degraded is not None:
                self._uninstall()
                ids = self._degraded.close()
                self.objects_added = self._degraded.objects_added
                self.root_ids = self._degraded.root_ids
                self.found = self._degraded.found
                return ids
            if self._thaw_depth:
                # Another thread is inside a gc call: the heap is unfrozen under us.
                self.degrade()
                assert self._degraded is not None
                return self.close()
            self._uninstall()
            if self._thawed_ids:
                return self._close_thawed()
            try:
                # Only the young generations are walked: the old heap is still frozen. The
                # collection comes only when something watched is among them (it may be
                # garbage): most clean tests leave nothing of interest, and skipping it halves
                # their cost. ``objects_added`` then counts young garbage not yet collected.
                young = _real_get_objects()
                ids, self.root_ids = classify(young, self._watch)
                self.objects_added = len(young)
                if ids or self.root_ids:
                    candidates = ids | self.root_ids
                    del young
                    _real_collect()
                    young = _real_get_objects()
                    self.objects_added = len(young)
                    # Only what was there before the collection can be left: look those ids
                    # up in C, and check them again (a finalizer may have reused an id).
                    again = _pick(young, candidates)
                    ids, self.root_ids = classify(again, self._watch)
                    pooled = _workers_of_old_pools(again, self.root_ids, young)
                    self.root_ids -= pooled.keys()
                    self.pool_threads = set(pooled.values())
                    del young
                    # Handed over now: finding them again later would walk the whole heap.
                    self.found = _pick(again, ids | self.root_ids)
                    again.clear()
                else:
                    del young
            finally:
                self._unfreeze()
                _frozen_active = self._frozen = False
            return ids

    def _close_thawed(self) -> set[int]:
        """The end of a window that a gc call thawed: what it made before the thaw is frozen
        with the old heap, so the noted ids are looked up over the whole heap. A collection of
        the whole heap runs only if one of them is still there (it may be garbage in a cycle);
        most tests let go of their objects by then, and that collection is the costly part."""
        global _frozen_active
        try:
            young = _real_get_objects()
            watched, rooted = classify(young, self._watch)
            self.objects_added = len(young) + self._young_at_thaw
            if watched or rooted:
                del young
                _real_collect()  # the young generations only: the old heap is still frozen
                young = _real_get_objects()
                watched, rooted = classify(young, self._watch)
            del young
            wanted = watched | rooted | self._thawed_ids
        finally:
            self._unfreeze()
            _frozen_active = self._frozen = False
        found = _look_up(wanted)
        if any(id(o) in self._thawed_ids for o in found):
            found.clear()
            _real_collect()
            found = _look_up(wanted)
        # An id may now name a later object: still the block's, but is it watched?
        ids, self.root_ids = classify(found, self._watch)
        self.found = _pick(found, ids | self.root_ids)
        found.clear()
        self._thawed_ids.clear()
        return ids

    def sample(self) -> tuple[int, Counter[str]]:
        with self._lock:
            if self._thawed_ids and self._degraded is None:
                # Counting by type needs every new object in view: what a thaw froze is not.
                self.degrade()
            if self._degraded is not None:
                return self._degraded.sample()
            _real_collect()  # the young generations only, as at the end of the window
            young = _real_get_objects()
            try:
                return len(young), _count_by_type(young, self._watch, set())
            finally:
                del young

    def abort(self) -> None:
        """Undo the freeze and the wrappers without looking at anything (the error path)."""
        global _frozen_active
        with self._lock:
            self._uninstall()
            if self._frozen:
                self._unfreeze()
                _frozen_active = self._frozen = False


def _free_threaded() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _freeze_hides_old_objects() -> bool:
    """Probe once that this interpreter's gc.freeze() behaves as the frozen window assumes."""

    class _Probe:
        pass

    old = _Probe()
    others = _permanent.others()
    _real_freeze()
    try:
        new = _Probe()
        young = _real_get_objects()
        ok = any(o is new for o in young) and not any(o is old for o in young)
        del young, new
    finally:
        _real_unfreeze()
        _permanent.unfrozen_by_window(others)
    return ok


def no_frozen_window() -> str | None:
    """Why a frozen window cannot be had right now, or None when it can."""
    global _freeze_probe_result
    if _free_threaded():
        return "the free-threaded build has no generations to freeze"
    if _frozen_active:
        return "another check's frozen window is open in this process"
    if _permanent.application_froze():
        return (
            "the application keeps objects frozen with gc.freeze(), "
            "which a frozen window would undo"
        )
    if _freeze_probe_result is None:
        _freeze_probe_result = _freeze_hides_old_objects()
    if not _freeze_probe_result:
        return "gc.freeze() does not hide old objects from gc.get_objects() here"
    return None


def open_window(watch: WatchFilter, *, mode: str = "auto") -> FrozenWindow | FullHeapWindow:
    """Start watching. ``mode``: ``"auto"`` (frozen where usable) or ``"full-heap"``."""
    with _frozen_lock:
        why = "asked for" if mode == "full-heap" else no_frozen_window()
        if why is None:
            return FrozenWindow(watch, others=_permanent.others())
    window = FullHeapWindow(watch)
    window.reason = why
    return window


def full_heap_cost(watch: WatchFilter) -> tuple[float, int]:
    """What one clean check costs without a frozen window, measured now: (seconds, objects)."""
    began = time.perf_counter()
    window = FullHeapWindow(watch)
    window.close()
    window.found.clear()
    return time.perf_counter() - began, window.objects_before
