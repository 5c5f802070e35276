"""What a test started and left running: named, located, stopped, and proven to be the cause."""

from __future__ import annotations

import json
import signal
import sys

import pytest

from helpers import load_json, run, source


def test_a_daemon_timer_left_pending_is_a_leak_without_any_survivor(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import threading
        import pytest

        @pytest.mark.leakcheck
        def test_forgets_a_timer():
            timer = threading.Timer(60, print)  # daemon: pyleak's default skips these
            timer.daemon = True
            timer.start()
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "leakcheck: left running: 1 x threading.Timer",
            "left running or changed by the test:",
            "  LEAK 1 x threading.Timer: Timer * (interval 60s) calling builtins.print",
            "after the check:",
            "  cancelling threading.Timer * freed nothing that leaked",
        ]
    )


def test_a_non_daemon_timer_chain_is_stopped_so_the_session_can_exit(
    pytester: pytest.Pytester,
) -> None:
    # Without the cleanup this inner session would never exit: the chain re-arms a non-daemon
    # Timer every 50 ms forever. runpytest_subprocess's timeout would fail the test.
    result = run(
        pytester,
        """
        import threading
        import pytest

        class Heartbeat:
            def __init__(self):
                self.beats = 0
                self.arm()

            def arm(self):
                threading.Timer(0.05, self.beat).start()  # non-daemon, as by default

            def beat(self):
                self.beats += 1
                self.arm()

        @pytest.mark.leakcheck
        def test_starts_a_heartbeat():
            Heartbeat()
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.Heartbeat, retaining *, held by threading.Timer: *",
            "  confirmed: cancelling threading.Timer * freed 1 x *.Heartbeat*",
        ]
    )


def test_a_chain_caught_mid_tick_is_stopped_and_not_blamed_on_the_next_test(
    pytester: pytest.Pytester,
) -> None:
    # The timer's callback takes longer than the cleanup's join: the cancelled timer is still
    # inside it, and re-arms the chain after the first look for re-armed timers. On a loaded CI
    # machine this happened to the examples' repeating timer, and the next (clean) test was
    # reported as leaking the escaped timer.
    result = run(
        pytester,
        """
        import threading
        import time
        import pytest

        # A heap big enough that a full collection takes longer than the chain's interval.
        BALLAST = [[] for _ in range(1_000_000)]

        class Ticker:
            def __init__(self):
                self.ticking = threading.Event()
                self.arm()

            def arm(self):
                self.timer = threading.Timer(0.05, self.tick)
                self.timer.daemon = True
                self.timer.start()

            def tick(self):
                self.ticking.set()
                time.sleep(1.5)
                self.arm()

        keep = []

        @pytest.mark.leakcheck
        def test_leaves_a_slow_chain():
            ticker = Ticker()
            keep.append(ticker.ticking)
            assert ticker.ticking.wait(5)  # the check starts while tick() sleeps

        @pytest.mark.leakcheck
        def test_clean_afterwards():
            time.sleep(2.0)  # the escaped chain would re-arm in this test's window
        """,
        "-v",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_leaves_a_slow_chain LEAKED*", "*test_clean_afterwards PASSED*"]
    )
    # The timer the slow tick arms is stopped before the proof's full collection lets it fire
    # (then a second one would be re-armed, or escape).
    result.stdout.fnmatch_lines(
        ["*confirmed: cancelling threading.Timer * (and 1 that the chain re-armed while it*"]
    )


def test_the_proof_says_when_something_else_holds_the_object_too(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import threading
        import pytest

        ALSO = []

        class User:
            def tick(self):
                pass

        @pytest.mark.leakcheck
        def test_timer_is_the_only_holder():
            timer = threading.Timer(60, User().tick)
            timer.daemon = True
            timer.start()

        @pytest.mark.leakcheck
        def test_a_global_holds_it_too():
            user = User()
            ALSO.append(user)
            timer = threading.Timer(60, user.tick)
            timer.daemon = True
            timer.start()
        """,
    )
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    only, both = out.split("_ test_a_global_holds_it_too _")
    assert "confirmed: cancelling threading.Timer" in only
    assert "freed 1 x test_the_proof_says_when_something_else_holds_the_object_too.User" in only
    assert "freed nothing that leaked" in both
    assert "still alive after stopping what could be stopped: 1 x " in both
    assert "(held by something else as well)" in both


