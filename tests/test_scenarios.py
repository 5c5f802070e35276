"""End-to-end scenarios: real timers, threads, loops and schedulers, leaked and then fixed.

Every scenario writes a small project into a pytester directory (its classes are the project's
own, since they live under the inner rootdir) and runs pytest on it in a subprocess, so that leaked
timers and threads die with that process instead of piling up in this one. Inner code uses daemon
threads so that the subprocess can exit while a leak is still running.

Each scenario has a LEAKY variant, whose report must name the leaked type, the kind of root that
holds it and a step of the path, and a FIXED variant of the same code that stops the thing
properly and must pass without any leak output. The varying part of an inner source is written
as a placeholder line, ``<name>``, that :func:`source` replaces with a snippet.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import pytest

SUBPROCESS_TIMEOUT = 60

# -- helpers ---------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"^(?P<indent>\s*)<(?P<name>\w+)>\s*$")


def source(*parts: str, **snippets: str) -> str:
    """Join dedented ``parts`` and replace each ``<name>`` line with ``snippets[name]``.

    The snippet is indented like the placeholder line; an empty snippet removes the line (for an
    optional decorator).
    """
    lines: list[str] = []
    for part in parts:
        for line in textwrap.dedent(part).strip("\n").splitlines():
            match = _PLACEHOLDER.match(line)
            if match is None:
                lines.append(line)
                continue
            snippet = textwrap.dedent(snippets[match["name"]]).strip("\n")
            lines.extend(match["indent"] + s if s.strip() else "" for s in snippet.splitlines())
        lines.append("")
    return "\n".join(lines)


def run(pytester: pytest.Pytester, code: str, *args: str) -> pytest.RunResult:
    """Write ``code`` as the test module and run pytest on it in a fresh interpreter."""
    pytester.makepyfile(code)
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", *args, timeout=SUBPROCESS_TIMEOUT
    )


def assert_leaked(
    result: pytest.RunResult,
    *,
    root: str,
    step: str,
    test: str = "test_user_session",
    type_name: str = "User",
    passed: int = 1,
    errors: int = 1,
) -> None:
    """The test failed at teardown with a leak report naming the type, the root kind and a step."""
    result.assert_outcomes(passed=passed, errors=errors)
    result.stdout.fnmatch_lines(
        [
            f"*ERROR at teardown of *{test}*",
            f"leakcheck: leaked 1 object of {type_name}, held by {root}",
            f"LEAK: 1 x *.{type_name}, retaining *, held by {root}: *",
            step,
            "*hint: *",
            "*= leakcheck summary =*",
            f"LEAK *::{test}: 1 x *.{type_name}, retaining * ({root})",
            f"LEAKED *::{test}*",
        ]
    )


def assert_clean(result: pytest.RunResult, *, passed: int = 1) -> None:
    """Everything passed and the plugin had nothing to say."""
    result.assert_outcomes(passed=passed)
    out = result.stdout.str()
    assert "leakcheck summary" not in out
    assert "LEAK" not in out
    assert "suspect" not in out.lower()
    assert "LeakcheckWarning" not in out


def load_json(pytester: pytest.Pytester, name: str = "out.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pytester.path / name).read_text(encoding="utf-8"))
    return data


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
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*-> * <built-in method task_wakeup of *"])  # the step is there
    assert "<attribute '__qualname__'" not in result.stdout.str()  # and readable


def test_a_cancelled_task_releases_its_user(pytester: pytest.Pytester) -> None:
    stop = "asyncio.run_coroutine_threadsafe(self._stop(), loop).result(5)"
    assert_clean(run(pytester, task_user(disconnect=stop)))


# -- 5. a sched.scheduler event --------------------------------------------------------------------

SCHED_USER = """
    import sched
    import time

    import pytest

    scheduler = sched.scheduler(time.monotonic, time.sleep)  # nobody runs it during the test


    class User:
        def __init__(self):
            self.expiry = scheduler.enter(60, 1, self.expire)

        def expire(self):
            pass

        def disconnect(self):
            <disconnect>
"""

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

REGISTRY_USER = """
    import pytest

    REGISTRY = []


    class User:
        def __init__(self, name):
            self.name = name
            REGISTRY.append(self)

        def disconnect(self):
            <disconnect>
"""

REGISTRY_TEST = """
    <marker>
    def test_user_session():
        User("ann").disconnect()
