"""The pytest adapter: outcomes, reports, JSON, failures inside the plugin, and xdist."""

from __future__ import annotations

import pytest

from helpers import REGISTRY_USER, TIMER_LEAK, load_json, run, source


def test_a_leak_fails_the_run_with_a_report_that_names_type_root_and_path(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TIMER_LEAK)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*::test_leaks LEAKED*",
            "*_ test_leaks _*",
            "leakcheck: leaked 1 object of User, held by threading.Timer, retaining *",
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
    result.assert_outcomes(passed=2, failed=1)


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
    result.assert_outcomes(passed=3, failed=1, warnings=1)
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


def test_a_test_that_fails_by_itself_keeps_its_failure_and_says_it_was_not_checked(
    pytester: pytest.Pytester,
) -> None:
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
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_fails_by_itself _*",
            "*AssertionError: the test's own failure",
            "*- leakcheck -*",
            "not checked for leaks: the test failed*",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED *::test_fails_by_itself*"])
    assert "LEAKED *::test_fails_by_itself" not in result.stdout.str()
    assert "held by" not in result.stdout.str().split("_ test_user_session _")[0]
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
