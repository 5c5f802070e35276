"""Verdicts of a whole session against the verdict each test promises, over many orders.

    python benchmarks/whole_session.py [--seeds 10] [--xdist 3] [--budget 2]

Runs the corpus of ``tests/corpus`` (leaky and fixed twins of every kind of root; each test's name
says the verdict it must get alone) as one ``pytest --leakcheck`` session per random order
(pytest-randomly seeds 1..N), then under ``-n 2`` with further seeds, and prints per run how many
verdicts differ from the promised ones, and the total. ``--budget`` is the explain budget in
percent (0: the time for explaining suspects is spent from the first test).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"


def expected(nodeid: str) -> str | None:
    name = nodeid.rpartition("::")[2]
    if name.startswith("test_leak_"):
        return "leak"
    if name.startswith("test_suspect_"):
        return "suspect"
    return None


def run(workdir: Path, args: list[str]) -> tuple[int, list[str], float]:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--leakcheck",
         "--leakcheck-json=out.json", *args],
        cwd=workdir, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    doc = json.loads((workdir / "out.json").read_text())
    verdicts = {t["nodeid"]: t["verdict"] for t in doc["tests"]}
    checked = [c["nodeid"] for c in doc["checked"]]
    wrong = [n for n in checked if verdicts.get(n) != expected(n)]
    return len(checked), wrong, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="serial random orders")
    parser.add_argument("--xdist", type=int, default=3, help="random orders under -n 2")
    parser.add_argument("--budget", default="2", help="--leakcheck-explain-budget, percent")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="leakcheck-session-"))
    for path in CORPUS.glob("*.py"):
        shutil.copy(path, workdir / path.name)
    (workdir / "pytest.ini").write_text(
        "[pytest]\npython_files = case_*.py\nasyncio_default_fixture_loop_scope = function\n"
    )
    runs = [
        (f"seed {s}", ["-p", "randomly", f"--randomly-seed={s}"]) for s in range(1, 1 + args.seeds)
    ]
    runs += [
        (f"-n 2 seed {s}", ["-n", "2", "-p", "randomly", f"--randomly-seed={s}"])
        for s in range(100, 100 + args.xdist)
    ]
    total = wrong_total = 0
    print(f"{'run':<14} {'verdicts':>8} {'wrong':>6} {'seconds':>8}  wrong tests")
    for label, extra in runs:
        count, wrong, seconds = run(workdir, [f"--leakcheck-explain-budget={args.budget}", *extra])
        total += count
        wrong_total += len(wrong)
        shown = ", ".join(w.rpartition("::")[2] for w in wrong)
        print(f"{label:<14} {count:>8} {len(wrong):>6} {seconds:>8.1f}  {shown}")
    print(f"total: {wrong_total} wrong of {total} verdicts in {len(runs)} sessions")
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if wrong_total else 0


if __name__ == "__main__":
    sys.exit(main())
