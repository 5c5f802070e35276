"""What pytest itself keeps alive past a test, by design: never the test's leak.

Wider-scoped fixtures' values, the test class instance, a parametrized test's parameters, recorded
warnings and log records, doctest's ``builtins._``. Gathered by the plugin before the check ends
and handed to it as data: the checker never calls back into pytest.
"""

from __future__ import annotations

import builtins
import types
import warnings

import pytest

from .kinds import FIXTURE, RootInfo


def holders_of(item: pytest.Item) -> dict[int, RootInfo]:
    """By id: what wider-scoped fixtures and pytest hold for this test."""
    found = _fixture_values(item)
    found.update(_pytest_holders(item))
    return found


def _fixture_values(item: pytest.Item) -> dict[int, RootInfo]:
    """Values of wider-scoped fixtures are theirs, not this test's leak."""
    found: dict[int, RootInfo] = {}
    info = getattr(item, "_fixtureinfo", None)
    defs = getattr(info, "name2fixturedefs", None) or {}
    for name, fixturedefs in defs.items():
        for fixturedef in fixturedefs:
            scope = getattr(fixturedef, "scope", "function")
            cached = getattr(fixturedef, "cached_result", None)
            if scope == "function" or cached is None:
                continue
            desc = RootInfo(FIXTURE, f"{scope}-scoped fixture {name!r}")
            found[id(fixturedef)] = desc
            found[id(cached)] = desc
            found[id(cached[0])] = desc
    return found


def _test_instance(item: pytest.Item) -> object | None:
    """The instance of the test's class that pytest holds now, read without making one.

    ``item.instance`` is a property that makes a new instance when the item has none: after
    pytest's teardown (which drops a unittest ``TestCase``), reading it would make a ``TestCase``
    inside the window, for the check to find alive.
    """
    state = vars(item)
    instance = state.get("_instance")  # pytest 8 and later
    if instance is None:
        instance = getattr(state.get("_obj"), "__self__", None)  # a bound test method (pytest 7)
    return None if instance is None or isinstance(instance, types.ModuleType) else instance


def _pytest_holders(item: pytest.Item) -> dict[int, RootInfo]:
    found: dict[int, RootInfo] = {}
    # The instance pytest made of the test's class lives as long as the item does.
    instance = _test_instance(item)
    if instance is not None:
        found[id(instance)] = RootInfo(FIXTURE, "the test class instance pytest keeps")
    # A parametrized test's arguments live in its callspec as long as the item does: a
    # pytest.raises(...) passed as a parameter keeps the exception it caught, and its traceback.
    params = getattr(getattr(item, "callspec", None), "params", None)
    if isinstance(params, dict):
        found[id(params)] = RootInfo(FIXTURE, "this test's parameters (pytest's callspec)")
    # catch_warnings(record=True) around the test: its list of records, until the protocol ends.
    recorder = getattr(warnings, "_showwarnmsg_impl", None)
    records = getattr(recorder, "__self__", None)
    if isinstance(records, list):
        found[id(records)] = RootInfo(FIXTURE, "the warnings pytest records for this test")
    # pytest's logging plugin keeps the records of the last phase (the teardown) until the next
    # test resets its handlers; a record's args and exc_info (a traceback, with its frames'
    # locals) can hold the test's objects.
    logging_plugin = item.config.pluginmanager.get_plugin("logging-plugin")
    for attr in ("caplog_handler", "report_handler"):
        records = getattr(getattr(logging_plugin, attr, None), "records", None)
        if isinstance(records, list):
            found[id(records)] = RootInfo(
                FIXTURE, f"the log records pytest's logging plugin keeps ({attr})"
            )
    # What pytest and its plugins keep for the test in its stash until the end of its teardown
    # (the logging plugin's records of each phase, with their arguments); the check now runs
    # inside the teardown.
    found[id(item.stash)] = RootInfo(FIXTURE, "what pytest keeps in this test's stash")
    # The value a doctest example displayed last, kept by sys.displayhook in builtins._.
    last = builtins.__dict__.get("_")
    if last is not None:
        found[id(last)] = RootInfo(FIXTURE, "builtins._, the last value a doctest showed")
    return found