def test_keep_timers_leaves_them_running(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import threading
        import pytest

        TIMERS = []

        @pytest.mark.leakcheck
        def test_forgets_a_timer():
            timer = threading.Timer(60, print)
            timer.daemon = True
            timer.start()
            TIMERS.append(timer)

        def test_the_timer_still_runs():
            assert TIMERS[0].is_alive() and not TIMERS[0].finished.is_set()
            TIMERS[0].cancel()
        """,
        "--leakcheck-keep-timers",
    )
    result.assert_outcomes(passed=2, failed=1)
    assert "after the check:" not in result.stdout.str()


THREAD_LEFT = """
    import threading
    import pytest

    STOP = threading.Event()

    @pytest.mark.leakcheck{marker}
    def test_starts_a_pool_thread():
        threading.Thread(target=STOP.wait, name="pool-worker-1", daemon=True).start()
"""


def test_a_thread_left_running_is_a_leak_and_cannot_be_stopped(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, THREAD_LEFT.format(marker=""))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "  LEAK 1 x threading.Thread: Thread 'pool-worker-1' (alive) running *Event.wait",
            "  left running (threads cannot be stopped from outside): Thread 'pool-worker-1'*",
        ]
    )


def test_threads_can_be_ignored_by_name_in_the_marker(pytester: pytest.Pytester) -> None:
    result = run(pytester, THREAD_LEFT.format(marker="(ignore_threads=['pool-worker-*'])"))
    result.assert_outcomes(passed=1)


def test_threads_can_be_ignored_by_name_in_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nleakcheck_ignore_threads = pool-worker-* other\n")
    result = run(pytester, THREAD_LEFT.format(marker=""))
    result.assert_outcomes(passed=1)


def test_the_asyncio_default_executor_thread_is_not_a_leak(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import asyncio
        import pytest

        LOOP = asyncio.new_event_loop()  # lives for the session, as a service's loop would

        @pytest.mark.leakcheck
        def test_uses_the_default_executor():
            LOOP.run_until_complete(LOOP.run_in_executor(None, sum, [1, 2]))
        """,
    )
    result.assert_outcomes(passed=1)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer (POSIX)")
def test_an_armed_itimer_is_a_leak_and_is_disarmed(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import signal
        import pytest

        @pytest.mark.leakcheck
        def test_arms_an_alarm():
            signal.setitimer(signal.ITIMER_REAL, 100)

        def test_it_was_disarmed():
            assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        """,
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "  LEAK 1 x itimer: signal.setitimer(ITIMER_REAL) left armed: *",
            "  disarming signal.setitimer(ITIMER_REAL)",
        ]
    )


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGUSR1")
def test_signal_handlers_and_atexit_registrations_are_listed_as_suspects(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import atexit
        import signal

        def cleanup():
            pass

        def test_changes_process_state():
            signal.signal(signal.SIGUSR1, lambda *a: None)
            atexit.register(cleanup)
        """,
        "--leakcheck",
        "--leakcheck-json=out.json",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["SUSPECT *::test_changes_process_state: changed (suspect): *"])
    doc = json.loads((pytester.path / "out.json").read_text())
    [entry] = doc["tests"]
    kinds = sorted(p["kind"] for p in entry["pending"])
    assert kinds == ["atexit", "signal handler"]
    assert all(p["verdict"] == "suspect" for p in entry["pending"])


