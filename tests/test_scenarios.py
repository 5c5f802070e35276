"""End-to-end scenarios: real timers, threads, loops and schedulers, leaked and then fixed.

Every scenario writes a small project into a pytester directory (its classes are the project's
own, since they live under the inner rootdir) and runs pytest on it in a subprocess
(``helpers.run``).

Each scenario has a LEAKY variant, whose report must name the leaked type, the kind of root that
holds it and a step of the path, and a FIXED variant of the same code that stops the thing
properly and must pass without any leak output. The varying part of an inner source is written
as a placeholder line, ``<name>``, that :func:`source` replaces with a snippet.
"""

from __future__ import annotations

import pytest

from helpers import SCHED_USER, assert_clean, assert_leaked, registry, run, source

# -- 1. a re-armed threading.Timer -----------------------------------------------------------------

TIMER_USER = """
    import threading

    import pytest


    class User:
        # A heartbeat: the first tick comes soon, then the callback re-arms a Timer every second.

        def __init__(self):
            self.lock = threading.Lock()
            self.stopped = False
            self.rearmed = threading.Event()
            self.arm(0.01)

        def arm(self, delay):
            with self.lock:
                if self.stopped:
                    return
                self.timer = threading.Timer(delay, self.tick)
                self.timer.daemon = True
                self.timer.start()

        def tick(self):
            self.arm(1.0)
            self.rearmed.set()

        def disconnect(self):
            <disconnect>


    @pytest.mark.leakcheck
    def test_user_session():
        user = User()
        assert user.rearmed.wait(5)
        user.disconnect()
"""


def test_a_rearmed_timer_is_reported_with_its_timer(pytester: pytest.Pytester) -> None:
    result = run(pytester, source(TIMER_USER, disconnect="pass"))
    assert_leaked(result, root="threading.Timer", step="*.__self__ -> *.User")
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.User, * held by threading.Timer: Timer * (interval 1.0s) calling *.tick",
            "*local 'self' -> threading.Timer *",
            "*.function -> bound method *.User.tick",
            "*.__self__ -> *.User",
        ]
    )


def test_a_timer_cancelled_and_joined_on_disconnect_releases_its_user(
    pytester: pytest.Pytester,
) -> None:
    stop = """
        with self.lock:
            self.stopped = True
            self.timer.cancel()
        self.timer.join()
    """
    assert_clean(run(pytester, source(TIMER_USER, disconnect=stop)))


def test_a_timer_cancelled_without_join_releases_its_user(pytester: pytest.Pytester) -> None:
    # The cancelled Timer's thread exits a moment after the test; the plugin waits for it.
    stop = """
        with self.lock:
            self.stopped = True
            self.timer.cancel()
    """
    assert_clean(run(pytester, source(TIMER_USER, disconnect=stop)))


# -- 2. a threading.Thread polling a stop event ----------------------------------------------------

THREAD_USER = """
    import threading

    import pytest


    class User:
        def __init__(self):
            self.polls = 0
            self.polling = threading.Event()
            self._stop = threading.Event()
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()

        def _poll(self):
            while not self._stop.wait(0.01):
                self.polls += 1
                self.polling.set()

        def disconnect(self):
            <disconnect>


    @pytest.mark.leakcheck
    def test_user_session():
        user = User()
        assert user.polling.wait(5)
        user.disconnect()
"""


def test_a_polling_thread_is_reported_with_its_thread(pytester: pytest.Pytester) -> None:
    result = run(pytester, source(THREAD_USER, disconnect="pass"))
    assert_leaked(result, root="threading.Thread", step="*local 'self' -> *.User")
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.User, * held by threading.Thread: Thread * (alive) running *.User._poll",
            "*frame of _poll *",
            "*local 'self' -> *.User",
        ]
    )


def test_a_thread_stopped_and_joined_releases_its_user(pytester: pytest.Pytester) -> None:
    stop = """
        self._stop.set()
        self.thread.join()
    """
    assert_clean(run(pytester, source(THREAD_USER, disconnect=stop)))


