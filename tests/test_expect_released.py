"""``leakcheck.expect_released(obj, why)``: an object of any type the test names must be gone when
it ends, checked or not, lenient or strict, and the report says why the test expected it and
what holds it instead.
"""

from __future__ import annotations

import asyncio

import pytest

from helpers import assert_clean, load_json, run, source
from pytest_leakcheck import LeakCheck, WatchFilter

INBOX = """
    import queue
    import threading


    def subscribe(inbox, period):
        # A library-style subscription: a timer that will put a tick in the inbox.
        timer = threading.Timer(period, inbox.put, args=("tick",))
        timer.daemon = True
        timer.start()
        return timer
"""

LEAKY_INBOX = source(
    INBOX,
    """
    def test_inbox(leakcheck):
        inbox = queue.Queue()
        subscribe(inbox, 30)
        leakcheck.expect_released(inbox, "the inbox goes with its connection")
    """,
)

FIXED_INBOX = source(
    INBOX,
    """
    def test_inbox(leakcheck):
        inbox = queue.Queue()
        subscribe(inbox, 30).cancel()
        leakcheck.expect_released(inbox, "the inbox goes with its connection")
    """,
)


@pytest.mark.parametrize("options", [(), ("--leakcheck",)], ids=["unchecked", "checked"])
def test_an_object_a_timer_holds_fails_the_test(
    pytester: pytest.Pytester, options: tuple[str, ...]
) -> None:
    result = run(pytester, LEAKY_INBOX, *options)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "leakcheck: leaked 1 object of Queue, held by threading.Timer, retaining *",
            "LEAK: 1 x queue.Queue, retaining *, held by threading.Timer: *",
            "  expected to be released: the inbox goes with its connection (said at "
            "test_an_object_a_timer_holds_fails_the_test.py:* in test_inbox: "
            'leakcheck.expect_released(inbox, "the inbox goes with its connection"))',
            "*Timer*",
            "*.put*",
            "LEAKED *::test_inbox*",
        ]
    )


@pytest.mark.parametrize("options", [(), ("--leakcheck",)], ids=["unchecked", "checked"])
def test_a_released_object_passes(pytester: pytest.Pytester, options: tuple[str, ...]) -> None:
    assert_clean(run(pytester, FIXED_INBOX, *options))


def test_a_cache_entry_is_a_leak_even_under_a_lenient_check(pytester: pytest.Pytester) -> None:
    """A lenient check lets survivors held by module globals pass as suspects; a named one does
    not."""
    code = source(
        """
        import queue

        _recent = {}


        def open_inbox(name):
            inbox = _recent[name] = queue.Queue()
            return inbox


        def test_inbox(leakcheck):
            leakcheck.expect_released(open_inbox("alice"), "closed with the session")
        """
    )
    result = run(pytester, code, "--leakcheck", "--leakcheck-json=leaks.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x queue.Queue, retaining *, held by module global: *",
            "  expected to be released: closed with the session (said at *)",
            "*_recent*",
        ]
    )
    (entry,) = load_json(pytester, "leaks.json")["tests"]
    (group,) = entry["leaks"]
    assert group["expected"] == "closed with the session"
    assert "test_inbox" in group["expected_at"]
    assert group["verdict"] == "leak"


def test_an_object_a_stopping_thread_still_holds_for_a_moment_passes(
    pytester: pytest.Pytester,
) -> None:
    """The end of the test waits, briefly, for threads the test started that are ending."""
    code = source(
        """
        import queue
        import threading
        import time


        def drain(inbox):
            time.sleep(0.2)
            inbox.get_nowait()


        def test_inbox(leakcheck):
            inbox = queue.Queue()
            inbox.put("bye")
            threading.Thread(target=drain, args=(inbox,), daemon=True).start()
            leakcheck.expect_released(inbox, "drained on close")
        """
    )
    for options in ((), ("--leakcheck",)):
        run(pytester, code, *options).assert_outcomes(passed=1)


def test_an_expected_survivor_is_reported_once(pytester: pytest.Pytester) -> None:
    """A project object that is also a survivor of the check is one group, the expected one."""
    code = source(
        """
        import threading

        import pytest


        class User:
            def __init__(self):
                self.timer = threading.Timer(30, self.tick)
                self.timer.daemon = True
                self.timer.start()

            def tick(self):
                pass


        @pytest.mark.leakcheck
        def test_user(leakcheck):
            leakcheck.expect_released(User(), "disconnected")
        """
    )
    result = run(pytester, code, "--leakcheck-json=leaks.json")
    result.assert_outcomes(passed=1, failed=1)
    (entry,) = load_json(pytester, "leaks.json")["tests"]
    groups = [g for g in entry["leaks"] if g["type"].endswith("User")]
    assert [(g["count"], g["expected"]) for g in groups] == [(1, "disconnected")]


def test_a_failing_test_is_not_judged(pytester: pytest.Pytester) -> None:
    code = source(
        LEAKY_INBOX.replace(
            'connection")', 'connection")\n    assert False, "the test\'s own failure"'
        )
    )
    result = run(pytester, code)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the test's own failure" in out
    assert "LEAK" not in out


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            'leakcheck.expect_released({"a": 1}, "gone")',
            "*UsageError: pytest-leakcheck: *::test_it: leakcheck.expect_released() needs an "
            "object that supports weak references, and a dict does not*",
        ),
        (
            "leakcheck.expect_released(queue.Queue(), why=3)",
            "*UsageError: pytest-leakcheck: *::test_it: leakcheck.expect_released(why=3): "
            "why= is the text*",
        ),
    ],
    ids=["not-weakly-referable", "why-not-a-string"],
)
def test_bad_arguments_say_what_to_do(pytester: pytest.Pytester, call: str, message: str) -> None:
    code = source(
        """
        import queue


        def test_it(leakcheck):
            <call>
        """,
        call=call,
    )
    result = run(pytester, code)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])


def test_the_api_names_an_object_a_call_later_holds() -> None:
    """In process, with a real event loop: a closure the loop will call holds its owner."""

    class Feed:
        def on_tick(self) -> None:
            pass

    loop = asyncio.new_event_loop()
    try:
        # A watch that matches nothing here: only the named object can fail the check.
        with LeakCheck(WatchFilter(rootdir="/nonexistent")) as check:
            feed = Feed()
            handle = loop.call_later(60, feed.on_tick)
            check.expect_released(feed, "unsubscribed")
            del feed
        try:
            assert check.findings is not None
            (group,) = check.findings.groups
            assert (group.kind, group.verdict, group.expected) == (
                "asyncio.TimerHandle",
                "leak",
                "unsubscribed",
            )
            assert group.expected_at is not None
            assert "check.expect_released(feed" in group.expected_at
        finally:
            handle.cancel()
        with LeakCheck(WatchFilter(rootdir="/nonexistent")) as check:
            feed = Feed()
            loop.call_later(60, feed.on_tick).cancel()
            check.expect_released(feed, "unsubscribed")
            del feed
        assert check.findings is not None
        assert check.findings.groups == ()
    finally:
        loop.close()
