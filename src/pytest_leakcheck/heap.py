"""Questions to the collector about the heap, and what a window hands back when it closes.

The ``gc`` functions are saved at import: while a frozen window is open the module's attributes
are wrappers (``frozen``), and the checker itself must never go through them. The per-object work
is done by C iterators (``map``, ``compress``, set operations); Python looks at each distinct type
once.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from .running import is_root_type, maybe_pending
from .watch import WatchFilter, qualified_name

real_collect = gc.collect
real_get_objects = gc.get_objects
real_freeze = gc.freeze
real_unfreeze = gc.unfreeze
real_get_freeze_count = gc.get_freeze_count


@dataclass
class WindowResult:
    """What a closed window found. ``found`` holds the live objects themselves, so that the
    checker need not walk the heap again to find them: the caller must clear it."""

    survivor_ids: set[int] = field(default_factory=set)  # watched objects made and still alive
    root_ids: set[int] = field(default_factory=set)  # timers, threads, tasks... made and pending
    found: list[object] = field(default_factory=list)  # the objects of both
    objects_added: int = 0  # tracked objects the window made that are still alive
    # Idents of worker threads that a thread pool older than the window started during it.
    pool_threads: frozenset[int] = frozenset()


def collect_all() -> None:
    real_collect()


def classify(objects: list[Any], watch: WatchFilter) -> tuple[set[int], set[int]]:
    """Ids of watched instances, and of timers, threads, handles, tasks and events that may
    still be pending."""
    types = list(map(type, objects))
    cache = watch.new_cache()
    watched_types: set[type] = set()
    root_types: set[type] = set()
    for tp in set(types):
        if watch.is_watched(tp, cache):
            watched_types.add(tp)
        if is_root_type(tp):
            root_types.add(tp)
    watched: set[int] = set()
    rooted: set[int] = set()
    if watched_types:
        watched = set(map(id, compress(objects, map(watched_types.__contains__, types))))
    if root_types:
        candidates = compress(objects, map(root_types.__contains__, types))
        rooted = {id(o) for o in candidates if maybe_pending(o)}
    return watched, rooted


def pick(objects: list[Any], ids: Container[int]) -> list[object]:
    """Those of ``objects`` whose id is in ``ids``, picked in C: no Python code per object."""
    return list(compress(objects, map(ids.__contains__, map(id, objects))))


def look_up(wanted: Container[int]) -> list[object]:
    """The live objects with these ids: one pass over the heap."""
    return pick(real_get_objects(), wanted)


def followed(objects: Iterable[object]) -> dict[int, int]:
    """What ``find_by_id`` takes: each object's id, and its type's id. Never the type itself: a
    class made by the test holds what its methods close over (the test case, and through what
    it keeps, the very objects followed), so holding it across the collection kept them alive."""
    return {id(o): id(type(o)) for o in objects}


def find_by_id(expected: Mapping[int, int]) -> list[object]:
    """The live objects with these ids and types (``followed``), after a full collection: a heap
    walk, leak path only. The type is checked because an id freed since may name a new object
    now (once it was a list the checker itself had just made)."""
    real_collect()
    return [o for o in look_up(expected.keys()) if id(type(o)) == expected[id(o)]]


def count_by_type(objects: list[Any], watch: WatchFilter, skip: set[int]) -> Counter[str]:
    cache = watch.new_cache()
    is_watched = watch.is_watched
    types = Counter(type(o) for o in objects if is_watched(type(o), cache) and id(o) not in skip)
    return Counter({qualified_name(tp): n for tp, n in types.items()})
