"""The pure core on real objects: real timers, threads, loops and registries, no pytest plugin."""

from __future__ import annotations

import asyncio
import atexit
import functools
import gc
import logging
import os
import sched
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from pytest_leakcheck import check_leaks, judge
from pytest_leakcheck.findings import Findings, LeakGroup
from pytest_leakcheck.permanent import interpreter_frozen

REGISTRY: list[object] = []


class User:
    def __init__(self, name: str = "user_1") -> None:
        self.name = name
        self.payload = list(range(100))

    def tick(self) -> None:
        pass

    def on_signal(self, *_: object) -> None:
        pass


class Cached:
    @functools.cache  # noqa: B019 - the leak under test
    def value(self) -> int:
        return 1


class Registered:
    instances: ClassVar[list[Registered]] = []

    def __init__(self) -> None:
        Registered.instances.append(self)


class HoldingHandler(logging.Handler):
    def __init__(self, user: User) -> None:
        super().__init__()
        self.user = user


def only_group(findings: Findings | None) -> LeakGroup:
    assert findings is not None
    assert len(findings.groups) == 1, findings.groups
    return findings.groups[0]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_a_clean_block_has_no_findings() -> None:
    with check_leaks(User) as check:
        user = User()
        timer = threading.Timer(60, user.tick)
        timer.start()
        timer.cancel()
        timer.join()
        del user, timer
    assert check.findings is not None
    assert check.findings.groups == ()
    assert check.findings.verdict is None


def test_objects_made_before_the_block_are_not_survivors() -> None:
    before = User("old")
    with check_leaks(User) as check:
        REGISTRY.append(before)
    REGISTRY.clear()
    assert check.findings is not None
    assert check.findings.groups == ()


def test_a_started_timer_is_the_root_of_its_callbacks_owner() -> None:
    with check_leaks(User) as check:
        user = User()
        timer = threading.Timer(60, user.tick)
        timer.daemon = True
        timer.start()
        del user
    try:
        group = only_group(check.findings)
        assert group.type == f"{__name__}.User"
        assert group.kind == "threading.Timer"
        assert group.verdict == "leak"
        assert any(".__self__ -> " in step and "User" in step for step in group.path)
        assert "tick" in group.root
    finally:
        timer.cancel()
        timer.join()


def test_a_thread_loop_over_self_is_found_through_its_running_frame() -> None:
    stop = threading.Event()

    class Worker:
        def run(self) -> None:
            while not stop.wait(0.01):
                pass

    with check_leaks(Worker) as check:
        worker = Worker()
        thread = threading.Thread(target=worker.run, daemon=True, name="worker-loop")
        thread.start()
        del worker
    try:
        group = only_group(check.findings)
        assert group.kind == "threading.Thread"
        assert "worker-loop" in group.root
    finally:
        stop.set()
        thread.join()


def test_a_call_later_handle_on_a_loop_is_the_root(loop: asyncio.AbstractEventLoop) -> None:
    with check_leaks(User) as check:
        handle = loop.call_later(60, User().tick)
    try:
        group = only_group(check.findings)
        assert group.kind == "asyncio.TimerHandle"
        assert f"{__name__}.User.tick" in group.root
    finally:
        handle.cancel()


def test_a_periodic_task_never_cancelled_is_the_root(loop: asyncio.AbstractEventLoop) -> None:
    async def beat(user: User) -> None:
        while True:
            await asyncio.sleep(0.01)
            user.tick()

    with check_leaks(User) as check:
        task = loop.create_task(beat(User()))
        loop.run_until_complete(asyncio.sleep(0.03))
    try:
        group = only_group(check.findings)
        assert group.kind == "asyncio.Task"
        assert "beat" in group.root
        assert any("local 'user'" in step for step in group.path)
    finally:
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))


def test_a_queued_sched_event_is_the_root() -> None:
    scheduler = sched.scheduler()
    with check_leaks(User) as check:
        scheduler.enter(60, 1, User().tick)
    assert only_group(check.findings).kind == "sched.Event"
    # The check cancelled the event it found pending, and that freed the User.
    assert scheduler.empty()
    assert check.findings is not None
    [proof] = check.findings.proof
    expected = f"confirmed: cancelling sched event calling {__name__}.User.tick freed 1 x "
    assert proof.startswith(f"{expected}{__name__}.User (")


def test_a_module_global_registry_is_a_module_global() -> None:
    with check_leaks(User) as check:
        REGISTRY.append(User())
    REGISTRY.clear()
    group = only_group(check.findings)
    assert group.kind == "module global"
    assert group.path[0] == f"module {__name__}"
    assert group.path[1].startswith(".REGISTRY -> list")