def test_a_thread_told_to_stop_without_join_releases_its_user(pytester: pytest.Pytester) -> None:
    assert_clean(run(pytester, source(THREAD_USER, disconnect="self._stop.set()")))


# -- 3 and 4. an asyncio loop that outlives the test -----------------------------------------------

LOOP_IN_A_THREAD = """
    import asyncio
    import contextlib
    import sys
    import threading

    import pytest

    # A service loop started at import, long before the test, running until the process exits.
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="service-loop", daemon=True).start()

    <tuning>
"""

# The first beat comes at once; the period after it is long next to the check (tens of ms, a few
# hundred on a loaded machine). A test below makes beats fall inside the retention search on
# purpose: the search keeps the other threads paused, so it still finds the handle.
SLOW_HEARTBEAT = "PERIOD = 1.0"

CALL_LATER_USER = """
    class User:
        def __init__(self):
            self.rearmed = threading.Event()
            loop.call_soon_threadsafe(self.tick)

        def tick(self):  # on the loop's thread: every tick schedules the next one
            self.handle = loop.call_later(PERIOD, self.tick)
            self.rearmed.set()

        async def _cancel(self):
            self.handle.cancel()

        def disconnect(self):
            <disconnect>


    @pytest.mark.leakcheck
    def test_user_session():
        user = User()
        assert user.rearmed.wait(5)
        user.disconnect()
"""


def call_later_user(disconnect: str, tuning: str = SLOW_HEARTBEAT) -> str:
    return source(LOOP_IN_A_THREAD, CALL_LATER_USER, tuning=tuning, disconnect=disconnect)


def test_a_rearmed_call_later_is_reported_with_its_timer_handle(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, call_later_user(disconnect="pass"))
    assert_leaked(result, root="asyncio.TimerHandle", step="*.__self__ -> *.User")
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.User, * held by asyncio.TimerHandle: TimerHandle calling *.User.tick at *",
            "*._scheduled -> list of 1",
            "*-> bound method *.User.tick",
            "*.__self__ -> *.User",
        ]
    )


def test_a_cancelled_call_later_handle_releases_its_user(pytester: pytest.Pytester) -> None:
    # The handle belongs to the loop's thread: cancel it there, and wait until that is done.
    stop = "asyncio.run_coroutine_threadsafe(self._cancel(), loop).result(5)"
    assert_clean(run(pytester, call_later_user(disconnect=stop)))


# A handle re-armed as soon as it runs, and a GIL that changes hands at every chance (what a busy
# machine does to the timing): the loop's thread re-arms while the search walks the path.
BUSY_FAST_HEARTBEAT = """
    sys.setswitchinterval(1e-6)
    PERIOD = 0
"""


def test_a_call_later_rearmed_during_the_search_is_still_reported_with_its_timer_handle(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, call_later_user(disconnect="pass", tuning=BUSY_FAST_HEARTBEAT))
    assert_leaked(result, root="asyncio.TimerHandle", step="*.__self__ -> *.User")


TASK_USER = """
    class User:
        def __init__(self):
            self.beating = threading.Event()
            self.task = asyncio.run_coroutine_threadsafe(self._start(), loop).result(5)

        async def _start(self):
            return asyncio.create_task(self.heartbeat())

        async def heartbeat(self):
            while True:
                self.beating.set()
                await asyncio.sleep(PERIOD)

        async def _stop(self):
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

        def disconnect(self):
            <disconnect>


    @pytest.mark.leakcheck
    def test_user_session():
        user = User()
        assert user.beating.wait(5)
        user.disconnect()
"""


def task_user(disconnect: str) -> str:
    return source(LOOP_IN_A_THREAD, TASK_USER, tuning=SLOW_HEARTBEAT, disconnect=disconnect)


def test_a_periodic_task_never_cancelled_is_reported_with_its_task(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, task_user(disconnect="pass"))
    assert_leaked(result, root="asyncio.Task", step="*local 'self' -> *.User")
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.User, * held by asyncio.Task: Task * running *User.heartbeat*",
            "*._callbacks[[]0] -> builtin_function_or_method <built-in method task_wakeup of *",
            "*.__self__ -> _asyncio.Task <Task pending *",
            "*._coro -> coroutine User.heartbeat",
            "*local 'self' -> *.User",
        ]
    )