"""


def registry(*, marker: str = "@pytest.mark.leakcheck", disconnect: str = "pass") -> str:
    return source(REGISTRY_USER, REGISTRY_TEST, marker=marker, disconnect=disconnect)


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


def test_a_module_global_registry_is_only_a_suspect_under_the_option(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, registry(marker=""), "--leakcheck", "--leakcheck-json=out.json")
    result.assert_outcomes(passed=1)
    assert "LEAK" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*= leakcheck summary =*",
            "SUSPECT *::test_user_session: 1 x *.User, retaining * (module global)",
            "0 leaking, 1 suspect test(s)*",
        ]
    )
    [entry] = load_json(pytester)["tests"]
    assert entry["nodeid"].endswith("::test_user_session")
    assert entry["verdict"] == "suspect"
    [group] = entry["leaks"]
    assert group["type"].endswith(".User")
    assert (group["count"], group["root"], group["verdict"]) == (1, "module global", "suspect")
    assert ".REGISTRY -> list of 1" in group["path"]


def test_with_no_explain_budget_suspects_are_counted_without_a_path(
    pytester: pytest.Pytester,
) -> None:
    args = ("--leakcheck", "--leakcheck-json=out.json", "--leakcheck-explain-budget=0")
    result = run(pytester, registry(marker=""), *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "SUSPECT *::test_user_session: 1 x *.User (unknown)",
            "1 suspect group(s) counted without a path: explaining suspects had used its 0% *",
        ]
    )
    [entry] = load_json(pytester)["tests"]
    [group] = entry["leaks"]
    assert (group["count"], group["root"], group["verdict"]) == (1, "unknown", "suspect")
    assert group["root_description"].startswith("not walked: the session's time budget")
    # A leak is always explained: the budget is for suspects only.
    strict = run(pytester, registry(marker=""), *args, "--leakcheck-strict")
    assert_leaked(strict, root="module global", step="*.REGISTRY -> list of 1")


def test_a_module_global_registry_is_a_leak_again_with_the_strict_option(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, registry(marker=""), "--leakcheck", "--leakcheck-strict")
    assert_leaked(result, root="module global", step="*.REGISTRY -> list of 1")


def test_a_module_global_registry_is_a_suspect_under_a_non_strict_marker(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, registry(marker="@pytest.mark.leakcheck(strict=False)"))
    result.assert_outcomes(passed=1)
    assert "LEAK" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        ["SUSPECT *::test_user_session: 1 x *.User, retaining * (module global)"]
    )


def test_a_user_that_leaves_the_registry_is_released(pytester: pytest.Pytester) -> None:
    fixed = registry(disconnect="REGISTRY.remove(self)")
    assert_clean(run(pytester, fixed))
    assert_clean(run(pytester, fixed, "--leakcheck", "--leakcheck-strict"))


# -- 7. selecting tests: enabled=False, class and module markers, the ini switch -------------------


def test_a_test_opted_out_with_enabled_false_is_not_checked(pytester: pytest.Pytester) -> None:
    opted_out = """
        @pytest.mark.leakcheck(enabled=False)
        def test_opted_out():
            User().disconnect()


        def test_checked():
            User().disconnect()
    """
    result = run(pytester, source(SCHED_USER, opted_out, disconnect="pass"), "--leakcheck")
    # The same leak in the test next to it shows what the opt-out hides.
    assert_leaked(
        result, root="sched.Event", step="*.__self__ -> *.User", test="test_checked", passed=2
    )
    assert "::test_opted_out" not in result.stdout.str()


def test_a_marker_on_a_class_checks_its_tests(pytester: pytest.Pytester) -> None:
    in_a_class = """
        @pytest.mark.leakcheck
        class TestSession:
            def test_user_session(self):
                User("ann").disconnect()
    """
    result = run(pytester, source(REGISTRY_USER, in_a_class, disconnect="pass"))
    assert_leaked(result, root="module global", step="*.REGISTRY -> list of 1")
    result.stdout.fnmatch_lines(["LEAK *::TestSession::test_user_session: *"])


def test_a_module_pytestmark_checks_its_tests(pytester: pytest.Pytester) -> None:
    module_mark = """
        pytestmark = pytest.mark.leakcheck


        def test_user_session():
            User("ann").disconnect()
    """
    result = run(pytester, source(REGISTRY_USER, module_mark, disconnect="pass"))
    assert_leaked(result, root="module global", step="*.REGISTRY -> list of 1")


def test_the_ini_switch_checks_unmarked_tests(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nleakcheck = true\n")
    unmarked = """
        def test_user_session():
            User().disconnect()
    """
    result = run(pytester, source(SCHED_USER, unmarked, disconnect="pass"))
    assert_leaked(result, root="sched.Event", step="*.__self__ -> *.User")


# -- 8. the JSON report ----------------------------------------------------------------------------


def test_the_json_report_is_written_when_nothing_leaked(pytester: pytest.Pytester) -> None:
    fixed = registry(disconnect="REGISTRY.remove(self)")
    result = run(pytester, fixed, "--leakcheck-json=out.json")
    assert_clean(result)
    doc = load_json(pytester)
    assert (doc["version"], doc["not_checked"], doc["tests"]) == (1, [], [])
    [checked] = doc["checked"]  # the heap figures of every checked test
    assert checked["nodeid"].endswith("::test_user_session")


def test_a_test_that_fails_by_itself_is_listed_as_not_checked(pytester: pytest.Pytester) -> None:
    tests = """
        @pytest.mark.leakcheck
        def test_fails_by_itself():
            User("bob")
            assert False, "the test's own failure"


        @pytest.mark.leakcheck
        def test_user_session():
            User("ann").disconnect()
    """
    result = run(
        pytester, source(REGISTRY_USER, tests, disconnect="pass"), "--leakcheck-json=out.json"
    )
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_fails_by_itself _*",
            "*AssertionError: the test's own failure",
            "*- leakcheck -*",
            "not checked for leaks: the test failed*",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED *::test_fails_by_itself*"])
    assert "ERROR at teardown of test_fails_by_itself" not in result.stdout.str()
    data = load_json(pytester)
    assert data["version"] == 1
    assert [(e["nodeid"].split("::")[-1], e["reason"]) for e in data["not_checked"]] == [
        ("test_fails_by_itself", "the test failed")
    ]
    [entry] = data["tests"]
    assert entry["nodeid"].endswith("::test_user_session")
    assert entry["verdict"] == "leak"
    [group] = entry["leaks"]
    assert group["type"].endswith(".User")
    assert (group["count"], group["root"]) == (1, "module global")
    assert group["path"][-1].endswith(".User")


# -- 9. disabling the plugin -----------------------------------------------------------------------


def test_the_plugin_can_be_disabled_with_p_no_leakcheck(pytester: pytest.Pytester) -> None:
    # Without the plugin the marker is unknown: a warning, not an error, without --strict-markers.
    result = run(pytester, source(SCHED_USER, SCHED_TEST, disconnect="pass"), "-p", "no:leakcheck")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*PytestUnknownMarkWarning: Unknown pytest.mark.leakcheck*"])
    assert "LEAK" not in result.stdout.str()
    assert "leakcheck summary" not in result.stdout.str()


# -- 10 and 11. fixture values ---------------------------------------------------------------------

FIXTURE_USER = """
    import pytest


    class User:
        pass


    class Server:
        def __init__(self):
            self.admin = User()
