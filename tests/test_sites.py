"""Where a leaked object and what holds it were made, without any option.

The root's site (a timer's ``start()``, a ``call_later``, a task, a ``sched`` event, an ``atexit``
registration) is noted when it is made, on every version; for a chain, where the chain started.
The survivor's site is noted by ``sys.monitoring`` from Python 3.12, for the project's own classes
only; before 3.12 it needs ``--leakcheck-trace``, and the report says so.
"""

from __future__ import annotations

import json
import sys

import pytest

from helpers import run

MONITORING = sys.version_info >= (3, 12)

CHAIN = """
    import threading
    import time

    import pytest


    class Heartbeat:
        def __init__(self, period):
            self.period = period
            self.beats = 0
            self.start()

        def start(self):
            self.timer = threading.Timer(self.period, self.beat)
            self.timer.daemon = True
            self.timer.start()

        def beat(self):
            self.beats += 1
            self.timer = threading.Timer(self.period, self.beat)
            self.timer.daemon = True
            self.timer.start()


    class Session:
        def __init__(self):
            self.heartbeat = Heartbeat(0.02)


    def connect():
        return Session()


    @pytest.mark.leakcheck
    def test_session():
        connect()
        time.sleep(0.1)  # a few beats: the timer found at the end was armed by the chain
"""


def test_where_a_chain_started_and_where_its_owner_was_made_are_named(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, CHAIN, "--leakcheck-json=out.json")
    result.assert_outcomes(passed=1, failed=1)
    name = "test_where_a_chain_started_and_where_its_owner_was_made_are_named.py"
    # Line 16 starts each timer; line 11 (Heartbeat.__init__) started the chain, line 22 (beat)
    # re-arms it; line 27 (Session.__init__) made the Heartbeat, called from line 31 (connect).
    start = (
        f"{name}:16 in start: self.timer.start()"
        f" (from {name}:11 in __init__, from {name}:27 in __init__)"
    )
    result.stdout.fnmatch_lines([f"  the threading.Timer was started at {start}"])
    result.stdout.fnmatch_lines([f"    started at {start}"])
    out = result.stdout.str()
    assert "in beat: self.timer.start()" not in out  # never the re-arm inside the chain
    doc = json.loads((pytester.path / "out.json").read_text())
    [entry] = doc["tests"]
    assert {g["root_created"] for g in entry["leaks"]} == {start}
    assert {p["created"] for p in entry["pending"]} == {start}
    [beats] = [g for g in entry["leaks"] if g["type"].endswith(".Heartbeat")]
    if MONITORING:
        expected = (
            f"{name}:27 in __init__: self.heartbeat = Heartbeat(0.02)"
            f" (from {name}:31 in connect, from {name}:36 in test_session)"
        )
        assert beats["created"] == expected
        assert "--leakcheck-trace" not in out
    else:
        assert beats["created"] is None
        assert "(run with --leakcheck-trace to see where these objects were created" in out