def test_a_class_level_list_is_a_class_attribute() -> None:
    with check_leaks(Registered) as check:
        Registered()
    Registered.instances.clear()
    group = only_group(check.findings)
    assert group.kind == "class attribute"
    assert any(step.startswith(".instances -> list") for step in group.path)


def test_an_lru_cache_on_a_method_is_a_functools_cache() -> None:
    with check_leaks(Cached) as check:
        Cached().value()
    Cached.value.cache_clear()
    assert only_group(check.findings).kind == "functools cache"


def test_a_logging_handler_holding_an_object_is_a_logging_handler() -> None:
    logger = logging.getLogger("leakcheck.test.handler")
    with check_leaks(User) as check:
        handler = HoldingHandler(User())
        logger.addHandler(handler)
        del handler
    for h in list(logger.handlers):
        logger.removeHandler(h)
    assert only_group(check.findings).kind == "logging handler"


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1 (POSIX)")
def test_a_signal_handler_bound_to_an_object_is_a_signal_handler() -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    with check_leaks(User) as check:
        signal.signal(signal.SIGUSR1, User().on_signal)
    signal.signal(signal.SIGUSR1, previous)
    group = only_group(check.findings)
    assert group.kind == "signal handler"
    assert "SIGUSR1" in group.root


def test_an_atexit_registration_is_an_atexit_root() -> None:
    with check_leaks(User) as check:
        user = User()
        atexit.register(user.tick)
        del user
    try:
        group = only_group(check.findings)
        assert group.kind == "atexit"
    finally:
        for obj in gc.get_objects():
            if type(obj) is User:
                atexit.unregister(obj.tick)


def test_atexit_register_is_put_back_and_still_returns_the_function() -> None:
    real = atexit.register

    def func() -> None:
        pass

    with check_leaks(User):
        assert atexit.register(func) is func
    atexit.unregister(func)
    assert atexit.register is real


def test_lenient_checks_make_passive_roots_suspects_unless_the_type_is_named() -> None:
    here = os.path.dirname(__file__)
    with check_leaks(rootdir=here, strict=False) as lenient:
        REGISTRY.append(User())
    REGISTRY.clear()
    with check_leaks(User, rootdir=here, strict=False) as named:
        REGISTRY.append(User())
    REGISTRY.clear()
    assert only_group(lenient.findings).verdict == "suspect"
    assert only_group(named.findings).verdict == "leak"


@pytest.mark.parametrize(
    ("kind", "strict", "named", "expected"),
    [
        ("threading.Timer", False, False, "leak"),
        ("asyncio.Task", False, False, "leak"),
        ("module global", False, False, "suspect"),
        ("module global", True, False, "leak"),
        ("functools cache", False, True, "leak"),
        ("fixture", True, True, None),
    ],
)
def test_judge_follows_the_verdict_table(
    kind: str, strict: bool, named: bool, expected: str | None
) -> None:
    assert judge(kind, strict=strict, named=named) == expected


def test_a_block_that_raises_is_not_judged() -> None:
    with pytest.raises(RuntimeError), check_leaks(User) as check:
        REGISTRY.append(User())
        raise RuntimeError("boom")
    REGISTRY.clear()
    assert check.findings is None
    assert gc.get_freeze_count() <= interpreter_frozen()


def test_many_survivors_are_counted_but_only_a_few_traced() -> None:
    with check_leaks(User) as check:
        REGISTRY.extend(User(str(i)) for i in range(50))
    REGISTRY.clear()
    group = only_group(check.findings)
    assert group.count == 50
    assert group.untraced == 47
    assert len(group.retentions) == 1  # all three traced paths are the same


def test_the_checker_keeps_no_reference_to_survivors_or_its_own_search() -> None:
    with check_leaks(User) as check:
        REGISTRY.append(User())
    survivor = REGISTRY[0]
    REGISTRY.clear()
    # The test's local is the only reference (a running frame is no gc referrer): the findings,
    # the search and the window hold nothing, not even through a cycle awaiting collection.
    assert gc.get_referrers(survivor) == []
    assert sys.getrefcount(survivor) == 2
    assert check.findings is not None and check.findings.groups


def test_find_by_id_checks_the_type_too() -> None:
    from pytest_leakcheck import heap

    class Probe:
        pass

    probe = Probe()
    assert heap.find_by_id(heap.followed([probe])) == [probe]
    # The id of an object that died may name another object now: only the type tells.
    assert heap.find_by_id({id(probe): id(dict)}) == []


