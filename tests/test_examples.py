"""The README's quick start: the seed's port under the plugin, run as a user would run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_seed_example_is_caught_and_its_fix_passes(tmp_path: Path) -> None:
    report = tmp_path / "leaks.json"
    # The same command as the README's quick start, plus a JSON report to read the verdicts from.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "examples/tests/test_user_session.py",
            "-p",
            "no:cacheprovider",
            f"--leakcheck-json={report}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 2 passed" in out, out  # the leaky test passed, then its check failed
    # Only the leaky test; under CI=true pytest appends the reason to the summary line.
    leaked = re.findall(r"^LEAKED (\S+)", out, re.MULTILINE)
    assert leaked == ["examples/tests/test_user_session.py::test_users_are_released_on_disconnect"]
    # The users are the outer group: each holds its timer wrapper in an attribute. A tick in
    # flight while the heap was read made the wrappers the outer group once in a few loaded
    # runs; ticks are now let finish first.
    assert "LEAK: 5 x examples.user_session.User, retaining " in out, out
    assert " MB, held by threading.Timer: Timer" in out, out
    assert ".__self__ -> examples.user_session.User\n" in out, out
    assert "hint: cancel the timer" in out, out
    doc = json.loads(report.read_text())
    verdicts = {t["nodeid"].rpartition("::")[2]: t["verdict"] for t in doc["tests"]}
    assert verdicts == {"test_users_are_released_on_disconnect": "leak"}
    roots = {(g["type"], g["root"], g["count"]) for g in doc["tests"][0]["leaks"]}
    assert ("examples.user_session.User", "threading.Timer", 5) in roots


def run_example(test_file: str, report: Path) -> subprocess.CompletedProcess[str]:
    """Run one of the examples' test files as a user would, with a JSON report."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            test_file,
            "-p",
            "no:cacheprovider",
            f"--leakcheck-json={report}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_seed_http_server_is_caught_and_its_fix_passes(tmp_path: Path) -> None:
    report = tmp_path / "leaks.json"
    result = run_example("examples/tests/test_user_server.py", report)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 2 passed" in out
    leaked = re.findall(r"^LEAKED (\S+)", out, re.MULTILINE)
    assert leaked == ["examples/tests/test_user_server.py::test_users_are_released_on_disconnect"]
    assert re.search(
        r"^LEAK: 5 x examples\.user_session\.User\b.* held by threading\.Timer: Timer '",
        out,
        re.MULTILINE,
    ), out
    assert "local 'self' -> threading.Timer '" in out
    assert ".__self__ -> examples.user_session.User\n" in out, out
    # The server, its thread, its sockets and its request handlers belong to the module-scoped
    # fixture (or are gone): none of them is the test's leak.
    for word in ("Server", "RequestHandler", "socket", "threading.Thread"):
        assert word not in out, word
    doc = json.loads(report.read_text())
    verdicts = {t["nodeid"].rpartition("::")[2]: t["verdict"] for t in doc["tests"]}
    assert verdicts == {"test_users_are_released_on_disconnect": "leak"}
    groups = {(g["type"], g["root"], g["count"]) for g in doc["tests"][0]["leaks"]}
    assert groups == {
        ("examples.user_session.User", "threading.Timer", 5),
        ("examples.user_session.RepeatingTimer", "threading.Timer", 5),
    }
    assert "socket" not in json.dumps(doc["tests"])


def test_the_quote_heartbeat_is_caught_and_its_fix_passes(tmp_path: Path) -> None:
    report = tmp_path / "leaks.json"
    result = run_example("examples/tests/test_quotes.py", report)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 2 passed" in out
    leaked = re.findall(r"^LEAKED (\S+)", out, re.MULTILINE)
    assert leaked == ["examples/tests/test_quotes.py::test_connections_are_released_on_disconnect"]
    assert re.search(
        r"^LEAK: 5 x examples\.quotes\.QuoteConnection\b.* held by asyncio\.Task: "
        r"Task 'heartbeat client_\d' running QuoteConnection\.heartbeat \(at .*quotes\.py:\d+\)",
        out,
        re.MULTILINE,
    ), out
    assert "._coro -> coroutine QuoteConnection.heartbeat\n" in out
    assert "local 'self' -> examples.quotes.QuoteConnection\n" in out
    assert "hint: cancel the task" in out
    doc = json.loads(report.read_text())
    verdicts = {t["nodeid"].rpartition("::")[2]: t["verdict"] for t in doc["tests"]}
    assert verdicts == {"test_connections_are_released_on_disconnect": "leak"}
    # The connections, and the buffers they drag along; the feed (a fixture's) is not theirs.
    groups = {(g["type"], g["root"], g["count"]) for g in doc["tests"][0]["leaks"]}
    assert groups == {
        ("examples.quotes.QuoteConnection", "asyncio.Task", 5),
        ("examples.quotes.QuoteBuffer", "asyncio.Task", 15),
    }
    for group in doc["tests"][0]["leaks"]:
        assert "QuoteConnection.heartbeat" in group["root_description"]
        # Each path ends at its own survivor: a buffer's runs on through its connection.
        assert group["path"][-1].endswith(f"-> {group['type']}"), group["path"]
    # The loop's thread and the feed belong to the module-scoped fixtures.
    assert "quote-loop" not in out
    assert "QuoteFeed" not in out