def test_sites_of_handles_tasks_events_exit_hooks_and_signal_handlers(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import asyncio
        import threading

        import pytest


        @pytest.fixture(scope="module")
        def loop():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, daemon=True)
            thread.start()
            yield loop
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
        """
    )
    result = run(
        pytester,
        """
        import asyncio
        import atexit
        import sched
        import signal
        import time

        import pytest

        SCHEDULER = sched.scheduler(time.monotonic, time.sleep)


        class Ticker:
            def tick(self):
                pass


        async def pulse():
            while True:
                await asyncio.sleep(0.05)


        @pytest.mark.leakcheck
        def test_handle(loop):
            async def schedule():
                asyncio.get_running_loop().call_later(60, Ticker().tick)
            asyncio.run_coroutine_threadsafe(schedule(), loop).result(5)


        @pytest.mark.leakcheck
        def test_task(loop):
            async def spawn():
                return asyncio.create_task(pulse())
            asyncio.run_coroutine_threadsafe(spawn(), loop).result(5)


        @pytest.mark.leakcheck
        def test_event():
            SCHEDULER.enter(60, 1, Ticker().tick)


        @pytest.mark.leakcheck
        def test_exit_hook():
            atexit.register(Ticker().tick)


        @pytest.mark.leakcheck
        def test_signal_handler():
            previous = signal.signal(signal.SIGUSR2, Ticker().tick)
            assert previous == signal.SIG_DFL
        """,
        "--leakcheck-json=out.json",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=5, failed=5)
    doc = json.loads((pytester.path / "out.json").read_text())
    created = {
        e["nodeid"].rpartition("::")[2]: {p["kind"]: p["created"] for p in e["pending"]}
        for e in doc["tests"]
    }
    name = "test_sites_of_handles_tasks_events_exit_hooks_and_signal_handlers.py"

    def made_at(test: str, kind: str, where: str) -> bool:
        site = created[test][kind]
        return site.startswith(f"{name}:") and f" in {where}" in site

    assert made_at("test_task", "asyncio.Task", "spawn: return asyncio.create_task(pulse())")
    assert made_at("test_event", "sched.Event", "test_event: SCHEDULER.enter(60, 1,")
    assert made_at("test_exit_hook", "atexit", "test_exit_hook: atexit.register(Ticker().tick)")
    assert made_at("test_handle", "asyncio.TimerHandle", "schedule: asyncio.get_running_loop()")
    assert made_at(
        "test_signal_handler", "signal handler", "test_signal_handler: previous = signal.signal("
    )
    # The handler holds its Ticker: the root's line says where the test set it.
    result.stdout.fnmatch_lines(
        ["  the signal handler was set at *:* in test_signal_handler: previous = signal.signal(*"]
    )


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring exists from Python 3.12")
def test_the_monitor_notes_a_few_instances_of_each_class_per_test_and_every_test_again(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import pytest

        KEEP = []


        class Item:
            def __init__(self, n):
                self.n = n


        def make(n):
            return Item(n)


        @pytest.mark.leakcheck
        def test_first():
            KEEP.append(make(0))


        @pytest.mark.leakcheck
        def test_second():
            items = [Item(n) for n in range(100)]  # many, then one that leaks
            KEEP.append(make(1))
        """,
        "--leakcheck-json=out.json",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2, failed=2)
    doc = json.loads((pytester.path / "out.json").read_text())
    created = {e["nodeid"].rpartition("::")[2]: e["leaks"][0]["created"] for e in doc["tests"]}
    name = "test_the_monitor_notes_a_few_instances_of_each_class_per_test_and_every_test_again.py"
    assert (
        created["test_first"].startswith(f"{name}:")
        and " in make: return Item(n) (from " in created["test_first"]
    )
    # Past the first few instances of a test, the class is no longer reported: the leaked one
    # was made after a hundred others, so only where the test made its first one is known.
    assert " in test_second: items = [Item(n) for n in range(100)]" in created["test_second"]
    assert created["test_second"].endswith("(where this test made its first one)")


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring exists from Python 3.12")
def test_when_other_tools_hold_the_free_monitoring_ids_nothing_breaks(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import sys

        for tool in (3, 4):
            sys.monitoring.use_tool_id(tool, "another tool")
        """
    )
    result = run(
        pytester,
        """
        import pytest

        KEEP = []

        class Item:
            pass

        @pytest.mark.leakcheck
        def test_it():
            KEEP.append(Item())
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    assert "Item created at" not in result.stdout.str()
    assert "LeakcheckWarning" not in result.stdout.str()


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring exists from Python 3.12")
def test_noting_where_an_instance_is_made_keeps_none_of_the_arguments_alive(
    pytester: pytest.Pytester,
) -> None:
    # To find `self`, the monitor reads the locals of the __init__ it was told of. Before 3.13
    # that read left a snapshot of every argument on the frame, and a frame kept by a traceback
    # then kept the arguments that the __init__ had dropped (tornado's coroutine Runner drops
    # them so that a coroutine's locals are freed without the collector; its test of that failed).
    result = run(
        pytester,
        """
        import weakref

        import pytest


        class Payload:
            pass


        class Runner:
            def __init__(self, payload):
                payload = None  # dropped before it fails, to be freed at once
                raise ValueError("kept with its traceback, and so the frame")


        @pytest.mark.leakcheck
        def test_the_dropped_argument_is_freed_at_once():
            payload = Payload()
            ref = weakref.ref(payload)
            try:
                Runner(payload)
            except ValueError as exc:
                error = exc
            del payload
            assert ref() is None
            del error
        """,
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("args", [(), ("--leakcheck-trace",)], ids=["default", "trace"])
def test_noting_where_an_instance_is_made_keeps_none_of_its_classes_alive(
    pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    # A class made by the test (a handler subclass, as tornado's tests make) holds what its
    # methods close over. The site noted for its instance must not keep the class: it would keep
    # the closed-over user alive until the check ended, and the check would call that a leak.
    result = run(
        pytester,
        """
        import pytest


        class Handler:
            def __init__(self):
                self.calls = 0


        class User:
            pass


        @pytest.mark.leakcheck
        def test_a_local_handler_class_goes_with_its_test():
            user = User()

            class UserHandler(Handler):
                def get(self):
                    return user

            assert UserHandler().get() is user
        """,
        *args,
    )
    result.assert_outcomes(passed=1)
    assert "LeakcheckWarning" not in result.stdout.str()
