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
``unfreeze``, ``get_freeze_count``, ``get_count``) are replaced by wrappers that first *degrade* the
window: they note which watched objects are old, unfreeze, put the real functions back and then run
the call as the test expected. A test that pokes the collector pays one walk over the heap, the
price it would pay for that call anyway; every other test keeps the cheap path.
"""

from __future__ import annotations

import gc
import sysconfig
import threading
from collections import Counter
from collections.abc import Callable
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


def _degrade_then(real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    window = _current
    if window is not None:
        window.degrade()
    return real(*args, **kwargs)


def _wrap(real: Callable[..., Any]) -> Callable[..., Any]:
    """A gc function that first degrades the frozen window, if one is open, then runs."""
    return transparent(_degrade_then, real)


_SHARED_WRAPPERS = {name: _wrap(getattr(gc, name)) for name in _INTERCEPTED}
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
    found: list[object]  # after close: those objects and the watched survivors; the caller clears

    def close(self) -> set[int]:
        """End the window and return the ids of watched objects it made that are still alive."""

    def sample(self) -> tuple[int, Counter[str]]:
        """Without ending the window: tracked objects in the heap, and new watched ones by type."""


def collect_all() -> None:
    _real_collect()


def find_by_id(ids: set[int]) -> list[object]:
    """The live objects with these ids, after a full collection: a heap walk, leak path only."""
    _real_collect()
    return [o for o in _real_get_objects() if id(o) in ids]


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


def _pick(objects: list[Any], ids: set[int]) -> list[object]:
    return [o for o in objects if id(o) in ids] if ids else []


def _count_by_type(objects: list[Any], watch: WatchFilter, skip: set[int]) -> Counter[str]:
    cache = watch.new_cache()
    is_watched = watch.is_watched
    types = Counter(type(o) for o in objects if is_watched(type(o), cache) and id(o) not in skip)
    return Counter({qualified_name(tp): n for tp, n in types.items()})


class FullHeapWindow:
    """Compare the watched instances of the whole heap before and after."""

    mode = "full-heap"

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
        self._objects_before = objects_before
        self.objects_added = 0
        self.root_ids: set[int] = set()
        self.found: list[object] = []

    def close(self) -> set[int]:
        _real_collect()
        objects = _real_get_objects()
        self.objects_added = len(objects) - self._objects_before
        watched, rooted = classify(objects, self._watch)
        self.root_ids = rooted - self._before
        watched -= self._before
        self.found = _pick(objects, watched | self.root_ids)
        return watched

    def sample(self) -> tuple[int, Counter[str]]:
        _real_collect()
        objects = _real_get_objects()
        added = len(objects) - self._objects_before
        return added, _count_by_type(objects, self._watch, self._before)


class FrozenWindow:
    """Freeze the old heap so that the end of the window looks only at what is new."""

    mode = "frozen"

    def __init__(self, watch: WatchFilter) -> None:
        global _frozen_active
        self._watch = watch
        self._lock = threading.RLock()
        self._degraded: FullHeapWindow | None = None
        self._saved: dict[str, Callable[..., Any]] = {}
        _real_freeze()
        _frozen_active = True
        # Not gc.get_freeze_count(): it walks the frozen list, a walk over the whole heap.
        self.objects_added = 0
        self.found: list[object] = []
        self.root_ids: set[int] = set()
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
            wrapper = shared if real is getattr(shared, "__wrapped__", None) else _wrap(real)
            setattr(gc, name, wrapper)

    def _uninstall(self) -> None:
        global _current
        if _current is self:
            _current = None
        for name, real in self._saved.items():
            current = getattr(gc, name, None)
            # A test may have replaced the attribute itself (monkeypatch); leave its value alone
            # unless it is still ours.
            if getattr(current, "__leakcheck_wrapper__", False):
                setattr(gc, name, real)
        self._saved.clear()

    def degrade(self) -> None:
        """Turn this window into a full-heap one, from now on, with the same notion of "before"."""
        global _frozen_active
        with self._lock:
            if not self._frozen:
                return
            young = _real_get_objects()
            new_watched, new_roots = classify(young, self._watch)
            young_count = len(young)
            del young
            self._uninstall()
            _real_unfreeze()
            _frozen_active = self._frozen = False
            everything = _real_get_objects()
            old_watched, old_roots = classify(everything, self._watch)
            old = (old_watched - new_watched) | (old_roots - new_roots)
            self._degraded = FullHeapWindow(
                self._watch, before=old, objects_before=len(everything) - young_count
            )
            del everything

    def close(self) -> set[int]:
        global _frozen_active
        with self._lock:
            if self._degraded is not None:
                ids = self._degraded.close()
                self.objects_added = self._degraded.objects_added
                self.root_ids = self._degraded.root_ids
                self.found = self._degraded.found
                return ids
            self._uninstall()
            try:
                # Only the young generations are walked: the old heap is still frozen.
                _real_collect()
                young = _real_get_objects()
                ids, self.root_ids = classify(young, self._watch)
                self.objects_added = len(young)
                # Handed over now, from the young objects: finding them again later would be a
                # walk over the whole heap.
                self.found = _pick(young, ids | self.root_ids)
                del young
            finally:
                _real_unfreeze()
                _frozen_active = self._frozen = False
            return ids

    def sample(self) -> tuple[int, Counter[str]]:
        with self._lock:
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
            if self._frozen:
                self._uninstall()
                _real_unfreeze()
                _frozen_active = self._frozen = False


def _free_threaded() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _freeze_hides_old_objects() -> bool:
    """Probe once that this interpreter's gc.freeze() behaves as the frozen window assumes."""

    class _Probe:
        pass

    old = _Probe()
    _real_freeze()
    try:
        new = _Probe()
        young = _real_get_objects()
        ok = any(o is new for o in young) and not any(o is old for o in young)
        del young, new
    finally:
        _real_unfreeze()
    return ok


def frozen_usable() -> bool:
    global _freeze_probe_result
    if _free_threaded() or _frozen_active or _real_get_freeze_count() != 0:
        return False
    if _freeze_probe_result is None:
        _freeze_probe_result = _freeze_hides_old_objects()
    return _freeze_probe_result


def open_window(watch: WatchFilter, *, mode: str = "auto") -> FrozenWindow | FullHeapWindow:
    """Start watching. ``mode``: ``"auto"`` (frozen where usable) or ``"full-heap"``."""
    with _frozen_lock:
        if mode != "full-heap" and frozen_usable():
            return FrozenWindow(watch)
    return FullHeapWindow(watch)
