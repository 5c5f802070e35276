"""Every command in the README and in docs/ runs somewhere, so the documentation cannot rot.

The quick start's first command is run by tests/test_examples.py, the test command and the lint
by .ci/run; this file runs the CI recipes (against the examples, a project with real leaks) and
the benchmarks (on small heaps), and fails when the README gains a command nobody runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS = [
    re.sub(r"\s+#.*$", "", line[2:]).strip()
    for page in PAGES
    for line in page.read_text(encoding="utf-8").splitlines()
    if line.startswith("$ ")
]

RUN_ELSEWHERE = {
    "pip install -e . && pytest examples/tests/test_user_session.py": "tests/test_examples.py",
    "pip install tox && tox": ".ci/run",
}
CI_RECIPES = [
    "pytest --leakcheck --leakcheck-json=leaks.json --junitxml=junit.xml",
    "pytest -n 2 --leakcheck",
    "pytest --leakcheck --leakcheck-baseline=leaks-baseline.json --leakcheck-update-baseline",
    "pytest --leakcheck --leakcheck-baseline=leaks-baseline.json",
]
BENCHMARKS = "python benchmarks/clean_overhead.py && python benchmarks/explain_speed.py"


def test_every_documented_command_is_run_by_a_test_or_by_ci() -> None:
    covered = {*RUN_ELSEWHERE, *CI_RECIPES, BENCHMARKS}
    assert set(COMMANDS) <= covered, set(COMMANDS) - covered
    assert set(CI_RECIPES) <= set(COMMANDS)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The examples as a project of their own, in a directory the recipes may write into."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path / "examples"


def run(project: Path, command: str) -> subprocess.CompletedProcess[str]:
    args = command.split()[1:]  # "pytest ..." -> this interpreter's pytest
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_ci_recipes_work_as_the_readme_says(project: Path) -> None:
    report, xdist, adopt, gate = (run(project, c) for c in CI_RECIPES)
    # The examples leak on purpose: the plain gate fails, with a JSON report and JUnit XML.
    assert report.returncode == 1, report.stdout
    doc = json.loads((project / "leaks.json").read_text())
    assert {t["verdict"] for t in doc["tests"]} == {"leak"}
    assert "leakcheck_verdict" in (project / "junit.xml").read_text()
    # Under xdist: the same verdicts, one summary.
    assert xdist.returncode == 1
    assert xdist.stdout.count("leakcheck summary") == 1
    # Under xdist: the same verdicts, one summary (a worker's last test on a module's event loop
    # is judged before that loop is closed, like any other).
    serial = set(re.findall(r"^LEAKED (\S+)", report.stdout, re.M))
    spread = set(re.findall(r"^LEAKED (\S+)", xdist.stdout, re.M))
    assert spread == serial and len(serial) == 3, report.stdout + xdist.stdout
    # Adopting records today's leaks (and still reports them); the gate then passes.
    assert adopt.returncode == 1
    assert json.loads((project / "leaks-baseline.json").read_text())["known"]
    assert gate.returncode == 0, gate.stdout
    assert "with only known leaks (in the baseline)" in gate.stdout


def test_the_benchmarks_run(tmp_path: Path) -> None:
    for script, args in (
        ("clean_overhead.py", ["--sizes", "2000,4000", "--repeat", "5"]),
        ("explain_speed.py", ["--sizes", "2000"]),
    ):
        result = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / script), *args],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        assert "heap objects" in result.stdout
