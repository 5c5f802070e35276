"""The code under check cannot tell that it is being checked.

Each test runs the same probe twice, bare and inside a check, and compares what the probe saw.
The frozen window hides the old heap from the collector, so these are the places it could show.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from pytest_leakcheck import check_leaks
from pytest_leakcheck.frozen import MAX_THAWS, FrozenWindow
from pytest_leakcheck.permanent import interpreter_frozen
from pytest_leakcheck.snapshot import open_window
from pytest_leakcheck.watch import WatchFilter

ORIGINAL_GC = {name: getattr(gc, name) for name in dir(gc) if not name.startswith("_")}
HOLDER: list[object] = []


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


class Plain:
    pass


def both_ways(probe: Callable[[], Any]) -> tuple[Any, Any]:
    bare = probe()
    with check_leaks(Node):
        checked = probe()
    return bare, checked


def test_the_default_window_is_frozen_on_this_interpreter() -> None:
    # Otherwise the tests below would prove nothing about the frozen window.
    window = open_window(WatchFilter(rootdir=None))
    try:
        assert isinstance(window, FrozenWindow)
    finally:
        window.close().found.clear()


def test_an_old_cycle_deleted_in_the_block_is_collected_by_gc_collect() -> None:
    def probe() -> bool:
        node = Node()
        ref = weakref.ref(node)
        del node
        gc.collect()
        return ref() is None

    # The Node is made before the window opens when the probe's first line runs outside it.
    old = Node()
    ref = weakref.ref(old)
    with check_leaks(Node):
        del old
        gc.collect()
        gone = ref() is None
    assert gone
    assert both_ways(probe) == (True, True)


def test_gc_get_objects_sees_objects_made_before_the_block() -> None:
    before = Node()
    with check_leaks(Node):
        seen = any(o is before for o in gc.get_objects())
    assert seen


def test_gc_get_objects_counts_the_same_heap() -> None:
    def probe() -> int:
        return len(gc.get_objects())

    bare, checked = both_ways(probe)
    # The check adds a handful of its own objects at most; the frozen heap is not hidden.
    assert abs(checked - bare) < 200, (bare, checked)


def test_gc_get_count_counts_allocations_as_without_the_check() -> None:
    def probe() -> int:
        gc.disable()  # no automatic collection may reset the count in between
        try:
            # Instances, not lists: a list from the free list is not counted as an allocation.
            made = [Plain() for _ in range(20)]  # the count is not zero at the first look
            first = gc.get_count()[0]
            made += [Plain() for _ in range(50)]
            return gc.get_count()[0] - first
        finally:
            gc.enable()

    # On 3.10 a call allocates a frame object unless the code object keeps a spare one from its
    # last call: the first run of the probe counts one more allocation than the next ones.
    probe()
    bare, checked = both_ways(probe)
    assert bare == checked, (bare, checked)


def test_gc_get_referrers_finds_old_holders() -> None:
    target = Node()
    HOLDER.append(target)
    try:
        with check_leaks(Node):
            found = any(r is HOLDER for r in gc.get_referrers(target))
        assert found
    finally:
        HOLDER.clear()


def test_gc_freeze_and_its_count_are_what_they_are_without_the_check() -> None:
    def probe() -> tuple[int, bool, int, int]:
        # A full collection first: on 3.12 it puts the interpreter's own immortal objects back
        # in the permanent generation, where they are in a process that never unfroze anything.
        gc.collect()
        start = gc.get_freeze_count()
        gc.freeze()
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        after = gc.get_freeze_count()
        gc.collect()
        return start, frozen > start, after, gc.get_freeze_count()

    bare, checked = both_ways(probe)
    assert bare == checked
    # 375 on CPython 3.12.1: its collector keeps immortal objects there; 0 elsewhere.
    assert bare == (interpreter_frozen(), True, 0, interpreter_frozen())


def test_gc_get_freeze_count_after_the_window_degraded_is_what_it_is_without_the_check() -> None:
    def probe() -> tuple[int, int]:
        gc.collect()
        seen = len(gc.get_objects())  # degrades the window: the heap is unfrozen under the test
        return seen > 0, gc.get_freeze_count()

    bare, checked = both_ways(probe)
    assert bare == checked == (True, interpreter_frozen())


def test_disable_and_thresholds_set_in_the_block_stay_as_the_test_left_them() -> None:
    threshold = gc.get_threshold()
    try:
        with check_leaks(Node):
            gc.disable()
            gc.set_threshold(1234, 5, 6)
            inside = (gc.isenabled(), gc.get_threshold())
        after = (gc.isenabled(), gc.get_threshold())
    finally:
        gc.enable()
        gc.set_threshold(*threshold)
    assert inside == after == (False, (1234, 5, 6))


def test_a_disabled_collector_stays_disabled_and_leaks_are_still_found() -> None:
    gc.disable()
    try:
        with check_leaks(Node) as check:
            HOLDER.append(Node())
        enabled = gc.isenabled()
    finally:
        gc.enable()
        HOLDER.clear()
    assert not enabled
    assert check.findings is not None and len(check.findings.leaks) == 1


def test_the_gc_module_is_left_exactly_as_it_was() -> None:
    with check_leaks(Node):
        pass
    with check_leaks(Node):
        gc.collect()  # the degraded path puts the functions back too
    assert {name: getattr(gc, name) for name in ORIGINAL_GC} == ORIGINAL_GC
    assert gc.get_freeze_count() <= interpreter_frozen()


def test_a_test_that_monkeypatches_gc_collect_keeps_its_patch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in a checked pytest test: the monkeypatch fixture is undone inside the window.
    calls: list[int] = []
    with check_leaks(Node):
        monkeypatch.setattr(gc, "collect", lambda *a: calls.append(1) or 0)
        gc.collect()
        monkeypatch.undo()
    assert calls == [1]
    assert gc.collect is ORIGINAL_GC["collect"]


def test_leaks_are_found_after_the_test_pokes_the_collector() -> None:
    with check_leaks(Node) as thawed:
        HOLDER.append(Node())
        garbage = Node()
        del garbage  # a cycle: the test's own gc.collect() frees it, and it is not reported
        gc.collect()
        HOLDER.append(Node())
    HOLDER.clear()
    assert thawed.findings is not None
    assert thawed.findings.mode == "frozen (thawed around 1 gc call(s) of the test)"
    assert [g.count for g in thawed.findings.leaks] == [2]


def test_what_became_garbage_after_a_thaw_is_not_reported() -> None:
    with check_leaks(Node) as thawed:
        made_before = Node()
        gc.collect()
        del made_before  # frozen by the thaw, garbage now: the close collects the whole heap
    assert thawed.findings is not None and thawed.findings.mode.startswith("frozen (thawed")
    assert thawed.findings.groups == ()
    # The window itself already tells it apart, without the checker's later look for garbage.
    window = open_window(WatchFilter(rootdir=None, types=frozenset({Node})))
    made_before = Node()
    gc.collect()
    del made_before
    result = window.close()
    assert result.survivor_ids == set()
    result.found.clear()


def test_garbage_too_big_to_prove_after_a_thaw_is_told_apart_by_the_window() -> None:
    window = open_window(WatchFilter(rootdir=None, types=frozenset({Node})))
    made_before = Node()
    # A cycle through a list too long for the proof: the whole heap is collected instead.
    made_before.big = [made_before, *range(2000)]  # type: ignore[attr-defined]
    gc.collect()
    del made_before
    result = window.close()
    assert result.survivor_ids == set()
    result.found.clear()


def test_a_test_calling_gc_in_a_loop_degrades_to_a_full_heap_window() -> None:
    with check_leaks(Node) as check:
        HOLDER.append(Node())
        counts = [gc.collect() for _ in range(MAX_THAWS + 2)]
        HOLDER.append(Node())
    HOLDER.clear()
    assert len(counts) == MAX_THAWS + 2
    assert check.findings is not None
    assert check.findings.mode.startswith("full-heap")
    assert [g.count for g in check.findings.leaks] == [2]


def test_gc_freeze_in_the_block_degrades_after_a_thaw_and_keeps_every_survivor() -> None:
    with check_leaks(Node) as check:
        HOLDER.append(Node())
        gc.collect()
        HOLDER.append(Node())
        gc.freeze()
        gc.unfreeze()
        HOLDER.append(Node())
    HOLDER.clear()
    assert check.findings is not None
    assert check.findings.mode.startswith("full-heap")
    assert [g.count for g in check.findings.leaks] == [3]
    assert gc.get_freeze_count() <= interpreter_frozen()


def test_a_gc_call_from_another_thread_during_the_block_is_answered_on_the_whole_heap() -> None:
    before = Node()
    seen: list[bool] = []
    with check_leaks(Node) as check:
        worker = threading.Thread(
            target=lambda: seen.append(any(o is before for o in gc.get_objects()))
        )
        worker.start()
        worker.join()
    assert seen == [True]
    assert check.findings is not None and check.findings.groups == ()


def test_no_weakrefs_threads_or_frozen_objects_are_left_behind() -> None:
    node = Node()
    threads = threading.enumerate()
    with check_leaks(Node):
        HOLDER.append(node)
        during = (weakref.getweakrefcount(node), threading.enumerate())
    HOLDER.clear()
    assert during == (0, threads)
    assert weakref.getweakrefcount(node) == 0
    assert gc.get_freeze_count() <= interpreter_frozen()


def test_a_gc_function_kept_from_an_old_window_still_behaves_like_gc() -> None:
    with check_leaks(Node):
        kept = gc.get_count  # the wrapper, as code that did "from gc import get_count" holds it
    assert kept() == ORIGINAL_GC["get_count"]()
    with check_leaks(Node) as check:
        kept()  # a gc call inside a window: the window degrades, the answer is gc's
        HOLDER.append(Node())
    HOLDER.clear()
    assert check.findings is not None
    assert check.findings.mode.startswith("full-heap")
    assert len(check.findings.leaks) == 1
    assert {name: getattr(gc, name) for name in ORIGINAL_GC} == ORIGINAL_GC


def test_gc_get_referrers_in_a_running_coroutine_sees_what_it_sees_without_the_check() -> None:
    # CPython saves a caller's stack when it calls a Python function, and then a running
    # coroutine shows up as a referrer of its own locals: the wrappers must be C-level calls.
    import asyncio

    async def probe() -> list[str]:
        exc = Exception()
        return [type(r).__name__ for r in gc.get_referrers(exc)]

    bare = asyncio.run(probe())
    with check_leaks(Node):
        checked = asyncio.run(probe())
    assert checked == bare


@pytest.mark.parametrize(
    ("held", "collections", "leaked"),
    [
        ("in a cycle through an older object", 0, []),
        ("by a module global", 0, [1]),
        ("in a cycle through a big list", 1, []),
    ],
)
def test_a_degraded_window_collects_the_whole_heap_only_when_no_proof_tells(
    monkeypatch: pytest.MonkeyPatch, held: str, collections: int, leaked: list[int]
) -> None:
    # anyio's tests that ask gc.get_referrers() degrade their windows; on its heap each end of
    # such a window paid a whole-heap collection of about 215 ms (8.6 s over the suite).
    from pytest_leakcheck import fullheap

    looks: list[None] = []
    real = fullheap.real_collect
    monkeypatch.setattr(fullheap, "real_collect", lambda *a: looks.append(None) or real(*a))
    older: list[object] = []
    with check_leaks(Node) as check:
        gc.get_count()  # degrades the window
        node = Node()
        if held == "by a module global":
            HOLDER.append(node)
        elif held == "in a cycle through an older object":
            older.append(node)
            node.peer = older  # type: ignore[attr-defined]
        else:
            big: list[object] = [node, *range(2000)]
            node.peer = big  # type: ignore[attr-defined]
            del big
        del node, older
    HOLDER.clear()
    assert check.findings is not None
    assert check.findings.mode.startswith("full-heap")
    assert [g.count for g in check.findings.leaks] == leaked
    assert len(looks) == collections
