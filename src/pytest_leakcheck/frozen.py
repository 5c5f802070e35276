"""The frozen window: freeze the old heap so that the end of a check looks only at what is new.

``gc.freeze()`` at the start moves every object the collector tracks into the permanent
generation, which ``gc.collect()`` and ``gc.get_objects()`` skip. At the end, a collection and a
walk over the young objects alone find the survivors: the cost follows what the block allocated,
not the size of the heap (0.01 ms against 300 ms for one full collection of a 1M-object heap).

Freezing must stay invisible to the code under test. While a window is frozen, the ``gc`` functions
whose answers depend on the frozen set (``collect``, ``get_objects``, ``get_referrers``, ``freeze``,
``unfreeze``, ``get_freeze_count``, ``get_count``) are replaced by wrappers:

* ``collect`` *thaws* the window around the call: it notes the ids of the watched objects made so
  far (a walk over the young objects only), unfreezes, runs the collection as the test expected,
  and freezes again. An id noted then can only belong, later, to that object or to one made after
  it: both are the block's. At the end, a window that was thawed looks those ids up in one pass
  over the heap, without classifying it. Freezing again resets the allocation count that
  ``get_count`` reports, as the full collection itself just did: the test cannot tell.
* ``get_freeze_count`` answers what the permanent generation would hold without the window
  (``permanent``).
* The other calls, or a fourth thaw, *degrade* the window for good: it notes which watched
  objects are old, unfreezes, puts the real functions back and becomes a whole-heap comparison.
  Freezing again after them would reset that count where the test could see it.
"""

from __future__ import annotations

import gc
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from .fullheap import FullHeapWindow
from .garbage import garbage, held_by_modules
from .heap import (
    WindowResult,
    classify,
    count_by_type,
    look_up,
    pick,
    real_collect,
    real_freeze,
    real_get_objects,
    real_unfreeze,
)
from .permanent import permanent
from .running import pool_of
from .watch import WatchFilter
from .wrappers import transparent

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
        permanent.taken_over()
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
# checked test) would unfreeze the outer one's objects. ``lock`` is held while one is opened.
lock = threading.Lock()
_active = False


def active() -> bool:
    """Whether a frozen window is open in this process."""
    return _active


def _workers_of_old_pools(
    objects: list[Any], root_ids: set[int], young: list[Any]
) -> dict[int, int | None]:
    """Worker threads that a thread pool made before the window started during it.

    A pool starts its workers lazily, on its first jobs: a class-level pool kept on purpose
    (asgiref's) starts one in whichever test uses it first. That thread is the pool's, not the
    test's. Only the frozen window can tell an old pool from a new one (it is not young).
    Returns their ids and thread idents.
    """
    workers = [(o, pool) for o in objects if id(o) in root_ids and (pool := pool_of(o))]
    if not workers:
        return {}
    young_pools = set(map(id, pick(young, {id(pool) for _, pool in workers})))
    old = {
        id(thread): getattr(thread, "ident", None)
        for thread, pool in workers
        if id(pool) not in young_pools
    }
    workers.clear()
    return old


class _GcPatch:
    """The ``gc`` module's functions replaced by the wrappers, and put back."""

    def __init__(self) -> None:
        self._saved: dict[str, Callable[..., Any]] = {}

    def install(self) -> None:
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

    def uninstall(self, keep: tuple[str, ...] = ()) -> None:
        for name, real in list(self._saved.items()):
            if name in keep:
                continue
            current = getattr(gc, name, None)
            # A test may have replaced the attribute itself (monkeypatch); leave its value alone
            # unless it is still ours.
            if getattr(current, "__leakcheck_wrapper__", False):
                setattr(gc, name, real)
            del self._saved[name]


