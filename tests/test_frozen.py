"""What others keep in the permanent generation: the interpreter (3.12) and the application.

The frozen window freezes the whole heap at the start of a check and unfreezes it at the end. Both
calls move every object, so these tests pin down what happens to objects that were frozen before
the check: the code under test must see the same ``gc.get_freeze_count()`` as without the plugin,
and a leak must still be caught.
"""

from __future__ import annotations

import gc
import json
import sys
import threading

import pytest

from pytest_leakcheck import check_leaks
from pytest_leakcheck.frozen import FrozenWindow
from pytest_leakcheck.permanent import interpreter_frozen
from pytest_leakcheck.snapshot import open_window
from pytest_leakcheck.watch import WatchFilter

HOLDER: list[object] = []


class User:
    def tick(self) -> None:
        pass


@pytest.mark.skipif(sys.version_info[:2] != (3, 12), reason="only CPython 3.12 freezes by itself")
def test_on_3_12_the_interpreters_immortal_objects_leave_the_window_frozen() -> None:
    gc.collect()  # the collector moves its immortal objects into the permanent generation
    assert gc.get_freeze_count() == interpreter_frozen() > 0
    window = open_window(WatchFilter(rootdir=None, types=frozenset({User})))
    try:
        assert isinstance(window, FrozenWindow)
        assert gc.get_freeze_count() == interpreter_frozen()  # answered for the window
    finally:
        window.close().found.clear()


def test_a_leak_is_found_while_the_interpreters_objects_are_frozen() -> None:
    gc.collect()
    with check_leaks(User) as check:
        timer = threading.Timer(60, User().tick)
        timer.daemon = True
        timer.start()
        del timer
    assert check.findings is not None
    assert check.findings.mode == "frozen"
    assert [g.kind for g in check.findings.leaks] == ["threading.Timer"]


APP_FREEZES_AT_IMPORT = """
    import gc

    # A pre-fork server freezes everything it imported, so that forked workers share the pages.
    SETTINGS = {"workers": 4}
    gc.collect()
    gc.freeze()
"""

TESTS_OF_THE_APP = """
    import gc
    import threading

    import pytest

    import app

    class User:
        def tick(self):
            pass

    @pytest.mark.parametrize("n", range(3))
    def test_what_the_app_froze_is_still_frozen(n):
        assert gc.get_freeze_count() > 0
        # Frozen objects are not listed.
        assert not any(o is app.SETTINGS for o in gc.get_objects())

    @pytest.mark.leakcheck
    def test_leaks_a_user_through_a_timer():
        timer = threading.Timer(60, User().tick)
        timer.daemon = True
        timer.start()

    def test_clean():
        User()
"""


def test_what_an_application_froze_stays_frozen_and_leaks_are_still_found(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(app=APP_FREEZES_AT_IMPORT, test_app=TESTS_OF_THE_APP)
    result = pytester.runpytest_subprocess("--leakcheck", "--leakcheck-json=leaks.json")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "leakcheck: no frozen window (the application keeps objects frozen with gc.freeze(), "
            "which a frozen window would undo): each check compares the whole heap, "
            "about * ms per test at today's * objects, growing with the heap",
            "LEAKED *test_leaks_a_user_through_a_timer*",
        ]
    )
    doc = json.loads((pytester.path / "leaks.json").read_text())
    [leak] = doc["tests"]
    assert leak["leaks"][0]["root"] == "threading.Timer"
    assert leak["snapshot"] == "full-heap"
    assert leak["no_frozen_window"].startswith("the application keeps objects frozen")


@pytest.mark.parametrize("seed", [1, 2])
def test_in_random_order_and_under_xdist_the_application_sees_its_freeze(
    pytester: pytest.Pytester, seed: int
) -> None:
    pytester.makepyfile(app=APP_FREEZES_AT_IMPORT, test_app=TESTS_OF_THE_APP)
    shuffled = ("-p", "randomly", f"--randomly-seed={seed}")
    serial = pytester.runpytest_subprocess("--leakcheck", *shuffled)
    serial.assert_outcomes(passed=5, failed=1)
    spread = pytester.runpytest_subprocess("--leakcheck", "-n", "2", *shuffled)
    spread.assert_outcomes(passed=5, failed=1)
    # Workers collect (and so freeze) on their own: the controller's summary says how they checked.
    spread.stdout.fnmatch_lines(
        ["leakcheck: 5 test(s) compared the whole heap: no frozen window (the application keeps *"]
    )


def test_a_freeze_made_during_a_checked_test_is_left_to_the_test() -> None:
    made_before = User()
    try:
        with check_leaks(User) as check:
            gc.freeze()
            HOLDER.append(User())
        # Frozen objects are not listed: the test's freeze outlives the check.
        still_frozen = not any(o is made_before for o in gc.get_objects())
    finally:
        gc.unfreeze()
        HOLDER.clear()
    assert still_frozen
    assert check.findings is not None
    assert check.findings.mode.startswith("full-heap")
    assert [g.count for g in check.findings.leaks] == [1]
