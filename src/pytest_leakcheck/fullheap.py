"""The whole-heap window: compare the watched instances of the heap before and after.

It costs a walk over the heap (what the collector does not keep frozen) at each end, and is used
where freezing cannot be had or trusted: the free-threaded build, an application that keeps its own
objects frozen, a nested check, a test that calls the ``gc`` module (a frozen window then degrades
into this one), or on request.
"""

from __future__ import annotations

from collections import Counter

from .garbage import garbage, held_by_modules
from .heap import (
    WindowResult,
    classify,
    count_by_type,
    look_up,
    pick,
    real_collect,
    real_get_objects,
)
from .watch import WatchFilter


class FullHeapWindow:
    mode = "full-heap"

    def __init__(
        self,
        watch: WatchFilter,
        before: set[int] | None = None,
        objects_before: int = 0,
        reason: str = "",
    ) -> None:
        # ``objects_before`` counts the heap the comparison starts from; whole-heap walks are
        # this window's price anyway.
        self._watch = watch
        self.reason = reason  # why no frozen window was used, when one was wanted
        if before is None:
            objects = real_get_objects()
            watched, rooted = classify(objects, watch)
            before = watched | rooted
            objects_before = len(objects)
            del objects
        self._before = before
        self.objects_before = objects_before

    def close(self) -> WindowResult:
        """What the window made that is still alive. A collection of the whole heap (the costly
        part on a big heap) runs only when one of the new objects is neither proven garbage
        from reference counts nor held by a module; ``objects_added`` then counts garbage not
        yet collected, as a frozen window's does."""
        objects = real_get_objects()
        watched, rooted = classify(objects, self._watch)
        watched -= self._before
        rooted -= self._before
        objects_added = len(objects) - self.objects_before
        candidates = watched | rooted
        found = pick(objects, candidates) if candidates else []
        del objects
        if found:
            gone = garbage(found)
            rest = [o for o in found if id(o) not in gone]
            found.clear()
            if len(held_by_modules(rest)) < len(rest):
                rest.clear()
                real_collect()
                rest = look_up(candidates)
            found = rest
        # A finalizer may have reused an id since: only watched objects and roots count.
        watched, rooted = classify(found, self._watch)
        result = WindowResult(
            survivor_ids=watched,
            root_ids=rooted,
            found=pick(found, watched | rooted),
            objects_added=objects_added,
        )
        found.clear()
        return result

    def sample(self) -> tuple[int, Counter[str]]:
        """Without ending the window: tracked objects added, and new watched ones by type."""
        real_collect()
        objects = real_get_objects()
        added = len(objects) - self.objects_before
        return added, count_by_type(objects, self._watch, self._before)
