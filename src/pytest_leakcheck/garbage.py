"""Proving that survivors are garbage without a full collection.

A window collects the young generations only, with the old heap frozen. A cycle that runs through
an object older than the window (a test case instance, a loop made by a fixture) is garbage once
nothing else holds it, yet it survives that collection: only a full collection would free it, and
a full collection costs tens of milliseconds on a real suite's heap, for every such test.

This runs the collector's own test on a small part of the heap instead: the objects reachable from
the survivors. For each of them, the references that come from inside that part are subtracted
from its reference count; what is left over comes from outside (a module, a running frame, C). An
object with a reference from outside is alive, and so is everything it reaches; whatever is left is
what a full collection would free. Any part of the heap gives a sound answer: an object whose
referrer was not looked at seems held from outside, so a bound on the part can only leave garbage
unproven, never call a live object garbage.
"""

from __future__ import annotations

import gc
import sys
import sysconfig
import types
from collections.abc import Callable
from itertools import chain, compress
from typing import Any

from .retention import is_stop

# Objects looked at per proof. A cycle through a test case and its loop takes a few hundred; a
# survivor held by a live timer reaches this bound through the threading module's tables.
LIMIT = 5000

# A container with more items than this is left out (as if held from outside): sound, and cheap.
BIG = 1000
# With each, its own length: a subclass's __len__ is the tested code's to run, not the check's.
_LENGTHS: tuple[tuple[type, Callable[[Any], int]], ...] = (
    (list, list.__len__),
    (tuple, tuple.__len__),
    (dict, dict.__len__),
    (set, set.__len__),
    (frozenset, frozenset.__len__),
)

# Free-threaded builds count some references lazily (deferred reference counts): a reference
# count there may be lower than the references that exist, and the test above would be unsound.
AVAILABLE = not sysconfig.get_config_var("Py_GIL_DISABLED")

# Our own references to each object while its count is read: the table's value, the loop
# variable and the argument of sys.getrefcount.
_OWN = 3


def garbage(*candidates: list[object]) -> set[int]:
    """Ids of the objects in these lists that a full collection would free. The lists are the
    caller's: their references are not the program's."""
    if not AVAILABLE:
        return set()
    wanted = [o for found in candidates for o in found if gc.is_tracked(o)]
    if not wanted:
        return set()
    # Another thread that moved a reference out of a container looked at into one of its
    # locals between the two counts would make what it holds look like garbage: other threads
    # wait (a long switch interval keeps the GIL here; the proof takes milliseconds).
    previous = sys.getswitchinterval()
    sys.setswitchinterval(max(previous, 30.0))
    nodes: dict[int, object] = {}
    try:
        nodes = _reachable(wanted)
        outside = _referenced_from_outside(nodes, [wanted, *candidates])
        alive = _alive(nodes, outside)
        return {id(o) for o in wanted if id(o) not in alive}
    finally:
        nodes.clear()
        wanted.clear()
        sys.setswitchinterval(previous)


def _reachable(start: list[object]) -> dict[int, object]:
    """Tracked objects reachable from ``start``, up to ``LIMIT``; not modules, module
    namespaces or classes defined at module level: they are held by their module, and what they
    refer to is reachable through them anyway."""
    stops = module_namespaces()
    nodes: dict[int, object] = {id(o): o for o in start}
    todo = list(start)
    while todo and len(nodes) < LIMIT:
        for ref in gc.get_referents(todo.pop()):
            key = id(ref)
            if key in nodes or key in stops or not gc.is_tracked(ref) or _stop(ref):
                continue
            nodes[key] = ref
            todo.append(ref)
    todo.clear()
    return nodes


def module_namespaces() -> set[int]:
    """Ids of the namespaces of the modules in ``sys.modules``: a forward walk does not go
    through them (what a module holds is the module's)."""
    return {
        id(vars(m)) for m in list(sys.modules.values()) if issubclass(type(m), types.ModuleType)
    }


def _stop(obj: object) -> bool:
    return too_big(obj) or is_stop(obj)  # where the search for a root stops too


def too_big(obj: object) -> bool:
    """A container with more than ``BIG`` items: a user's million strings, which would cost
    more to look at one by one than a full collection."""
    kind = type(obj)  # not isinstance(): a proxy's __class__ is the tested code's, and may raise
    for base, length in _LENGTHS:
        if issubclass(kind, base):
            return length(obj) > BIG
    return False


def _referenced_from_outside(nodes: dict[int, object], held: list[list[object]]) -> list[int]:
    """Ids of the nodes with more references than the nodes and ``held`` account for."""
    inside = dict.fromkeys(nodes, 0)
    for container in [*nodes.values(), *held]:
        for ref in gc.get_referents(container):
            key = id(ref)
            if key in inside:
                inside[key] += 1
    # Neither loop variable may still name a node while the counts are read.
    container = ref = None
    outside = []
    # Over the values alone: an items() iterator keeps its last pair, a reference of its own.
    for obj in nodes.values():
        if sys.getrefcount(obj) - _OWN > inside[id(obj)]:
            outside.append(id(obj))
    obj = None
    return outside


def _alive(nodes: dict[int, object], outside: list[int]) -> set[int]:
    """The nodes that those referenced from outside reach."""
    alive = set(outside)
    todo = [nodes[key] for key in outside]
    while todo:
        for ref in gc.get_referents(todo.pop()):
            key = id(ref)
            if key in nodes and key not in alive:
                alive.add(key)
                todo.append(ref)
    return alive


# Containers held by modules bigger than this are not looked into (as if they held nothing).
HELD_BIG = 10_000
_CONTAINERS = frozenset(base for base, _ in _LENGTHS)
_CLASS_DICT = type.__dict__["__dict__"]


def held_by_modules(objects: list[object]) -> set[int]:
    """Ids of ``objects`` that are certainly alive: a module global or an attribute of a class
    held by a module, or an item of a container held so (a registry, a class-level cache).
    Modules in ``sys.modules`` are alive, and so is all they hold.

    The other side of the proof above: an object it cannot call garbage is either alive or held
    by garbage it does not reach, and only a full collection told the two apart. One pass over
    the modules' namespaces (no walk of the heap; the per-object work in C) tells it for the
    commonest holder of all.
    """
    wanted = {id(o) for o in objects}
    if not wanted:
        return set()
    values: list[object] = []
    classes: dict[int, type] = {}
    try:
        for module in list(sys.modules.values()):
            if issubclass(type(module), types.ModuleType):
                values.extend(dict.copy(module.__dict__).values())
        # Types are read with type(), never isinstance(): a proxy's __class__ is the tested
        # code's to run.
        kinds = set(map(type, values))
        metas = {kind for kind in kinds if issubclass(kind, type)}
        for cls in compress(values, map(metas.__contains__, map(type, values))):
            classes[id(cls)] = cls  # type: ignore[assignment]
        namespaces = [_CLASS_DICT.__get__(c) for c in classes.values()]
        # (None for some of the interpreter's own types on 3.10.)
        values.extend(chain.from_iterable(n.values() for n in namespaces if n is not None))
        namespaces.clear()
        found = wanted.intersection(map(id, values))
        containers = [
            c
            for c in compress(values, map(_CONTAINERS.__contains__, map(type, values)))
            if len(c) <= HELD_BIG  # type: ignore[arg-type]
        ]
        if containers:
            found.update(wanted.intersection(map(id, gc.get_referents(*containers))))
            containers.clear()
        return found
    except RuntimeError:  # a namespace that another thread changed meanwhile: nothing proven
        return set()
    finally:
        values.clear()
        classes.clear()
