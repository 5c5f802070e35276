"""Whether threads that other tests left alive can hold any of a test's survivors.

A survivor held by what an earlier test left running is that test's, not the checked test's, and
only a walk from the survivor to its root tells: so while such a thread is alive, the check walks
every survivor, whatever its time budget. On a big heap each walk costs a heap pass, and a suite
whose earlier tests left idle workers (a thread cache's, a loop's thread that a fixture keeps)
paid it on every check with survivors. This looks the other way, from the threads: their frames
and their ``Thread`` objects, forward, a bounded number of objects. When that walk ends without
meeting a survivor, those threads hold none of them, and the budget stands.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Set
from itertools import chain

from .frames import local_values
from .garbage import module_namespaces, too_big
from .retention import is_stop

# Objects looked at, at most. An idle thread reaches about 30, a thread running an asyncio loop
# about 60 (3.10 and 3.13); past this, the threads are taken to hold the survivors (the walk
# that follows is the one that was due anyway).
LIMIT = 20_000


def threads_hold(idents: Set[int], objects: list[object]) -> bool:
    """Whether the threads ``idents`` may hold any of ``objects``: reached from their frames'
    locals or their ``Thread`` objects, or too much is reachable to tell. Modules and their
    namespaces are not walked through: what they hold is theirs, not the threads'."""
    wanted = {id(o) for o in objects}
    if not wanted or not idents:
        return False
    own = threading.get_ident()
    frames = sys._current_frames()
    try:
        # Never this thread's own frame: held in a local, it would make a cycle through the
        # caller's locals (the survivors among them).
        tops = [f for ident, f in frames.items() if ident in idents and ident != own]
    finally:
        frames.clear()
    start: list[object] = [*tops]
    start.extend(chain.from_iterable(map(local_values, tops)))
    tops.clear()
    start.extend(t for t in threading.enumerate() if t.ident in idents)
    try:
        return _reaches(start, wanted)
    finally:
        start.clear()


def _reaches(start: list[object], wanted: set[int]) -> bool:
    stops = module_namespaces()
    seen: set[int] = set()
    todo: list[object] = []
    batch = start
    try:
        while True:
            for ref in batch:
                key = id(ref)
                if key in wanted:
                    return True
                if key in seen or key in stops or not gc.is_tracked(ref) or is_stop(ref):
                    continue
                if too_big(ref) or len(seen) >= LIMIT:
                    return True  # cannot tell: as if held
                seen.add(key)
                todo.append(ref)
            ref = None
            if not todo:
                return False
            batch = gc.get_referents(todo.pop())
    finally:
        todo.clear()
        batch = []
