"""Retained size: what a group of survivors keeps alive that nothing else does.

Two passes over what the survivors reach, both with ``gc.get_referents`` on whole batches:

1. collect the containers reachable from the survivors (not walking into modules, classes, frames
   and code, which are shared by nature), counting how many references to each come from inside
   that set;
2. a container whose reference count is larger than its inside references is held from outside
   as well: it is shared, and so is whatever is reachable only through it. The retained set is
   what the survivors reach without passing through a shared container.

A leaked object often holds millions of small leaves (the seed's ``User`` holds a list of a
million strings). Leaves (strings, numbers, bytes: objects the collector does not track) are not
put in any table: a leaf counts when its only reference is the one owned container that lists
it, which its reference count tells. The per-object work is done by C iterators (``map``,
``filter``, ``compress``, set operations) rather than by Python loops.

Sizes are what pympler's ``asizeof`` counts: ``asizeof.flatsize`` for the containers, and for
leaves the same rounded ``sys.getsizeof`` figure computed in C; ``tests/test_sizes.py`` compares
the result with ``asizeof.asizeof`` itself.
"""

from __future__ import annotations

import gc
import operator
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, filterfalse, repeat

from pympler import asizeof

_STOP_TYPES = (types.ModuleType, type, types.FrameType, types.CodeType)
_ALIGN = 8
_PYMPLER_AT_MOST = 20_000
_flatsize: Callable[[object], int] = asizeof.flatsize  # pympler is untyped
# Containers the collector stops tracking once they hold only leaves.
_UNTRACKED_CONTAINERS = frozenset({tuple, dict})


@dataclass(frozen=True)
class Retained:
    bytes: int
    objects: int
    complete: bool  # False when the walk stopped at its object limit
    # Of the ids the caller asked about (``contains``), those among what is retained.
    holds: frozenset[int] = frozenset()


def _containers_total(objects: list[object]) -> int:
    """pympler's flat size of each container; its aligned ``sys.getsizeof`` when there are many.

    ``asizeof.flatsize`` costs microseconds an object, so past a bound the same figure comes
    from C: for the types checked in tests/test_sizes.py the two agree.
    """
    if len(objects) <= _PYMPLER_AT_MOST:
        return sum(map(_pympler_flat, objects))
    return sum(map(_aligned, objects))


def _pympler_flat(obj: object) -> int:
    try:
        return int(_flatsize(obj))
    except Exception:  # a class whose metaclass or __sizeof__ raises
        return _aligned(obj)


def _aligned(obj: object) -> int:
    try:
        size = sys.getsizeof(obj)
    except Exception:
        size = object.__basicsize__
    return (size + _ALIGN - 1) & -_ALIGN


def _leaves_total(objects: Iterable[object]) -> int:
    # asizeof.asizeof rounds every object, strings included, up to the alignment.
    sizes = map(sys.getsizeof, objects)
    return sum(map(operator.and_, map(operator.add, sizes, repeat(_ALIGN - 1)), repeat(-_ALIGN)))


def retained_size(
    roots: Sequence[object],
    *,
    caller_refs: Mapping[int, int] | None = None,
    contains: frozenset[int] = frozenset(),
    max_objects: int = 5_000_000,
) -> Retained:
    """The bytes and number of objects that only ``roots`` keep alive (roots included).

    ``caller_refs`` says how many references the caller itself holds to some objects (the
    checker's lists of survivors): those do not make an object shared. ``contains``: ids to tell
    the caller about, whether each is among what ``roots`` retain (other survivors: what a group
    retains may be another group).
    """
    reached: dict[int, object] = {id(o): o for o in roots}
    inside: Counter[int] = Counter()
    complete = True
    try:
        frontier = list(reached.values())
        while frontier:
            refs = gc.get_referents(*frontier)
            # Untracked objects (leaves, and tuples or dicts of leaves) never hold a container.
            # type(), not isinstance(): a proxy's __class__ is the tested code's, and may raise.
            tracked = [
                o for o in filter(gc.is_tracked, refs) if not issubclass(type(o), _STOP_TYPES)
            ]
            del refs
            ids = list(map(id, tracked))
            inside.update(ids)
            found = dict(zip(ids, tracked, strict=True))
            del ids, tracked
            for key in found.keys() & reached.keys():
                del found[key]
            reached.update(found)
            frontier = list(found.values())
            found.clear()
            if len(reached) > max_objects:
                complete = False
                break
        frontier = []
        shared = _held_from_outside(reached, inside, caller_refs or {})
        return _owned_size(roots, reached, shared, complete, contains)
    finally:
        reached.clear()


