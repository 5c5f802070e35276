"""What a full collection would free is never a leak nor a suspect, and proving it never calls a
live object garbage."""

from __future__ import annotations

import gc
import threading
from typing import ClassVar

import pytest

from helpers import assert_clean, run, source
from pytest_leakcheck import garbage


class Node:
    def __init__(self) -> None:
        self.other: object = None


HELD: list[object] = []


def cycle() -> Node:
    """A node that refers to itself: only the cyclic collector frees it."""
    node = Node()
    node.other = node
    return node


def test_a_cycle_held_by_nothing_is_garbage() -> None:
    found: list[object] = [cycle()]
    assert garbage.garbage(found) == {id(found[0])}


def test_a_cycle_through_a_frozen_older_object_is_garbage() -> None:
    # The shape a window's collection of the young generations cannot free.
    gc.collect()
    old = Node()
    gc.freeze()
    try:
        new = Node()
        new.other, old.other = old, new
        found = [new]
        del new, old
        assert garbage.garbage(found) == {id(found[0])}
    finally:
        gc.unfreeze()


def test_an_object_held_by_a_module_global_is_alive() -> None:
    found: list[object] = [cycle()]
    HELD.append(found[0])
    try:
        assert garbage.garbage(found) == set()
    finally:
        HELD.clear()


def test_an_object_held_by_a_running_frame_is_alive() -> None:
    node = cycle()
    assert garbage.garbage([node]) == set()


def test_an_object_held_by_a_live_timer_is_alive() -> None:
    found: list[object] = [cycle()]
    timer = threading.Timer(60, lambda held=found[0]: held)
    timer.daemon = True
    timer.start()
    try:
        assert garbage.garbage(found) == set()
    finally:
        timer.cancel()
        timer.join()


def test_a_huge_container_is_not_walked_and_keeps_what_it_holds_alive() -> None:
    node = Node()
    node.other = [node, *range(garbage.BIG + 1)]
    found = [node]
    del node
    # Left out, the big list counts as a holder from outside: unproven, never wrongly freed.
    assert garbage.garbage(found) == set()
    found[0].other = None


# -- as users meet it ----------------------------------------------------------------------------

OLD_OBJECT_CYCLE = """
    import pytest

    class Holder:
        pass

    class User:
        pass

    # Made at import, before any check's window opened.
    OLD = [Holder()]

    <marker>
    def test_user_joins_an_old_holder_that_is_then_dropped():
        old = OLD.pop()
        user = User()
        user.holder, old.user = old, user
"""


@pytest.mark.parametrize(
    ("marker", "args"),
    [
        ("", ("--leakcheck", "--leakcheck-explain-budget", "0")),
        ("@pytest.mark.leakcheck", ()),
    ],
    ids=["lenient-unexplained", "marked"],
)
def test_a_cycle_through_an_object_older_than_the_window_is_not_reported(
    pytester: pytest.Pytester, marker: str, args: tuple[str, ...]
) -> None:
    assert_clean(run(pytester, source(OLD_OBJECT_CYCLE, marker=marker), *args))


def test_the_same_cycle_kept_by_a_global_is_still_reported(pytester: pytest.Pytester) -> None:
    kept = (
        OLD_OBJECT_CYCLE.replace(
            "user.holder, old.user = old, user",
            "user.holder, old.user = old, user\n        KEPT.append(old)",
        )
        + "\n    KEPT = []\n"
    )
    result = run(pytester, source(kept, marker="@pytest.mark.leakcheck"))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["LEAK: 1 x *.User, * held by module global*"])


OLD_TASK_CYCLE = """
    import asyncio

    import pytest

    class Holder:
        pass

    OLD = [Holder()]  # made at import, before any check's window opened


    async def sleeper(holder):
        await asyncio.sleep(3600)


    def test_a_task_in_a_cycle_with_an_old_holder_that_is_dropped():
        old = OLD.pop()
        loop = asyncio.new_event_loop()
        old.task = loop.create_task(sleeper(old))
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
"""


def test_a_task_pending_on_a_closed_loop_that_is_garbage_is_not_left_running(
    pytester: pytest.Pytester,
) -> None:
    # Pending for good on its closed loop, but held by nothing: a full collection frees it, so
    # it is not "left running" either.
    assert_clean(run(pytester, source(OLD_TASK_CYCLE), "--leakcheck"))


class Registry:
    # A class-level cache, as tornado's IOLoop keeps its loops.
    by_name: ClassVar[dict[str, object]] = {}


class Proxy:
    """A module global whose __class__ is the tested code's to compute: never asked."""

    asked = False

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        Proxy.asked = True
        raise RuntimeError("outside of a context")


PROXY = Proxy()


def test_what_a_module_holds_is_proven_alive_and_nothing_else() -> None:
    Proxy.asked = False  # pytest's collection asks, looking for test classes
    in_global, in_class, local, garbage_held = Node(), Node(), Node(), Node()
    HELD.append(in_global)
    Registry.by_name["n"] = in_class
    holder: list[object] = [garbage_held]
    holder.append(holder)  # garbage, holding the node: the proof cannot tell it, nor this
    try:
        found = [in_global, in_class, local, garbage_held]
        assert garbage.held_by_modules(found) == {id(in_global), id(in_class)}
        assert not Proxy.asked
    finally:
        HELD.clear()
        Registry.by_name.clear()
        del holder
