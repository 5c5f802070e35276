"""One long session gives every test the verdict it gets alone.

The corpus (``tests/corpus``) holds leaky and fixed twins of every kind of root: timers and timer
chains, threads, ``call_later`` chains and tasks on a loop in a thread and on pytest-asyncio's
loops of every scope, ``sched`` events, ``atexit`` and signal registrations, logging handlers,
caches and globals. Its test names say the verdict each must get: ``test_leak_*`` a leak,
``test_suspect_*`` a suspect, ``test_clean_*`` nothing. Here it runs as one session, the way users
run ``pytest --leakcheck``: in random orders, with the time for explaining suspects spent, and
under ``-n 2``; one test's leftovers must never change another test's verdict.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).parent / "corpus"
SEEDS = (1, 2, 3)


@pytest.fixture
def corpus(pytester: pytest.Pytester) -> pytest.Pytester:
    for path in CORPUS.iterdir():
        if path.suffix == ".py":
            shutil.copy(path, pytester.path / path.name)
    pytester.makeini(
        """
        [pytest]
        python_files = case_*.py
        asyncio_default_fixture_loop_scope = function
        """
    )
    return pytester


def expected(nodeid: str) -> str | None:
    name = nodeid.rpartition("::")[2]
    for prefix, verdict in (("test_leak_", "leak"), ("test_suspect_", "suspect")):
        if name.startswith(prefix):
            return verdict
    assert name.startswith("test_clean_"), nodeid
    return None


def verdicts(pytester: pytest.Pytester, *args: str) -> tuple[dict[str, Any], str]:
    result = pytester.runpytest_subprocess(
        "--leakcheck", "--leakcheck-json=out.json", "-p", "no:cacheprovider", *args, timeout=300
    )
    assert result.ret in (0, 1), result.stdout.str()
    doc = json.loads((pytester.path / "out.json").read_text())
    found = {t["nodeid"]: t for t in doc["tests"]}
    collected = [c["nodeid"] for c in doc["checked"]]
    return {n: found.get(n) for n in collected}, result.stdout.str()


def assert_as_alone(found: dict[str, Any], output: str, at_least: int = 20) -> None:
    assert len(found) >= at_least, output
    wrong = {
        nodeid: (expected(nodeid), entry and entry["verdict"], entry)
        for nodeid, entry in found.items()
        if (entry and entry["verdict"]) != expected(nodeid)
    }
    assert not wrong, json.dumps(wrong, indent=1)[:6000]


@pytest.mark.parametrize("seed", SEEDS)
def test_in_random_order_every_test_gets_its_own_verdict(
    corpus: pytest.Pytester, seed: int
) -> None:
    assert_as_alone(*verdicts(corpus, "-p", "randomly", f"--randomly-seed={seed}"))


def test_with_the_explain_budget_spent_a_scheduler_held_leak_is_still_a_leak(
    corpus: pytest.Pytester,
) -> None:
    budget = ("--leakcheck-explain-budget=0", "-p", "randomly", "--randomly-seed=4")
    assert_as_alone(*verdicts(corpus, *budget))


def test_under_xdist_every_test_gets_its_own_verdict(corpus: pytest.Pytester) -> None:
    assert_as_alone(*verdicts(corpus, "-n", "2", "-p", "randomly", "--randomly-seed=5"))


# Under heavy load (two sessions on two cores) a chain starved of the interpreter may not tick
# during the checked test; it must be named all the same, not only stopped.
def test_what_an_unchecked_test_left_running_is_named_stopped_and_not_blamed(
    corpus: pytest.Pytester,
) -> None:
    corpus.makepyfile(
        case_zz_after="""
        import threading
        import time

        def test_clean_nothing_ticks_any_more():
            time.sleep(0.1)
            ticking = [
                t for t in threading.enumerate()
                if isinstance(t, threading.Timer) and "Beacon" in repr(t.function)
            ]
            assert not ticking, ticking
        """
    )
    found, output = verdicts(corpus, "case_leftovers.py", "case_zz_after.py", "-p", "no:randomly")
    assert_as_alone(found, output, at_least=2)
    for test in ("test_opted_out_and_leaves", "test_failing_leaves"):
        assert (
            f"::{test}_a_fast_chain_running left threading.Timer running, found and stopped "
            in (output)
        )
    doc = json.loads((corpus.path / "out.json").read_text())
    assert {left["made_by"].rpartition("::")[2] for left in doc["leftovers"]} == {
        "test_opted_out_and_leaves_a_fast_chain_running",
        "test_failing_leaves_a_fast_chain_running",
    }