def test_trace_shows_where_objects_and_timers_were_created(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import threading
        import pytest

        class User:
            def __init__(self):
                self.timer = threading.Timer(60, self.tick)
                self.timer.daemon = True
                self.timer.start()

            def tick(self):
                pass

        def connect():
            return User()

        @pytest.mark.leakcheck
        def test_connects():
            connect()
        """,
        "--leakcheck-trace",
    )
    result.assert_outcomes(passed=1, failed=1)
    name = "test_trace_shows_where_objects_and_timers_were_created.py"
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.User, * held by threading.Timer: *",
            f"  the threading.Timer was started at {name}:8 in __init__: self.timer.start() "
            f"(from {name}:14 in connect, from {name}:18 in test_connects)",
            f"  User created at {name}:14 in connect: return User() "
            f"(from {name}:18 in test_connects)",
            "  LEAK 1 x threading.Timer: *",
            f"    started at {name}:8 in __init__: self.timer.start() (from *",
        ]
    )
    assert "run with --leakcheck-trace" not in result.stdout.str()


def test_a_session_scoped_pytest_asyncio_loop_keeps_a_task_found_after_its_test(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_asyncio")
    result = run(
        pytester,
        """
        import asyncio
        import pytest

        class Ticker:
            def __init__(self):
                self.ticks = 0

            async def run(self):
                while True:
                    await asyncio.sleep(0.01)
                    self.ticks += 1

        @pytest.mark.leakcheck
        @pytest.mark.asyncio(loop_scope="session")
        async def test_starts_a_ticker():
            asyncio.get_running_loop().create_task(Ticker().run())
            await asyncio.sleep(0.03)

        @pytest.mark.asyncio(loop_scope="session")
        async def test_later_on_the_same_loop():
            await asyncio.sleep(0)
        """,
        "-o",
        "asyncio_default_fixture_loop_scope=session",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.Ticker, * held by asyncio.Task: Task * running Ticker.run*",
            "  LEAK 1 x asyncio.Task: Task * running Ticker.run*",
        ]
    )


def test_a_shared_pool_finishing_the_tests_work_item_is_not_a_leak_but_a_stuck_one_is(
    pytester: pytest.Pytester,
) -> None:
    # The pool and its worker thread exist before the tests: asgiref's class-level executor.
    result = run(
        pytester,
        """
        import threading
        import time
        from concurrent.futures import ThreadPoolExecutor
        import pytest

        POOL = ThreadPoolExecutor(max_workers=1)
        POOL.submit(time.sleep, 0).result()
        GATE = threading.Event()
        STARTED = threading.Event()

        class Job:
            def __init__(self, seconds):
                self.seconds = seconds

        def work(job):
            STARTED.set()
            time.sleep(job.seconds)

        def stuck(job):
            STARTED.set()
            GATE.wait(30)

        def submit(function, job):
            # Running, not queued, when the test returns: a queued job is held by the pool's
            # C-level queue, which no walk can see.
            STARTED.clear()
            POOL.submit(function, job)
            assert STARTED.wait(5)

        @pytest.mark.leakcheck
        def test_hands_a_short_job_to_the_pool():
            submit(work, Job(0.1))  # still running when the test returns

        @pytest.mark.leakcheck
        def test_hands_a_job_that_never_ends():
            submit(stuck, Job(0))

        def test_release():
            GATE.set()
        """,
        "-v",
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_hands_a_short_job_to_the_pool PASSED*",
            "*test_hands_a_job_that_never_ends LEAKED*",
            "LEAK: 1 x *.Job, * held by threading.Thread: *ThreadPoolExecutor*",
        ]
    )
    # Under --leakcheck the stuck job is in flight in a thread the test did not start: listed.
    source = pytester.path.joinpath(
        "test_a_shared_pool_finishing_the_tests_work_item_is_not_a_leak_but_a_stuck_one_is.py"
    ).read_text()
    # (Every suspect explained: in a session this short the default budget may be spent.)
    lenient = run(
        pytester,
        source.replace("@pytest.mark.leakcheck", ""),
        "--leakcheck",
        "--leakcheck-explain-budget=100",
    )
    lenient.assert_outcomes(passed=3)
    lenient.stdout.fnmatch_lines(
        ["SUSPECT *::test_hands_a_job_that_never_ends: 1 x *.Job, * (threading.Thread)"]
    )


def test_a_context_variable_left_set_is_named_as_the_holder(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import contextvars
        import pytest

        CURRENT = contextvars.ContextVar("current_user")

        class User:
            pass

        @pytest.mark.leakcheck
        def test_sets_and_forgets():
            CURRENT.set(User())

        @pytest.mark.leakcheck
        def test_sets_and_resets():
            token = CURRENT.set(User())
            CURRENT.reset(token)
        """,
        "-v",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_sets_and_forgets LEAKED*",
            "*test_sets_and_resets PASSED*",
            "LEAK: 1 x *.User, * held by context variable: a context variable of thread "
            "'MainThread'*",
            "  hint: reset the variable when done*",
        ]
    )


