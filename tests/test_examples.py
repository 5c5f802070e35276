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
    assert "2 passed, 1 error" in out  # the leaky test passed, then its check failed
    # Only the leaky test; under CI=true pytest appends the reason to the summary line.
    leaked = re.findall(r"^LEAKED (\S+)", out, re.MULTILINE)
    assert leaked == ["examples/tests/test_user_session.py::test_users_are_released_on_disconnect"]
    assert "LEAK: 5 x examples.user_session.User held by threading.Timer: Timer" in out
    assert ".__self__ -> examples.user_session.User\n" in out
    assert "hint: cancel the timer" in out
    doc = json.loads(report.read_text())
    verdicts = {t["nodeid"].rpartition("::")[2]: t["verdict"] for t in doc["tests"]}
    assert verdicts == {"test_users_are_released_on_disconnect": "leak"}
    roots = {(g["type"], g["root"], g["count"]) for g in doc["tests"][0]["leaks"]}
    assert ("examples.user_session.User", "threading.Timer", 5) in roots