class FrozenWindow:
    """Freeze the old heap so that the end of the window looks only at what is new."""

    mode = "frozen"

    def __init__(self, watch: WatchFilter, others: int = 0) -> None:
        global _active
        self._watch = watch
        # What the permanent generation held before: the interpreter's own (see ``permanent``).
        self._others = others
        self._lock = threading.RLock()
        self._degraded: FullHeapWindow | None = None
        self._patch = _GcPatch()
        # Ids of watched objects and roots made before a thaw, which then froze them again.
        self._thawed_ids: set[int] = set()
        self._young_at_thaw = 0
        self.thaws = 0
        self._thaw_depth = 0
        real_freeze()
        _active = True
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
        self._patch.install()

    def _uninstall(self, keep: tuple[str, ...] = ()) -> None:
        global _current
        if _current is self and not keep:
            _current = None
        self._patch.uninstall(keep)

    def _unfreeze(self) -> None:
        real_unfreeze()
        permanent.unfrozen_by_window(self._others)

    def freeze_count(self, real: Callable[[], int]) -> int:
        """``gc.get_freeze_count()`` as the test would see it without the window."""
        with self._lock:
            if self._frozen and self._thaw_depth == 0:
                return permanent.count(self._others)
        return permanent.count(real())

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
                    self._others = permanent.others()
                    real_freeze()

    def _note_young(self) -> None:
        young = real_get_objects()
        watched, rooted = classify(young, self._watch)
        self._young_at_thaw += len(young)
        del young
        self._thawed_ids |= watched | rooted
        self.thaws += 1

    def degrade(self) -> None:
        """Turn this window into a full-heap one, from now on, with the same notion of "before"."""
        global _active
        with self._lock:
            if not self._frozen:
                return
            if self._thaw_depth == 0:
                young = real_get_objects()
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
            _active = self._frozen = False
            everything = real_get_objects()
            old_watched, old_roots = classify(everything, self._watch)
            new = new_watched | new_roots | self._thawed_ids
            old = (old_watched | old_roots) - new
            self._degraded = FullHeapWindow(
                self._watch, before=old, objects_before=len(everything) - young_count
            )
            del everything

    def close(self) -> WindowResult:
        """End the window: what it made that is still alive (watched objects and roots)."""
        global _active
        with self._lock:
            if self._degraded is not None:
                self._uninstall()
                return self._degraded.close()
            if self._thaw_depth:
                # Another thread is inside a gc call: the heap is unfrozen under us.
                self.degrade()
                assert self._degraded is not None
                return self.close()
            self._uninstall()
            if self._thawed_ids:
                return self._close_thawed()
            try:
                return self._close_young()
            finally:
                self._unfreeze()
                _active = self._frozen = False

    def _close_young(self) -> WindowResult:
        """Only the young generations are walked: the old heap is still frozen. The collection
        comes only when something watched is among them (it may be garbage): most clean tests
        leave nothing of interest, and skipping it halves their cost. ``objects_added`` then
        counts young garbage not yet collected."""
        young = real_get_objects()
        ids, root_ids = classify(young, self._watch)
        if not ids and not root_ids:
            return WindowResult(objects_added=len(young))
        candidates = ids | root_ids
        del young
        real_collect()
        young = real_get_objects()
        # Only what was there before the collection can be left: look those ids up in C, and
        # check them again (a finalizer may have reused an id).
        again = pick(young, candidates)
        ids, root_ids = classify(again, self._watch)
        pooled = _workers_of_old_pools(again, root_ids, young)
        root_ids -= pooled.keys()
        result = WindowResult(
            survivor_ids=ids,
            root_ids=root_ids,
            # Handed over now: finding them again later would walk the whole heap.
            found=pick(again, ids | root_ids),
            objects_added=len(young),
            pool_threads=frozenset(i for i in pooled.values() if i is not None),
        )
        del young
        again.clear()
        return result

    def _close_thawed(self) -> WindowResult:
        """The end of a window that a gc call thawed: what it made before the thaw is frozen
        with the old heap, so the noted ids are looked up over the whole heap. A collection of
        the whole heap runs only if one of them is still there and is not proven garbage from
        reference counts; most tests let go of their objects by then, and that collection is
        the costly part."""
        global _active
        try:
            young = real_get_objects()
            watched, rooted = classify(young, self._watch)
            objects_added = len(young) + self._young_at_thaw
            if watched or rooted:
                del young
                real_collect()  # the young generations only: the old heap is still frozen
                young = real_get_objects()
                watched, rooted = classify(young, self._watch)
            del young
            wanted = watched | rooted | self._thawed_ids
        finally:
            self._unfreeze()
            _active = self._frozen = False
        found = look_up(wanted)
        # An id noted at the thaw may name an object made since, of any type (the plugin's
        # own, pytest's): only a watched one or a root matters, and only they need the proof.
        ids, root_ids = classify(found, self._watch)
        found = pick(found, ids | root_ids)
        thawed = [o for o in found if id(o) in self._thawed_ids]
        gone = garbage(thawed, found) if thawed else set()
        unproven = [o for o in thawed if id(o) not in gone]
        alive = held_by_modules(unproven) if unproven else set()
        unproven.clear()
        if len(gone) + len(alive) < len(thawed):
            # Frozen since the thaw, neither proven garbage nor held by a module, they may
            # still be garbage that the proof could not tell (a cycle through a big container,
            # an object held by garbage it does not reach): the whole heap is collected to tell
            # (the costly part).
            thawed.clear()
            found.clear()
            real_collect()
            found = look_up(wanted)
        elif gone:
            found = [o for o in found if id(o) not in gone]
        thawed.clear()
        # An id may now name a later object: still the block's, but is it watched?
        ids, root_ids = classify(found, self._watch)
        result = WindowResult(
            survivor_ids=ids,
            root_ids=root_ids,
            found=pick(found, ids | root_ids),
            objects_added=objects_added,
        )
        found.clear()
        self._thawed_ids.clear()
        return result

    def sample(self) -> tuple[int, Counter[str]]:
        with self._lock:
            if self._thawed_ids and self._degraded is None:
                # Counting by type needs every new object in view: what a thaw froze is not.
                self.degrade()
            if self._degraded is not None:
                return self._degraded.sample()
            real_collect()  # the young generations only, as at the end of the window
            young = real_get_objects()
            try:
                return len(young), count_by_type(young, self._watch, set())
            finally:
                del young

    def abort(self) -> None:
        """Undo the freeze and the wrappers without looking at anything (the error path)."""
        global _active
        with self._lock:
            self._uninstall()
            if self._frozen:
                self._unfreeze()
                _active = self._frozen = False