def test_following_survivors_by_type_keeps_no_class_made_by_the_test_alive() -> None:
    # Found on tornado's suite (strict): a handler class made inside the test closes over the
    # test case, which keeps what the test saved (an exception, its traceback's frames, the
    # handler). Held by type while the heap was collected, the class kept the whole cycle
    # alive, reported as held by nothing.
    from pytest_leakcheck import heap

    class Case:
        pass

    def a_test_saving_its_handler() -> dict[int, int]:
        case = Case()

        class Handler:
            def get(self) -> Case:
                return case

        case.handler = Handler()  # type: ignore[attr-defined]
        return heap.followed([case.handler])  # type: ignore[attr-defined]

    # Garbage now: the case, its handler, the handler's class and the cell it closes over.
    assert heap.find_by_id(a_test_saving_its_handler()) == []


class Queue:
    pass


class Proxy:
    pass


class Trigger:
    pass


def test_survivors_that_hold_each_other_are_traced_to_the_same_root() -> None:
    # janus: a queue and its proxy hold each other, and a bound method of the proxy is kept by
    # a third survivor. Each walk reached the other survivor first and waited on it: neither
    # found the root, and both were reported as held by nothing Python can see.
    try:
        with check_leaks(Queue, Proxy, Trigger) as check:
            queue, proxy, trigger = Queue(), Proxy(), Trigger()
            queue.proxy = proxy  # type: ignore[attr-defined]
            proxy.queue = queue  # type: ignore[attr-defined]
            trigger.fn = [proxy]  # type: ignore[attr-defined]
            REGISTRY.append(trigger)
            del queue, proxy, trigger
        assert check.findings is not None
        kinds = {g.type.rpartition(".")[2]: g.kind for g in check.findings.groups}
        assert kinds == dict.fromkeys(("Queue", "Proxy", "Trigger"), "module global"), kinds
    finally:
        REGISTRY.clear()


def test_a_pool_worker_waiting_for_work_is_not_waited_for_but_one_running_a_job_is() -> None:
    # Left idle by a test (asyncio's default executor, under tornado's resolver), a worker holds
    # nothing and will not end by itself: waiting for it cost every such test the whole settle
    # budget and a full collection per look.
    from concurrent.futures import ThreadPoolExecutor

    from pytest_leakcheck.settle import idle_threads

    inside = threading.Event()
    release = threading.Event()

    def busy() -> int | None:
        inside.set()
        release.wait(10)
        return threading.get_ident()

    idle_pool = ThreadPoolExecutor(1)
    busy_pool = ThreadPoolExecutor(1)
    try:
        idle = idle_pool.submit(threading.get_ident).result(5)
        running = busy_pool.submit(busy)
        assert inside.wait(5)
        for _ in range(100):  # the idle worker is back in its queue's get() within moments
            if idle in idle_threads():
                break
            time.sleep(0.01)
        idents = idle_threads()
        assert idle in idents
        release.set()
        assert running.result(5) not in idents
    finally:
        release.set()
        idle_pool.shutdown(wait=True)
        busy_pool.shutdown(wait=True)


def _idle_within(ident: int | None, seconds: float = 1.0) -> bool:
    from pytest_leakcheck.settle import idle_threads

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # back in its wait for work within moments
        if ident in idle_threads():
            return True
        time.sleep(0.01)
    return False


def test_a_trio_cache_worker_waiting_for_work_is_idle_but_one_running_a_job_is_not() -> None:
    # trio's thread cache (anyio's to_thread under trio) keeps its workers 10 s after a job,
    # blocked in a lock: waiting for them cost each such check the whole settle budget
    # (7 s over anyio's suite).
    trio = pytest.importorskip("trio")
    from pytest_leakcheck.settle import idle_threads

    inside: list[int] = []
    release = threading.Event()

    def busy() -> None:
        inside.append(threading.get_ident())
        release.wait(10)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, busy)
            while not inside:
                await trio.sleep(0.01)
            # A second worker (the first is busy), idle once its job is done.
            idle = await trio.to_thread.run_sync(threading.get_ident)
            assert idle != inside[0]
            assert _idle_within(idle)
            assert inside[0] not in idle_threads(), "the worker in its job is not idle"
            release.set()

    try:
        trio.run(main)
    finally:
        release.set()


def test_a_pool_worker_waiting_behind_a_wrapper_of_its_queue_is_idle() -> None:
    # A plugin that watches for blocking calls (anyio's suite runs blockbuster) puts Python
    # frames above the worker's loop: the loop is looked for in the whole stack.
    import queue
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    pool._work_queue = queue.Queue()  # type: ignore[assignment]  # get() is Python code
    try:
        worker = pool.submit(threading.get_ident).result(5)
        assert _idle_within(worker)
    finally:
        pool.shutdown(wait=True)


