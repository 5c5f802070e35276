"""What pytest itself holds after a test is not the test's leak (run strictly, every test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import assert_clean, run, source

SOURCES = Path(__file__).parent / "sources"
PYTEST_HOLDERS = (SOURCES / "pytest_holders.py").read_text()
HELD_TWICE = (SOURCES / "held_twice.py").read_text()


def test_what_pytest_holds_is_never_a_leak_even_strictly(pytester: pytest.Pytester) -> None:
    # caplog records, capsys, pytest.raises, monkeypatch, parametrize, class-based and unittest
    # tests, doctests (builtins._), fixtures of wider scope made by their first user, yield
    # fixtures, tmp_path (its atexit hook), addfinalizer, pytest.warns, recwarn and the warnings
    # pytest records for every test, and the log records (with exc_info) of a fixture teardown.
    pytester.makepyfile(test_holders=PYTEST_HOLDERS)
    result = pytester.runpytest_subprocess(
        "--leakcheck", "--leakcheck-strict", "--doctest-modules", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=19)
    assert "leakcheck summary" not in result.stdout.str()


def test_a_timer_is_found_even_when_the_test_class_instance_holds_the_object_too(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_both=HELD_TWICE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["LEAK *::TestHeld::test_instance_and_timer: 1 x *.User, retaining * (threading.Timer)"]
    )


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


LOCAL_CLASS = """
    import unittest

    import pytest

    registry = []


    class Holder:
        pass


    @pytest.mark.leakcheck
    class TestLocalClass(unittest.TestCase):
        def setUp(self):
            test = self

            class Handler:
                def get(self):
                    return test

            self.holder = Holder()
            self.holder.handler = Handler

        def test_cycle_through_the_test_case(self):
            pass


    @pytest.mark.leakcheck
    def test_a_local_class_kept_in_a_registry():
        class Handler:
            pass

        Handler.holder = Holder()
        registry.append(Handler)
"""


def test_a_class_made_by_the_test_is_followed_to_what_holds_it(pytester: pytest.Pytester) -> None:
    """A class made inside the test is no root of its own: through a cycle with the test case
    that pytest holds, it is pytest's; kept in a module-level registry, it is a leak there."""
    result = run(pytester, source(LOCAL_CLASS), "--leakcheck-strict")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "LEAK: 1 x *.Holder, retaining *, held by module global: module *",
            "LEAK *::test_a_local_class_kept_in_a_registry: 1 x *.Holder*",
        ]
    )
    assert "test_cycle_through_the_test_case" not in result.stdout.str().split("FAILURES")[-1]


def test_a_unittest_test_case_is_neither_made_again_nor_a_suspect(
    pytester: pytest.Pytester,
) -> None:
    # pytest drops a TestCase at teardown, and its item makes a new one whenever its `instance`
    # is read: a check that read it made a TestCase per test, and every unittest-style test of
    # a suite became a suspect once the explain budget was spent.
    code = """
        import unittest

        MADE = []

        class TestCaseLike(unittest.TestCase):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                MADE.append(self._testMethodName)

            def test_a(self):
                pass

            def test_b(self):
                pass

        def test_made_as_without_the_check():
            print("made:", sorted(MADE))
        """
    plain = run(pytester, code, "-s", "-p", "no:randomly")
    checked = run(
        pytester, code, "-s", "-p", "no:randomly", "--leakcheck", "--leakcheck-explain-budget=0"
    )
    checked.assert_outcomes(passed=3)
    made = [line[line.index("made:") :] for line in plain.outlines if "made:" in line]
    again = [line[line.index("made:") :] for line in checked.outlines if "made:" in line]
    assert made and made == again
    assert "SUSPECT" not in checked.stdout.str(), checked.stdout.str()
