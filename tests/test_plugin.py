"""The pytest adapter: outcomes, reports, JSON, failures inside the plugin, and xdist."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

TIMER_LEAK = """
    import threading
    import pytest

    TIMERS = []

    class User:
        def tick(self):
            pass

    @pytest.mark.leakcheck
    def test_leaks():
        timer = threading.Timer(60, User().tick)
        timer.daemon = True
        timer.start()
        TIMERS.append(timer)

    @pytest.mark.leakcheck
    def test_clean():
        User().tick()

    def test_zz_stop_timers():
        for timer in TIMERS:
            timer.cancel()
            timer.join()
"""


def test_a_leak_fails_the_run_with_a_report_that_names_type_root_and_path(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TIMER_LEAK)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=3, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*::test_leaks LEAKED*",
            "*ERROR at teardown of test_leaks*",
            "leakcheck: leaked 1 object of User, held by threading.Timer",
            "LEAK: 1 x *.User, retaining *, held by threading.Timer: Timer *calling *.User.tick",
            "*.function -> bound method *User.tick",
            "*.__self__ -> *User",
            "  hint: cancel the timer*",
            "*leakcheck summary*",
            "LEAK *::test_leaks: 1 x *.User, retaining * (threading.Timer)",
        ]
    )


def test_clean_checked_tests_print_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        class User:
            pass

        @pytest.mark.leakcheck
        def test_clean():
            users = [User() for _ in range(10)]
            del users
        """
    )
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "leakcheck:" not in out and "LEAK" not in out and "leakcheck summary" not in out


def test_a_test_that_fails_by_itself_keeps_its_failure_and_says_it_was_not_checked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        KEEP = []

        class User:
            pass

        @pytest.mark.leakcheck
        def test_fails():
            KEEP.append(User())
            assert False, "its own failure"
        """
    )
    result = pytester.runpytest("--leakcheck-json=out.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*its own failure*", "*not checked for leaks: the test failed*"])
    assert "LEAK" not in result.stdout.str()
    doc = json.loads((pytester.path / "out.json").read_text())
    assert doc["tests"] == []
    [entry] = doc["not_checked"]
    assert entry["nodeid"].endswith("was_not_checked.py::test_fails")
    assert entry["reason"] == "the test failed"


def test_the_json_report_is_written_when_nothing_leaked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(): pass")
    pytester.runpytest("--leakcheck", "--leakcheck-json=report.json").assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "report.json").read_text())
    assert (doc["version"], doc["not_checked"], doc["tests"]) == (1, [], [])
    [checked] = doc["checked"]
    assert checked["nodeid"] == "test_the_json_report_is_written_when_nothing_leaked.py::test_it"
    assert isinstance(checked["objects_added"], int)
    assert checked["traced_growth_bytes"] is None  # tracemalloc only runs when a test asks


def test_the_json_report_lists_each_leak_with_type_count_root_and_path(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TIMER_LEAK)
    pytester.runpytest("--leakcheck-json=report.json")
    doc = json.loads((pytester.path / "report.json").read_text())
    [entry] = doc["tests"]
    assert entry["nodeid"].endswith("::test_leaks")
    assert entry["verdict"] == "leak"
    [leak] = entry["leaks"]
    assert leak["type"].endswith(".User")
    assert leak["count"] == 1
    assert leak["root"] == "threading.Timer"
    assert leak["path"][-1].startswith(".__self__ -> ")


def test_the_plugin_keeps_no_reference_to_what_it_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import gc, sys
        import pytest
        from pytest_leakcheck.permanent import interpreter_frozen

        KEEP = []

        class User:
            pass

        @pytest.mark.leakcheck
        def test_leaks_into_a_global():
            KEEP.append(User())

        def test_only_the_global_holds_it():
            gc.collect()
            assert gc.get_referrers(KEEP[0]) == [KEEP]
            assert sys.getrefcount(KEEP[0]) == 3  # KEEP, the argument, the subscript's temp
            assert gc.get_freeze_count() <= interpreter_frozen()
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2, errors=1)


def test_a_bug_in_the_plugin_is_a_warning_and_the_session_goes_on(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import pytest_leakcheck.checker as checker

        real_finish = checker.LeakCheck.finish
        calls = []

        def broken_finish(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("simulated plugin bug")
            return real_finish(self, *args, **kwargs)

        checker.LeakCheck.finish = broken_finish
        """
    )
    pytester.makepyfile(
        """
        import gc
        from pytest_leakcheck.permanent import interpreter_frozen
        import pytest

        KEEP = []

        class User:
            pass

        @pytest.mark.leakcheck
        def test_first_check_crashes():
            pass

        def test_collector_is_back_to_normal():
            assert gc.get_freeze_count() <= interpreter_frozen()
            assert type(gc.collect).__name__ == "builtin_function_or_method"

        @pytest.mark.leakcheck
        def test_later_checks_still_work():
            KEEP.append(User())
        """
    )
    result = pytester.runpytest_subprocess("-W", "default")
    result.assert_outcomes(passed=3, errors=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*LeakcheckWarning: pytest-leakcheck failed while checking for leaks for*"
            "test_first_check_crashes*",
            "*RuntimeError: simulated plugin bug*",
            "LEAK *::test_later_checks_still_work: 1 x *.User, retaining * (module global)",
        ]
    )


