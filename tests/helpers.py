"""What every test module here shares: running an inner pytest and reading what it said.

Inner runs happen in a subprocess (``pytester.runpytest_subprocess``), so that the timers and
threads a leaky inner test leaves behind die with that process instead of piling up in this one.
Inner code uses daemon threads so that the subprocess can exit while a leak is still running.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import pytest

SUBPROCESS_TIMEOUT = 60

_PLACEHOLDER = re.compile(r"^(?P<indent>\s*)<(?P<name>\w+)>\s*$")


def source(*parts: str, **snippets: str) -> str:
    """Join dedented ``parts`` and replace each ``<name>`` line with ``snippets[name]``.

    The snippet is indented like the placeholder line; an empty snippet removes the line (for an
    optional decorator).
    """
    lines: list[str] = []
    for part in parts:
        for line in textwrap.dedent(part).strip("\n").splitlines():
            match = _PLACEHOLDER.match(line)
            if match is None:
                lines.append(line)
                continue
            snippet = textwrap.dedent(snippets[match["name"]]).strip("\n")
            lines.extend(match["indent"] + s if s.strip() else "" for s in snippet.splitlines())
        lines.append("")
    return "\n".join(lines)


def run(
    pytester: pytest.Pytester, code: str, *args: str, timeout: float = SUBPROCESS_TIMEOUT
) -> pytest.RunResult:
    """Write ``code`` as the test module and run pytest on it in a fresh interpreter."""
    pytester.makepyfile(code)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)


def assert_leaked(
    result: pytest.RunResult,
    *,
    root: str,
    step: str,
    test: str = "test_user_session",
    type_name: str = "User",
    passed: int = 1,
    failed: int = 1,
) -> None:
    """The test failed, after its body passed, with a leak report naming the type, the root kind
    and a step."""
    result.assert_outcomes(passed=passed, failed=failed)
    result.stdout.fnmatch_lines(
        [
            f"*_ *{test}* _*",
            f"leakcheck: leaked 1 object of {type_name}, held by {root}, retaining *",
            f"LEAK: 1 x *.{type_name}, retaining *, held by {root}: *",
            step,
            "*hint: *",
            "*= leakcheck summary =*",
            f"LEAK *::{test}: 1 x *.{type_name}, retaining * ({root})",
            f"LEAKED *::{test}*",
        ]
    )


def assert_clean(result: pytest.RunResult, *, passed: int = 1) -> None:
    """Everything passed and the plugin had nothing to say."""
    result.assert_outcomes(passed=passed)
    out = result.stdout.str()
    assert "leakcheck summary" not in out
    assert "LEAK" not in out
    assert "suspect" not in out.lower()
    assert "LeakcheckWarning" not in out


def load_json(pytester: pytest.Pytester, name: str = "out.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pytester.path / name).read_text(encoding="utf-8"))
    return data


# -- a small project whose users stay in a module-level registry unless they leave it ----------

REGISTRY_USER = """
    import pytest

    REGISTRY = []


    class User:
        def __init__(self, name):
            self.name = name
            REGISTRY.append(self)

        def disconnect(self):
            <disconnect>
"""

REGISTRY_TEST = """
    <marker>
    def test_user_session():
        User("ann").disconnect()
"""


def registry(*, marker: str = "@pytest.mark.leakcheck", disconnect: str = "pass") -> str:
    return source(REGISTRY_USER, REGISTRY_TEST, marker=marker, disconnect=disconnect)


# -- a user whose heartbeat is a queued sched event (an active holder: a leak even leniently) ---

SCHED_USER = """
    import sched
    import time

    import pytest

    scheduler = sched.scheduler(time.monotonic, time.sleep)  # nobody runs it during the test


    class User:
        def __init__(self):
            self.expiry = scheduler.enter(60, 1, self.expire)

        def expire(self):
            pass

        def disconnect(self):
            <disconnect>
"""


# -- a test module with one test that leaks a user through a timer, and one clean test ---------

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