"""


def test_a_module_scoped_fixture_is_not_a_leak_of_its_first_user(
    pytester: pytest.Pytester,
) -> None:
    tests = """
        @pytest.fixture(scope="module")
        def server():
            return Server()  # created during the first test that asks for it, kept until the end


        @pytest.mark.leakcheck
        def test_first(server):
            assert isinstance(server.admin, User)


        @pytest.mark.leakcheck
        def test_second(server):
            assert isinstance(server.admin, User)
    """
    result = run(pytester, source(FIXTURE_USER, tests))
    assert_clean(result, passed=2)


def test_a_module_scoped_generator_fixture_is_not_a_leak_under_the_option(
    pytester: pytest.Pytester,
) -> None:
    tests = """
        @pytest.fixture(scope="module")
        def user():
            yield User()


        def test_first(user):
            pass


        def test_second(user):
            pass
    """
    result = run(pytester, source(FIXTURE_USER, tests), "--leakcheck", "--leakcheck-strict")
    assert_clean(result, passed=2)


def test_a_function_scoped_fixture_value_is_dropped_after_teardown(
    pytester: pytest.Pytester,
) -> None:
    tests = """
        @pytest.fixture
        def user():
            return User()


        @pytest.mark.leakcheck
        def test_user_session(user):
            pass
    """
    assert_clean(run(pytester, source(FIXTURE_USER, tests)))