def test_a_worker_that_an_older_pool_starts_lazily_is_the_pools_not_the_tests(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import time
        from concurrent.futures import ThreadPoolExecutor
        import pytest

        import threading

        SHARED = ThreadPoolExecutor(max_workers=1)  # made at import, no worker yet
        STARTED = threading.Event()

        class Job:
            pass

        def work(job):
            STARTED.set()
            time.sleep(0.05)

        @pytest.mark.leakcheck
        def test_first_user_of_the_shared_pool():
            SHARED.submit(work, Job())  # starts the pool's worker, still busy at the check
            assert STARTED.wait(5)  # running, not queued (a queue in C hides what it holds)

        POOLS = []

        @pytest.mark.leakcheck
        def test_own_pool_left_running():
            pool = ThreadPoolExecutor(max_workers=1)
            POOLS.append(pool)  # kept, never shut down: its worker waits forever
            pool.submit(time.sleep, 0.01).result()
        """,
        "-v",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_first_user_of_the_shared_pool PASSED*",
            "*test_own_pool_left_running LEAKED*",
            "  LEAK 1 x threading.Thread: *ThreadPoolExecutor*",
        ]
    )


def test_under_leakcheck_a_thread_holding_nothing_of_the_project_is_a_suspect(
    pytester: pytest.Pytester,
) -> None:
    # anyio's suite: a test's server thread sleeps past the end of the test, then exits.
    source = """
        import threading
        import time

        class Session:
            pass

        KEEP = []

        def test_server_thread_outlives_the_test():
            threading.Thread(target=time.sleep, args=(1,), daemon=True).start()

        def test_thread_holds_a_session():
            session = Session()
            threading.Thread(target=lambda: time.sleep(1) or session, daemon=True).start()
        """
    lenient = run(pytester, source, "--leakcheck", "-p", "no:randomly")
    lenient.assert_outcomes(passed=2, failed=1)
    lenient.stdout.fnmatch_lines(
        [
            "SUSPECT *::test_server_thread_outlives_the_test: left running (suspect): 1 x thr*",
            "LEAK *::test_thread_holds_a_session: 1 x *.Session*(threading.Thread)",
        ]
    )
    strict = run(pytester, source, "--leakcheck", "--leakcheck-strict", "-p", "no:randomly")
    strict.assert_outcomes(passed=2, failed=2)


def test_a_timer_that_reuses_the_ident_of_an_ended_fixture_thread_is_still_the_tests(
    pytester: pytest.Pytester,
) -> None:
    # A thread that ends frees its ident, and the next thread usually gets it: a module
    # fixture's thread ended, then the test's timer took its ident. By ident alone the timer
    # passed for the fixture's thread: not reported, not cancelled.
    result = run(
        pytester,
        """
        import threading
        import pytest

        @pytest.fixture(scope="module")
        def helper():
            done = threading.Event()
            thread = threading.Thread(target=done.wait)
            thread.start()  # running when the fixture's setup ends: the fixture's thread
            yield thread, done
            done.set()

        @pytest.mark.leakcheck
        def test_leaves_a_timer(helper):
            thread, done = helper
            done.set()
            thread.join()
            timer = threading.Timer(60, print)
            timer.daemon = True
            timer.start()
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["  LEAK 1 x threading.Timer: Timer * calling builtins.print"])


def test_a_pool_the_test_never_shut_down_gets_the_executors_hint(
    pytester: pytest.Pytester,
) -> None:
    """The root is a worker thread, but what the user holds is the executor: the hint names
    the call that stops it, not the thread's."""
    code = """
        import concurrent.futures
        import threading

        import pytest

        release = threading.Event()


        class Job:
            def __init__(self):
                self.pool = concurrent.futures.ThreadPoolExecutor(1)
                self.pool.submit(self.run)

            def run(self):
                release.wait(2)


        @pytest.mark.leakcheck
        def test_job():
            Job()
    """
    result = run(pytester, code)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.Job, retaining *, held by threading.Thread: Thread "
            "'ThreadPoolExecutor-*' (alive) running concurrent.futures.thread._worker",
            "  hint: shut the executor down when its owner goes away (executor.shutdown()), *",
        ]
    )


