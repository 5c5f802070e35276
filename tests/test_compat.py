"""Living with the plugins a suite already has: each pairing, on a real leak and a clean test."""

from __future__ import annotations

import pytest

from helpers import run

LEAKY_AND_CLEAN = """
    import threading
    import pytest

    class User:
        def tick(self):
            pass

    @pytest.mark.leakcheck
    def test_leaks():
        timer = threading.Timer(60, User().tick)
        timer.daemon = True
        timer.start()

    @pytest.mark.leakcheck
    def test_clean():
        User().tick()
"""


def run_both(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run(pytester, LEAKY_AND_CLEAN, *args, timeout=120)


def assert_same_verdicts(result: pytest.RunResult) -> None:
    result.stdout.fnmatch_lines(["LEAK *::test_leaks: 1 x *.User, retaining * (threading.Timer)"])
    assert "::test_clean" not in result.stdout.str().split("leakcheck summary")[1]


def test_with_pytest_randomly_in_any_order(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_randomly")
    for seed in ("1", "2"):
        result = run_both(pytester, "-p", "randomly", f"--randomly-seed={seed}")
        result.assert_outcomes(passed=2, failed=1)
        assert_same_verdicts(result)


def test_with_pytest_rerunfailures_a_rerun_is_checked_again(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_rerunfailures")
    result = run_both(pytester, "--reruns=1")
    # The leaking test is re-run (its teardown failed), leaks again, and is reported again.
    outcomes = result.parseoutcomes()
    assert (outcomes.get("failed"), outcomes.get("rerun")) == (1, 1), outcomes
    assert_same_verdicts(result)


def test_with_pytest_timeout_its_timer_is_not_the_tests(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_timeout")
    for method in ("thread", "signal"):
        result = run_both(pytester, "--timeout=30", f"--timeout-method={method}")
        result.assert_outcomes(passed=2, failed=1)
        assert_same_verdicts(result)
        # Only the test's own timer is left running; pytest-timeout's is not reported.
        result.stdout.fnmatch_lines(["  LEAK 1 x threading.Timer: Timer * calling *User.tick*"])
        timers = [line for line in result.stdout.lines if "x threading.Timer:" in line]
        assert timers and all("User.tick" in line for line in timers)


def test_with_pytest_asyncio_a_function_scoped_loop_is_clean(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_asyncio")
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        class User:
            pass

        @pytest.mark.leakcheck
        @pytest.mark.asyncio
        async def test_async_clean():
            user = User()
            await asyncio.sleep(0)
            del user

        @pytest.mark.leakcheck
        def test_asyncio_run_inside_a_test():
            async def main():
                task = asyncio.create_task(asyncio.sleep(0.01))
                await task
                return User()

            asyncio.run(main())
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_with_pytest_html_the_report_shows_the_leak_and_links_its_graph(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_html")
    result = run_both(pytester, "--html=report.html", "--leakcheck-graphs=graphs")
    result.assert_outcomes(passed=2, failed=1)
    html = (pytester.path / "report.html").read_text()
    assert "leakcheck: leaked 1 object of User, held by threading.Timer" in html
    assert "leak graph" in html and "graphs/" in html