def test_the_worker_of_a_pool_that_was_collected_is_about_to_end_not_idle() -> None:
    # A test that drops an executor without shutting it down: once the executor is collected,
    # its worker is woken up to exit. Whether it had exited by the time the check listed threads
    # was a matter of timing (tornado's RunOnExecutorTest was a suspect in one run of two).
    from concurrent.futures import ThreadPoolExecutor

    from pytest_leakcheck.settle import idle_threads, join_dying_workers, workers_between_jobs

    pool = ThreadPoolExecutor(1)
    worker = pool.submit(threading.get_ident).result(5)
    for _ in range(100):  # back in its queue's get() within moments
        if worker in idle_threads():
            break
        time.sleep(0.01)
    assert worker in idle_threads()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(30)  # the woken worker cannot run before the look below
    try:
        del pool  # the executor goes; its worker is told to exit
        assert worker not in idle_threads()
        # Between two jobs all the same: it holds nothing of a test's, and its ending (the
        # window closed meanwhile) is no reason to look the survivors up again.
        assert worker in workers_between_jobs()
        # The check waits for it, without looking the survivors up again (no collection).
        join_dying_workers(5.0)
        assert worker not in {t.ident for t in threading.enumerate()}
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.parametrize(
    ("held", "collections", "alive"),
    [("by nothing", 0, 0), ("by a module global", 0, 1), ("by garbage it does not reach", 1, 0)],
)
def test_settling_waits_for_a_thread_at_work_then_collects_only_what_no_proof_tells(
    monkeypatch: pytest.MonkeyPatch, held: str, collections: int, alive: int
) -> None:
    # A resolver's worker finishing the test's job: each look after a pause was a full
    # collection, 40 to 150 ms on tornado's heap, two or three per test. What the thread let
    # go of is proven garbage from reference counts, what a module holds is alive; only what
    # is neither (held by a cycle that is garbage itself) costs a collection.
    from pytest_leakcheck import settle as settling

    looks: list[object] = []
    real = settling.find_by_id
    monkeypatch.setattr(settling, "find_by_id", lambda ids: looks.append(ids) or real(ids))

    def work(user: User) -> None:
        time.sleep(0.05)  # at work, its arguments holding the user

    threads_before = frozenset(sys._current_frames())
    user = User()
    if held == "by a module global":
        REGISTRY.append(user)
    elif held == "by garbage it does not reach":
        cycle: list[object] = [user]
        cycle.append(cycle)
        del cycle
    thread = threading.Thread(target=work, args=(user,), daemon=True)
    thread.start()
    found: list[object] = [user]
    del user
    try:
        # Threads that other tests left (in the same xdist worker) are not this one's.
        others = lambda: frozenset(sys._current_frames()) - {thread.ident}  # noqa: E731
        survivors, waited = settling.settle(found, 2.0, threads_before, others)
        assert waited >= 0.03  # the thread was waited for
        assert not thread.is_alive()
        assert [type(o) for o in survivors] == [User] * alive
        assert len(looks) == collections
        survivors.clear()
    finally:
        REGISTRY.clear()


def test_survivors_that_a_thread_ended_since_the_window_closed_held_are_looked_up_again() -> None:
    # tornado's test_add_callback_while_closing: the test's thread was still closing its loop
    # when the window closed, and had ended by the time the check began to wait. Nothing was
    # running then, so the loop was judged as found: a suspect in one run of three.
    from pytest_leakcheck.settle import settle, thread_idents

    thread = threading.Thread(target=lambda: None)
    thread.start()
    threads_found = thread_idents() | {thread.ident or 0}
    thread.join()
    user = User()
    cycle: list[object] = [user]
    cycle.append(cycle)  # garbage once the thread let go, as the closed loop was
    found: list[object] = [user]
    del user, cycle
    before = frozenset(sys._current_frames())
    judged_at_once, _ = settle(list(found), 1.0, before)
    assert [type(o) for o in judged_at_once] == [User]
    judged_at_once.clear()
    survivors, _ = settle(found, 1.0, before, threads_found=threads_found)
    assert survivors == []


def test_a_timer_waiting_for_its_interval_is_not_waited_for_but_one_running_its_function_is() -> (
    None
):
    from pytest_leakcheck.settle import idle_threads

    inside = threading.Event()
    release = threading.Event()

    def busy() -> None:
        inside.set()
        release.wait(10)

    waiting = threading.Timer(60, print)
    running = threading.Timer(0, busy)
    for timer in (waiting, running):
        timer.daemon = True
        timer.start()
    try:
        assert inside.wait(5)
        idents = idle_threads()
        assert waiting.ident in idents
        assert running.ident not in idents
        # Cancelled, it is about to end: worth waiting for, even before its thread wakes up
        # (which it cannot do while this thread keeps the interpreter).
        previous = sys.getswitchinterval()
        sys.setswitchinterval(30)
        try:
            waiting.cancel()
            assert waiting.ident not in idle_threads()
        finally:
            sys.setswitchinterval(previous)
    finally:
        waiting.cancel()
        release.set()
        running.join(5)
        waiting.join(5)
