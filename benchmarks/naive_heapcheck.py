"""The straightforward whole-heap leak check, as a cost baseline for ``real_suites.py``.

    pytest -p naive_heapcheck   (with this directory on PYTHONPATH)

Around each test (from the start of its setup to the end of its teardown, the window
pytest-leakcheck uses) it does the naive thing:
``gc.collect()`` and a set of ``id(o) for o in gc.get_objects()`` before, ``gc.collect()`` and a
walk over ``gc.get_objects()`` for ids not in that set after. It never fails a test; the terminal
summary says how many tests left new gc-tracked objects alive, so that the work cannot be
optimised away and the figure can be compared.
"""

from __future__ import annotations

import gc
from collections.abc import Generator
from typing import Any

import pytest

BEFORE_KEY = pytest.StashKey[set[int]]()


class NaiveHeapCheck:
    def __init__(self) -> None:
        self.checked = 0
        self.tests_with_survivors = 0
        self.survivors = 0

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        gc.collect()
        item.stash[BEFORE_KEY] = {id(o) for o in gc.get_objects()}
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            before = item.stash.get(BEFORE_KEY, None)
            if before is not None:
                del item.stash[BEFORE_KEY]
                gc.collect()
                new = sum(1 for o in gc.get_objects() if id(o) not in before)
                del before
                self.checked += 1
                self.survivors += new
                self.tests_with_survivors += bool(new)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_line(
            f"naive-heapcheck: checked {self.checked} tests, {self.tests_with_survivors} left "
            f"new gc-tracked objects alive ({self.survivors} objects in all)"
        )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(NaiveHeapCheck(), "naive-heapcheck")
