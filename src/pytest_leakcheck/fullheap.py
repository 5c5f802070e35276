"""The whole-heap window: compare the watched instances of the heap before and after.

It costs a walk over the heap (what the collector does not keep frozen) at each end, and is used
where freezing cannot be had or trusted: the free-threaded build, an application that keeps its own
objects frozen, a nested check, a test that calls the ``gc`` module (a frozen window then degrades
into this one), or on request.
"""

from __future__ import annotations

from collections import Counter

from .heap import (
    WindowResult,
    classify,
    count_by_type,
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
        objects = real_get_objects()
        watched, rooted = classify(objects, self._watch)
        watched -= self._before
        rooted -= self._before
        if watched or rooted:
            # Only now is a full collection worth its cost: something new may be garbage.
            candidates = watched | rooted
            del objects
            real_collect()
            objects = real_get_objects()
            watched, rooted = classify(pick(objects, candidates), self._watch)
        result = WindowResult(
            survivor_ids=watched,
            root_ids=rooted,
            found=pick(objects, watched | rooted),
            objects_added=len(objects) - self.objects_before,
        )
        del objects
        return result

    def sample(self) -> tuple[int, Counter[str]]:
        """Without ending the window: tracked objects added, and new watched ones by type."""
        real_collect()
        objects = real_get_objects()
        added = len(objects) - self.objects_before
        return added, count_by_type(objects, self._watch, self._before)
