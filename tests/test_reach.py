"""Whether threads that other tests left alive hold a test's survivors: the walk from their
frames and ``Thread`` objects that decides if a check must walk every survivor."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from helpers import load_json, run
from pytest_leakcheck import reach
from pytest_leakcheck.garbage import BIG

CACHE: list[object] = []


class Survivor:
    pass


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def _started(target: Callable[..., object], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _holds(thread: threading.Thread, survivor: object) -> bool:
    assert thread.ident is not None
    return reach.threads_hold({thread.ident}, [survivor])


def _wait_holding(stop: threading.Event, ready: threading.Event) -> None:
    held = Survivor()
    CACHE.append(held)  # for the test to find the very object this frame holds
    ready.set()
    stop.wait()
    del held


def test_a_survivor_in_a_thread_frame_is_held(stop: threading.Event) -> None:
    ready = threading.Event()
    thread = _started(_wait_holding, stop, ready)
    assert ready.wait(5)
    survivor = CACHE.pop()
    try:
        assert _holds(thread, survivor)
        assert not _holds(thread, Survivor())
    finally:
        stop.set()
        thread.join(5)


def test_a_survivor_in_a_thread_arguments_is_held(stop: threading.Event) -> None:
    survivor = Survivor()
    thread = _started(lambda event, _: event.wait(), stop, [survivor])
    try:
        assert _holds(thread, survivor)
    finally:
        stop.set()
        thread.join(5)


def test_an_idle_worker_holds_nothing_of_the_test(stop: threading.Event) -> None:
    CACHE.append(Survivor())  # held by a module global, which the thread's code also reads
    survivor = CACHE[-1]
    thread = _started(lambda event: (CACHE, event.wait()), stop)
    try:
        assert not _holds(thread, survivor)
        assert not reach.threads_hold(set(), [survivor])
    finally:
        CACHE.clear()
        stop.set()
        thread.join(5)


def test_a_callback_on_a_loop_thread_holds_what_it_is_bound_to() -> None:
    loop = asyncio.new_event_loop()
    thread = _started(loop.run_forever)
    survivor = Survivor()
    handle = asyncio.run_coroutine_threadsafe(_later(loop, survivor), loop).result(5)
    try:
        assert _holds(thread, survivor)
        assert not _holds(thread, Survivor())
    finally:
        loop.call_soon_threadsafe(handle.cancel)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _later(loop: asyncio.AbstractEventLoop, survivor: Survivor) -> asyncio.TimerHandle:
    return loop.call_later(3600, lambda: survivor)


def test_what_the_walk_cannot_tell_counts_as_held(stop: threading.Event) -> None:
    crowd = [object() for _ in range(BIG + 1)]
    thread = _started(lambda event, _: event.wait(), stop, crowd)
    try:
        assert _holds(thread, Survivor())  # the big list is not looked into
    finally:
        stop.set()
        thread.join(5)


def test_an_idle_thread_an_earlier_test_left_keeps_the_explain_budget(
    pytester: pytest.Pytester,
) -> None:
    # An idle worker of an earlier test holds none of the suspect's instances: the suspect is
    # not walked once the budget is spent. A worker that keeps what the test hands it makes the
    # walk happen, and what it holds is the worker's.
    result = run(
        pytester,
        """
        import queue
        import threading
        import pytest

        CACHE = []
        STOP = threading.Event()
        HANDED = queue.Queue()


        class Cached:
            pass


        def keep():
            kept = []
            while True:
                kept.append(HANDED.get())
                HANDED.task_done()


        def test_leaves_an_idle_worker():
            threading.Thread(target=STOP.wait, daemon=True).start()


        def test_caches():
            CACHE.append(Cached())


        def test_leaves_a_keeper():
            threading.Thread(target=keep, daemon=True).start()


        def test_hands_over():
            HANDED.put(Cached())
            HANDED.join()
        """,
        "-p",
        "no:randomly",
        "--leakcheck",
        "--leakcheck-explain-budget=0",
        "--leakcheck-json=out.json",
    )
    result.assert_outcomes(passed=4)
    tests = {entry["nodeid"].rsplit("::")[-1]: entry for entry in load_json(pytester)["tests"]}
    [idle] = tests["test_caches"]["leaks"]
    assert (idle["verdict"], idle["not_walked"]) == ("suspect", "budget")
    # Walked, it is held by the keeper: the earlier test's, not this one's suspect.
    assert "test_hands_over" not in tests
    assert "test_hands_over" not in result.stdout.str()