def test_a_task_report_names_the_builtin_wakeup_method_on_its_path(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, task_user(disconnect="pass"))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*-> * <built-in method task_wakeup of *"])  # the step is there
    assert "<attribute '__qualname__'" not in result.stdout.str()  # and readable


def test_a_cancelled_task_releases_its_user(pytester: pytest.Pytester) -> None:
    stop = "asyncio.run_coroutine_threadsafe(self._stop(), loop).result(5)"
    assert_clean(run(pytester, task_user(disconnect=stop)))


# A task still pending when its loop is closed never finishes; tornado's IOLoop keeps such tasks
# in a class-level set, and so does this user's service.
CLOSED_LOOP_TASK = """
    import asyncio

    import pytest

    PENDING = set()


    class User:
        async def heartbeat(self):
            await asyncio.sleep(3600)


    def serve(user):
        loop = asyncio.new_event_loop()
        task = loop.create_task(user.heartbeat())
        PENDING.add(task)
        task.add_done_callback(PENDING.discard)
        loop.run_until_complete(asyncio.sleep(0))
        <disconnect>
        loop.close()


    def test_user_session():
        serve(User())
"""


def test_a_task_pending_on_a_closed_loop_is_left_running(pytester: pytest.Pytester) -> None:
    result = run(pytester, source(CLOSED_LOOP_TASK, disconnect="pass"), "--leakcheck")
    assert_leaked(result, root="asyncio.Task", step="*(member) -> _asyncio.Task <Task pending *")
    result.stdout.fnmatch_lines(
        [
            "left running or changed by the test:",
            "  LEAK 1 x asyncio.Task: Task * User.heartbeat *(closed), so it never finishes",
            "after the check:",
            "  left running (its loop is closed): Task *",
        ]
    )


def test_a_task_cancelled_before_its_loop_closes_releases_its_user(
    pytester: pytest.Pytester,
) -> None:
    stop = "task.cancel(); loop.run_until_complete(asyncio.gather(task, return_exceptions=True))"
    assert_clean(run(pytester, source(CLOSED_LOOP_TASK, disconnect=stop), "--leakcheck"))


# -- 5. a sched.scheduler event --------------------------------------------------------------------


SCHED_TEST = """
    @pytest.mark.leakcheck
    def test_user_session():
        User().disconnect()
"""


def test_a_pending_sched_event_is_reported_with_its_event(pytester: pytest.Pytester) -> None:
    result = run(pytester, source(SCHED_USER, SCHED_TEST, disconnect="pass"))
    assert_leaked(result, root="sched.Event", step="*.__self__ -> *.User")
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.User, * held by sched.Event: sched event at * calling *.User.expire",
            "*.scheduler -> sched.scheduler*",
            "*-> bound method *.User.expire",
            "*.__self__ -> *.User",
        ]
    )


def test_a_cancelled_sched_event_releases_its_user(pytester: pytest.Pytester) -> None:
    stop = "scheduler.cancel(self.expiry)"
    assert_clean(run(pytester, source(SCHED_USER, SCHED_TEST, disconnect=stop)))


# -- 6. a module-global registry -------------------------------------------------------------------


def test_a_module_global_registry_is_a_leak_under_the_marker(pytester: pytest.Pytester) -> None:
    result = run(pytester, registry())
    assert_leaked(result, root="module global", step="*[[]0] -> *.User")
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.User, * held by module global: module *",
            "*.REGISTRY -> list of 1",
            "*[[]0] -> *.User",
        ]
    )


def test_a_user_that_leaves_the_registry_is_released(pytester: pytest.Pytester) -> None:
    fixed = registry(disconnect="REGISTRY.remove(self)")
    assert_clean(run(pytester, fixed))
    assert_clean(run(pytester, fixed, "--leakcheck", "--leakcheck-strict"))