def _held_from_outside(
    reached: dict[int, object], inside: Counter[int], caller_refs: Mapping[int, int]
) -> set[int]:
    """Ids of containers with more references than the reached set accounts for."""
    # Calibrate what this counting itself adds (the dict entry, the call's argument) with an
    # object that only the dict and the ``probe`` variable refer to.
    probe = object()
    reached[id(probe)] = probe
    try:
        keys = list(reached.keys())
        counts = list(map(sys.getrefcount, reached.values()))
    finally:
        del reached[id(probe)]
    baseline = counts[keys.index(id(probe))] - 1  # minus the ``probe`` variable
    for key, extra in caller_refs.items():
        inside[key] += extra
    outside = map(operator.sub, counts, map(inside.__getitem__, keys))
    return set(compress(keys, map(operator.gt, outside, repeat(baseline))))


def _owned_size(
    roots: Sequence[object],
    reached: dict[int, object],
    shared: set[int],
    complete: bool,
    contains: frozenset[int],
) -> Retained:
    owned: dict[int, object] = {id(o): o for o in roots}
    frontier = list(owned.values())
    leaf_bytes = leaf_count = 0
    while frontier:
        refs = gc.get_referents(*frontier)
        new = set(map(id, filter(gc.is_tracked, refs))) & reached.keys()
        new -= shared
        new -= owned.keys()
        untracked = list(filterfalse(gc.is_tracked, refs))
        del refs
        size, count, containers = _owned_leaves(untracked)
        untracked.clear()
        leaf_bytes += size
        leaf_count += count
        frontier = list(map(reached.__getitem__, new))
        owned.update(zip(new, frontier, strict=True))
        frontier.extend(containers)
    total = _containers_total(list(owned.values())) + leaf_bytes
    holds = frozenset(contains & owned.keys())
    return Retained(total, len(owned) + leaf_count, complete, holds)


def _owned_leaves(untracked: list[object]) -> tuple[int, int, list[object]]:
    """Size the untracked objects that only owned containers refer to.

    A leaf listed ``k`` times in this batch (``k`` references from the owned containers being
    expanded) is theirs alone when its reference count is those ``k``, plus the ``k`` entries of
    ``untracked`` and the call's argument. Returns the bytes, the number of such objects, and
    those of them that are containers themselves (an untracked tuple of strings), whose contents
    the caller walks next.
    """
    probe = object()
    untracked.append(probe)
    counts = list(map(sys.getrefcount, untracked))
    untracked.pop()
    # The probe: one list entry, the argument and the ``probe`` variable, as a leaf with k == 1.
    single = counts.pop()
    # The common case, a leaf listed once: compare in C, no table per leaf.
    leaves = list(compress(untracked, map(operator.eq, counts, repeat(single))))
    # The rest is shared, or listed several times by owned containers (k > 1).
    rest = list(compress(untracked, map(operator.ne, counts, repeat(single))))
    if rest:
        rest_counts = list(map(sys.getrefcount, rest))  # one more: the ``rest`` list
        listed = Counter(map(id, rest))
        for obj, count in zip(rest, rest_counts, strict=True):
            k = listed.get(id(obj), 0)
            if k > 1 and count == single + 3 * (k - 1) + 1:
                leaves.append(obj)
                listed[id(obj)] = 0  # count it once
        rest.clear()
    kinds = map(_UNTRACKED_CONTAINERS.__contains__, map(type, leaves))
    return _leaves_total(leaves), len(leaves), list(compress(leaves, kinds))
