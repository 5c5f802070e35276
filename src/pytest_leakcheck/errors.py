"""How the plugin says something went wrong: bad input stops the run; its own bugs do not."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import pytest


class LeakcheckWarning(pytest.PytestWarning):
    """The plugin failed while checking a test; the test's own outcome is unchanged."""


def usage(message: str) -> pytest.UsageError:
    """A bad setting: the run stops before any test, with the message (value, origin, remedy)."""
    return pytest.UsageError(f"pytest-leakcheck: {message}")


def guarded(
    item: pytest.Item, doing: str, action: Callable[[], None], cleanup: Callable[[], None]
) -> str | None:
    """Run ``action``; if it fails, run ``cleanup`` and warn, naming the test.

    Returns the message when it could not be issued as a warning (``-W error`` turns warnings
    into exceptions, and the session must go on): the caller prints it in the summary instead.
    """
    try:
        action()
    except (KeyboardInterrupt, SystemExit, pytest.exit.Exception):
        raise
    except BaseException as exc:  # pytest-timeout's pytest.fail() can fire mid-check
        cleanup()
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        message = (
            f"pytest-leakcheck failed while {doing} for {item.nodeid}; the test's outcome is "
            f"unchanged. Please report this with the traceback:\n{detail}"
        )
        try:
            item.warn(LeakcheckWarning(message))
        except Exception:
            return message
    return None