def test_a_plugin_bug_under_warnings_as_errors_still_keeps_the_outcome(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import pytest_leakcheck.checker as checker

        def broken_finish(self, *args, **kwargs):
            raise RuntimeError("simulated plugin bug")

        checker.LeakCheck.finish = broken_finish
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.leakcheck
        def test_it():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-W", "error", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*simulated plugin bug*"])


def test_unittest_test_cases_are_checked_under_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sched
        import unittest

        SCHEDULER = sched.scheduler()

        class User:
            def tick(self):
                pass

        class TestUsers(unittest.TestCase):
            def test_leaks(self):
                SCHEDULER.enter(60, 1, User().tick)

            def test_clean(self):
                User().tick()
        """
    )
    result = pytester.runpytest_subprocess("--leakcheck")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["LEAK *::TestUsers::test_leaks: 1 x *.User, retaining * (sched.Event)"]
    )


def test_xdist_workers_send_their_verdicts_to_one_summary_and_one_json(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(TIMER_LEAK.replace("def test_zz_stop_timers", "def _unused"))
    serial = pytester.runpytest_subprocess("-p", "no:randomly", "--leakcheck-json=serial.json")
    result = pytester.runpytest_subprocess(
        "-n", "2", "--leakcheck-json=dist.json", "--junitxml=dist.xml"
    )
    result.assert_outcomes(passed=2, errors=1)
    # The controller writes the JUnit XML: the leak is a failure there too, with its figures.
    case = next(
        c
        for c in ET.parse(pytester.path / "dist.xml").iter("testcase")
        if c.get("name") == "test_leaks"
    )
    assert case.find("failure") is not None and case.find("error") is None
    assert any(p.get("name") == "leakcheck_verdict" for p in case.iter("property"))
    result.stdout.fnmatch_lines(["*leakcheck summary*", "LEAK *::test_leaks: 1 x *.User*"])
    dist = json.loads((pytester.path / "dist.json").read_text())
    assert serial.ret == result.ret == pytest.ExitCode.TESTS_FAILED
    serial_doc = json.loads((pytester.path / "serial.json").read_text())

    def verdicts(doc):
        return [(t["nodeid"], t["verdict"], [g["root"] for g in t["leaks"]]) for t in doc["tests"]]

    assert verdicts(dist) == verdicts(serial_doc)
    assert len(list(pytester.path.glob("*.json"))) == 2


def test_a_test_failure_raised_inside_the_check_does_not_end_the_session(
    pytester: pytest.Pytester,
) -> None:
    # What pytest-timeout's alarm does when it fires while the check runs: pytest.fail(), a
    # BaseException. The session must go on to the next test.
    pytester.makeconftest(
        """
        import pytest
        import pytest_leakcheck.checker as checker

        def timed_out(self):
            pytest.fail("Timeout (>1.0s) from pytest-timeout.")

        checker.LeakCheck.finish = timed_out
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.leakcheck
        def test_first():
            pass

        def test_second():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-W", "default")
    result.assert_outcomes(passed=2, warnings=1)
    assert "INTERNALERROR" not in result.stdout.str()
