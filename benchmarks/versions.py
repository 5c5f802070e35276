"""The clean check's cost on every supported interpreter, against CPython 3.11's.

    python benchmarks/versions.py [--workdir DIR] [--sizes 10000,100000,1000000]
        [--repeat 2000] [--runs 3]

For each of Python 3.10, 3.11, 3.12 and 3.13 (``python3.X`` on PATH, or pyenv's), it makes a
virtual environment under the work directory with this checkout installed, runs
``benchmarks/clean_overhead.py --json`` in it, and prints, per heap size, what the frozen-window
check adds to a clean body (the mean of the middle 80% of the timings after a warm-up; the
fastest of ``--runs`` processes) on each interpreter and its ratio to 3.11's. The target is at
most 1.2x everywhere. A missing interpreter is reported, not an error: this compares what the
machine has.

For scale, it also times pytest itself on each interpreter, without the check: the wall time of a
session of 2,000 empty tests less that of 200, per test. The plugin's check is Python code, and
runs as much slower on an older interpreter as pytest's own per-test work does.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MINORS = ("3.10", "3.11", "3.12", "3.13")
BASELINE = "3.11"


def find_python(minor: str) -> str | None:
    """python3.X on PATH if it runs, else the newest pyenv build of that minor version."""
    name = f"python{minor}"
    found = shutil.which(name)
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    builds = sorted(glob.glob(os.path.join(root, "versions", f"{minor}.*", "bin", name)))
    return builds[-1] if builds else None


def prepare(python: str, venv: Path) -> Path:
    bin_python = venv / "bin" / "python"
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(bin_python), "-m", "pip", "install", "--quiet", str(REPO)],
            check=True,
            capture_output=True,
        )
    return bin_python


def measure(python: Path, sizes: str, repeat: int, out: Path) -> dict[str, object]:
    script = REPO / "benchmarks" / "clean_overhead.py"
    cmd = [str(python), str(script), "--sizes", sizes, "--repeat", str(repeat), "--json", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    doc: dict[str, object] = json.loads(out.read_text())
    return doc


def pytest_per_test(python: Path, workdir: Path) -> float:
    """Milliseconds pytest itself spends per empty test on this interpreter (no check)."""
    seconds = {}
    for count in (200, 2000):
        module = workdir / f"test_empty_{count}.py"
        module.write_text(
            "import pytest\n\n\n"
            f"@pytest.mark.parametrize('i', range({count}))\n"
            "def test_empty(i):\n    pass\n"
        )
        cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", module.name]
        began = time.perf_counter()
        subprocess.run(cmd, cwd=workdir, check=True, capture_output=True)
        seconds[count] = time.perf_counter() - began
    return (seconds[2000] - seconds[200]) / 1800 * 1000


def fastest(docs: list[dict[str, object]]) -> dict[str, object]:
    """One document whose every timing is the fastest of the runs."""
    best = dict(docs[0])
    each: list[list[dict[str, float]]] = [doc["rows"] for doc in docs]  # type: ignore[misc]
    rows = [{key: min(r[n][key] for r in each) for key in row} for n, row in enumerate(each[0])]
    best["rows"] = rows
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3, help="processes per interpreter")
    args = parser.parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="leakcheck-versions-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    pythons: dict[str, Path] = {}
    for minor in MINORS:
        python = find_python(minor)
        if python is None:
            print(f"Python {minor}: not on this machine", file=sys.stderr)
            continue
        pythons[minor] = prepare(python, workdir / f"venv-{minor}")
    # Round-robin over the interpreters, then the fastest of the runs per cell: a slow
    # phase of a shared machine (up to 1.5x for tens of seconds) then lands on no one interpreter.
    runs: dict[str, list[dict[str, object]]] = {minor: [] for minor in pythons}
    per_test: dict[str, list[float]] = {minor: [] for minor in pythons}
    for run in range(args.runs):
        for minor, venv_python in pythons.items():
            out = workdir / f"{minor}-{run}.json"
            runs[minor].append(measure(venv_python, args.sizes, args.repeat, out))
            per_test[minor].append(pytest_per_test(venv_python, workdir))
    results = {minor: fastest(docs) for minor, docs in runs.items()}
    if BASELINE not in results:
        print(f"no Python {BASELINE}: nothing to compare against", file=sys.stderr)
        return 1
    columns = [
        ("frozen", "added by the frozen check"),
        ("cyclic", "frozen check, body's objects die in cycles"),
        ("app_frozen", "check while the application froze the heap"),
    ]
    for key, title in columns:
        print(f"\n{title} (ms, mean of the middle 80%, ratio to {BASELINE})")
        print(f"{'heap objects':>12} " + " ".join(f"{m:>16}" for m in results))
        base_rows = results[BASELINE]["rows"]
        assert isinstance(base_rows, list)
        for n, base in enumerate(base_rows):
            cells = []
            for doc in results.values():
                rows = doc["rows"]
                assert isinstance(rows, list)
                row = rows[n]
                value = row[key] - (row["bare"] if key == "frozen" else 0)
                reference = base[key] - (base["bare"] if key == "frozen" else 0)
                cells.append(f"{value:>8.4f} {value / reference:>5.2f}x")
            print(f"{base['heap_objects']:>12,} " + " ".join(f"{c:>16}" for c in cells))
    base_pytest = min(per_test[BASELINE])
    print(f"\npytest's own time per empty test, no check (ms, ratio to {BASELINE})")
    print(" ".join(f"{m:>16}" for m in per_test))
    print(" ".join(f"{min(t):>8.4f} {min(t) / base_pytest:>5.2f}x" for t in per_test.values()))
    print("\ninterpreters: " + ", ".join(f"{m} = {d['python']}" for m, d in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
