"""Which tests are checked, and how strictly: the marker, the option, the ini switch, opting out.

The same small project (users kept in a module-level registry, ``helpers.registry``) is checked
each way: a survivor held by a module global is a leak under the marker or ``--leakcheck-strict``,
and a suspect under ``--leakcheck``.
"""

from __future__ import annotations

import pytest

from helpers import REGISTRY_USER, SCHED_USER, assert_leaked, load_json, registry, run, source


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
            "SUSPECT *::test_user_session: 1 x *.User (not walked)",
            "0 suspect group(s) walked to their root, 1 counted without a path: explaining "
            "suspects had used its 0% *",
        ]
    )
    [entry] = load_json(pytester)["tests"]
    [group] = entry["leaks"]
    assert (group["count"], group["root"], group["verdict"]) == (1, None, "suspect")
    assert group["not_walked"] == "budget"
    assert group["root_description"].startswith("not walked: the session's time budget")
    # A leak is always explained: the budget is for suspects only.
    strict = run(pytester, registry(marker=""), *args, "--leakcheck-strict")
    assert_leaked(strict, root="module global", step="*.REGISTRY -> list of 1")


def test_a_module_global_registry_is_a_leak_again_with_the_strict_option(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, registry(marker=""), "--leakcheck", "--leakcheck-strict")
    assert_leaked(result, root="module global", step="*.REGISTRY -> list of 1")


@pytest.mark.parametrize(
    ("args", "ini"),
    [(("--leakcheck-strict",), ""), ((), "[pytest]\nleakcheck_strict = true\n")],
    ids=["option", "ini"],
)
def test_the_strict_setting_alone_checks_every_test(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str
) -> None:
    # Strictness with nothing to apply to would be a setting that silently does nothing.
    if ini:
        pytester.makeini(ini)
    result = run(pytester, registry(marker=""), *args)
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


def test_the_plugin_can_be_disabled_with_p_no_leakcheck(pytester: pytest.Pytester) -> None:
    # Without the plugin the marker is unknown: a warning, not an error, without --strict-markers.
    result = run(pytester, registry(), "-p", "no:leakcheck")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*PytestUnknownMarkWarning: Unknown pytest.mark.leakcheck*"])
    assert "LEAK" not in result.stdout.str()
    assert "leakcheck summary" not in result.stdout.str()


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
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["LEAK *::TestUsers::test_leaks: 1 x *.User, retaining * (sched.Event)"]
    )