HEARTBEAT_FIXTURE = """
    import threading
    import time

    import pytest

    <scope>


    class Heartbeat:
        def __init__(self):
            self.beats = 0
            self.timer = None

        def start(self):
            self.timer = threading.Timer(0.02, self.beat)
            self.timer.daemon = True
            self.timer.start()

        def beat(self):
            self.beats += 1
            self.start()  # the next timer, started by this one's thread

        def stop(self):
            self.timer.cancel()


    @pytest.fixture(scope=SCOPE)
    def heartbeat():
        beat = Heartbeat()
        beat.start()
        yield beat
        <teardown>


    @pytest.mark.leakcheck
    def test_first_to_need_it(heartbeat):
        time.sleep(0.05)


    @pytest.mark.leakcheck
    @pytest.mark.parametrize("n", range(3))
    def test_later(heartbeat, n):
        beats = heartbeat.beats
        time.sleep(0.15)
        assert heartbeat.beats > beats, "the fixture's heartbeat was stopped"
"""


@pytest.mark.parametrize("scope", ["session", "module"])
def test_a_wider_fixtures_heartbeat_is_the_fixtures_and_goes_on_beating(
    pytester: pytest.Pytester, scope: str
) -> None:
    # Its chain re-arms a new timer at each beat, in the timer's own thread: only the first
    # timer was alive when the fixture's setup ended. Its later timers were blamed on the
    # first test, and cancelled, so the later tests saw a dead heartbeat and failed.
    code = source(HEARTBEAT_FIXTURE, scope=f'SCOPE = "{scope}"', teardown="beat.stop()")
    result = run(pytester, code, "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert "leakcheck summary" not in result.stdout.str()


def test_what_a_fixture_leaves_ticking_after_its_teardown_is_its_leftover(
    pytester: pytest.Pytester,
) -> None:
    code = source(HEARTBEAT_FIXTURE, scope='SCOPE = "module"', teardown="")
    pytester.makepyfile(
        test_zz_after="""
        import time
        import pytest

        @pytest.mark.leakcheck
        def test_after_the_module():
            time.sleep(0.1)
    """
    )
    result = run(pytester, code, "-p", "no:randomly", "--leakcheck-json=out.json")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        ["leakcheck: the module-scoped fixture 'heartbeat' left threading.Timer running, found *"]
    )
    doc = load_json(pytester)
    assert [left["made_by"] for left in doc["leftovers"]] == [
        "the module-scoped fixture 'heartbeat'"
    ]


def test_a_timer_an_earlier_test_left_is_named_though_it_never_fired_in_the_window(
    pytester: pytest.Pytester,
) -> None:
    # Leftovers were found among what the window saw made: a chain that did not tick while the
    # checked test ran (here one slow timer; under load, a starved chain) went unnamed.
    result = run(
        pytester,
        """
        import threading
        import time
        import pytest

        def test_unchecked_leaves_a_slow_timer():
            timer = threading.Timer(60, print)
            timer.daemon = True
            timer.start()

        @pytest.mark.leakcheck
        def test_checked_after_it():
            time.sleep(0.01)

        def test_nothing_ticks_any_more():
            assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        """,
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["leakcheck: *::test_unchecked_leaves_a_slow_timer left threading.Timer running, found *"]
    )


def test_a_leftover_chain_caught_between_two_timers_is_named_once() -> None:
    # Listed while one timer's callback armed the next, a chain has two pending timers: both
    # are stopped, and the report names the chain once (two lines read as two leaks).
    import threading

    from pytest_leakcheck.findings import Pending
    from pytest_leakcheck.origins import Origins

    class Beat:
        def tick(self) -> None:
            pass

    one, other = Beat(), Beat()
    found = [
        (Pending("threading.Timer", f"Timer {n}"), timer)
        for n, timer in enumerate(
            [
                threading.Timer(60, one.tick),  # the chain's old timer, in its callback
                threading.Timer(60, one.tick),  # and the next one it armed
                threading.Timer(60, other.tick),  # another object's chain
                threading.Thread(target=print),
                threading.Thread(target=print),
            ]
        )
    ]
    assert [item.description for item in Origins.reported(found)] == [
        "Timer 0",
        "Timer 2",
        "Timer 3",
        "Timer 4",
    ]
