"""Run real projects' test suites with pytest-leakcheck and with its alternatives, side by side.

    python benchmarks/real_suites.py [--suites jinja2,click,attrs,...] [--workdir DIR]
        [--repeat N] [--timeout SECONDS] [--configs plain,leakcheck,memray,threadleak,naive]
        [--install editable|wheel] [--json PATH]

Per suite it makes a virtual environment under the work directory (``venvs/<suite>``) with
pytest, this plugin (``pip install -e`` of this checkout), pytest-memray, pytest-threadleak and
the suite's test dependencies, downloads the package's sdist from PyPI (``pip download
--no-binary :all: --no-deps``, pinned versions), unpacks it (``src/<dist>-<version>``) and installs
the package from it. By default the install is editable, so the package's modules load from the
unpacked sdist, under pytest's rootdir: the plugin then watches the package's own classes, as it
would in the project's own CI. ``--install wheel`` installs it into site-packages instead, where
only the classes of the test modules themselves are watched.

Each suite then runs, from the unpacked sdist, once per configuration and repetition:

* ``plain``: pytest with the plugins installed but not switched on;
* ``leakcheck``: ``--leakcheck --leakcheck-json=...``;
* ``memray``: ``--memray`` (pytest-memray);
* ``threadleak``: ``--threadleak`` (pytest-threadleak);
* ``naive``: ``-p naive_heapcheck``, the whole-heap check of ``naive_heapcheck.py``.

Every run writes a JUnit XML file; the outcomes of ``plain`` and ``leakcheck`` are compared test by
test. The script prints a table per suite (counts, tests that fail only with the plugin, leaks and
suspects from the plugin's JSON report, wall-time ratios against ``plain``, medians over
``--repeat`` runs) and writes everything to ``<workdir>/results.json`` (or ``--json``). A suite that
does not install is reported and skipped; every pytest run has a timeout. Reruns with the same
``--workdir`` reuse the environments and downloads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent

# The tools every environment gets, pinned so that results are comparable between runs.
TOOLS = ("pytest==9.2.0", "pytest-memray==1.11.0", "pytest-threadleak==0.5.0")

# Arguments every run gets: no cache directory written into the unpacked sdist, and JUnit XML
# with file names (xunit1) so that node ids can be rebuilt from it.
COMMON_ARGS = ("-p", "no:cacheprovider", "-o", "junit_family=xunit1")

# After a run's timeout, how long pytest may take to stop after SIGINT before it is killed.
GRACE_SECONDS = 60

CONFIGS = ("plain", "leakcheck", "memray", "threadleak", "naive")


@dataclass(frozen=True)
class Suite:
    name: str
    dist: str
    version: str
    deps: tuple[str, ...]
    args: tuple[str, ...]
    note: str = ""


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            "jinja2",
            "jinja2",
            "3.1.6",
            deps=("trio==0.35.0",),
            args=("tests",),
        ),
        Suite(
            "click",
            "click",
            "8.5.1",
            deps=(),
            args=("tests",),  # its ini adds -m 'not stress'
        ),
        Suite(
            "attrs",
            "attrs",
            "26.1.0",
            deps=("cloudpickle==3.1.3", "hypothesis==6.170.17", "pympler==1.1"),
            args=("tests",),
        ),
        Suite(
            "anyio",
            "anyio",
            "4.16.0",
            deps=(
                "trio==0.35.0",
                "blockbuster==1.5.29",
                "hypothesis==6.170.17",
                "psutil==7.2.2",
                "pytest-mock==3.17.0",
                "pytest-timeout==2.4.0",
                "trustme==1.2.1",
                "truststore==0.10.5",
                "uvloop==0.23.0",
            ),
            # Network tests need the Internet, and this machine has no IPv6; the test suite's
            # ini loads its plugins itself (and pytest-timeout with a 20 s limit per test).
            args=("tests", "-m", "not network", "-k", "not ipv6 and not dualstack"),
            note="asyncio, trio and uvloop event loops, worker threads, timers",
        ),
        Suite(
            "asgiref",
            "asgiref",
            "3.13.0",
            deps=("packaging==26.4", "pytest-asyncio==1.5.0"),
            args=("tests",),
            note="sync_to_async/async_to_sync: thread pools, asyncio loops in threads",
        ),
        Suite(
            "janus",
            "janus",
            "2.0.0",
            deps=("pytest-asyncio==1.5.0",),
            # Its ini asks for pytest-cov; the benchmarks file needs pytest-codspeed.
            args=("tests", "-o", "addopts=", "--ignore=tests/test_benchmarks.py"),
            note="a queue shared between threads and asyncio",
        ),
        Suite(
            "async-timeout",
            "async-timeout",
            "5.0.1",
            deps=("pytest-asyncio==1.5.0",),
            args=("tests", "-o", "addopts="),  # its ini asks for pytest-cov
            note="asyncio TimerHandles (loop.call_at)",
        ),
        Suite(
            "tenacity",
            "tenacity",
            "9.2.1",
            deps=("tornado==6.6.1", "trio==0.35.0"),
            args=("tests",),
            note="retries with sleeps, asyncio, tornado and trio",
        ),
        Suite(
            "aiofiles",
            "aiofiles",
            "25.1.0",
            deps=("pytest-asyncio==1.5.0",),
            args=("tests",),
            note="file I/O delegated to the loop's thread pool",
        ),
        Suite(
            "cachetools",
            "cachetools",
            "8.0.2",
            deps=(),
            args=("tests",),
            note="TTL caches with timers, thread-safe decorators",
        ),
        Suite(
            "tornado",
            "tornado",
            "6.6.1",
            deps=(),
            # tornado's own runner silences its access log; under pytest, the tests that
            # assert no logs (unittest's assertNoLogs lowers the root logger to INFO) then fail.
            args=("tornado/test", "--log-disable=tornado.access"),
            note="PeriodicCallback, IOLoop.call_later, thread pools, unittest-style tests",
        ),
        Suite(
            "schedule",
            "schedule",
            "1.2.2",
            deps=("pytz==2026.6",),
            args=("test_schedule.py",),
            note="an in-process job scheduler",
        ),
    )
}

DEFAULT_SUITES = tuple(SUITES)


# -- running commands ---------------------------------------------------------------------------


@dataclass
class Finished:
    returncode: int | None  # None: killed after the timeout
    seconds: float
    output: str


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float,
    log: Path | None = None,
) -> Finished:
    """Run a command in its own process group, killing the whole group on timeout."""
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGINT first: pytest then stops like on Ctrl-C and still writes its reports.
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            returncode = None
        seconds = time.perf_counter() - began
        out.seek(0)
        output = out.read()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(cmd)}\n(cwd {cwd})\n\n{output}", encoding="utf-8")
    return Finished(returncode, seconds, output)


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# -- preparing a suite --------------------------------------------------------------------------


@dataclass
class Prepared:
    python: Path
    source: Path


class PrepareError(Exception):
    pass


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path, timeout: float) -> Path:
    python = venv_python(venv)
    if not python.exists():
        done = run([sys.executable, "-m", "venv", str(venv)], timeout=timeout)
        if done.returncode != 0:
            raise PrepareError(f"could not create {venv}:\n{tail(done.output)}")
    return python


def fetch_sdist(suite: Suite, python: Path, workdir: Path, timeout: float) -> Path:
    """Download and unpack the pinned sdist; return the unpacked project directory."""
    unpacked = workdir / "src" / f"{suite.dist}-{suite.version}"
    marker = unpacked / ".real_suites_unpacked"
    if marker.exists():
        return Path(marker.read_text(encoding="utf-8").strip())
    downloads = workdir / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    spec = f"{suite.dist}=={suite.version}"
    pip_download = [str(python), "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
    done = run(
        [*pip_download, "-d", str(downloads), spec],
        timeout=timeout,
        log=workdir / "logs" / f"{suite.name}-download.log",
    )
    if done.returncode != 0:
        raise PrepareError(f"pip download {spec} failed:\n{tail(done.output)}")
    archive = find_archive(downloads, suite)
    if unpacked.exists():
        shutil.rmtree(unpacked)
    unpacked.mkdir(parents=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(unpacked)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(unpacked, filter="data")
    tops = [p for p in unpacked.iterdir() if p.is_dir()]
    project = tops[0] if len(tops) == 1 else unpacked
    marker.write_text(str(project), encoding="utf-8")
    return project


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_archive(downloads: Path, suite: Suite) -> Path:
    want = normalized(f"{suite.dist}-{suite.version}")
    for path in sorted(downloads.iterdir()):
        for ext in (".tar.gz", ".tgz", ".tar.bz2", ".zip"):
            if path.name.endswith(ext) and normalized(path.name[: -len(ext)]) == want:
                return path
    raise PrepareError(f"pip download succeeded but no sdist of {suite.dist} is in {downloads}")


def prepare(suite: Suite, workdir: Path, install_mode: str, timeout: float) -> Prepared:
    venv = workdir / "venvs" / suite.name
    python = ensure_venv(venv, timeout)
    source = fetch_sdist(suite, python, workdir, timeout)
    package = ["-e", str(source)] if install_mode == "editable" else [str(source)]
    cmd = [str(python), "-m", "pip", "install", *TOOLS, "-e", str(REPO), *suite.deps, *package]
    stamp = venv / ".real_suites_install.json"
    wanted = json.dumps(cmd)
    if stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return Prepared(python, source)
    done = run(cmd, timeout=timeout, log=workdir / "logs" / f"{suite.name}-install.log")
    if done.returncode != 0:
        raise PrepareError(f"pip install failed:\n{tail(done.output)}")
    stamp.write_text(wanted, encoding="utf-8")
    return Prepared(python, source)


# -- one pytest run -----------------------------------------------------------------------------


@dataclass
class Outcome:
    outcome: str  # passed, failed, error, skipped, xfailed
    message: str = ""


@dataclass
class RunResult:
    config: str
    repeat: int
    seconds: float
    returncode: int | None
    timed_out: bool
    summary: str  # pytest's last line, e.g. "10 passed, 1 skipped in 2.01s"
    counts: dict[str, int]  # from that line
    junit: dict[str, int]  # tests/failures/errors/skipped from the JUnit XML
    log: str
    crashed: bool  # pytest printed INTERNALERROR
    plugin_src: str  # a hash of src/pytest_leakcheck when the run started: others edit it
    plugin_errors: list[str] = field(default_factory=list)
    naive: str = ""
    outcomes: dict[str, Outcome] = field(default_factory=dict, repr=False)
    leakcheck: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """pytest ran to its end: not stopped by the timeout or killed by a signal."""
        return self.returncode is not None and self.returncode >= 0 and bool(self.summary)


def config_args(config: str, leak_json: Path) -> list[str]:
    if config == "plain":
        return []
    if config == "leakcheck":
        return ["--leakcheck", f"--leakcheck-json={leak_json}"]
    if config == "memray":
        return ["--memray"]
    if config == "threadleak":
        return ["--threadleak"]
    if config == "naive":
        return ["-p", "naive_heapcheck"]
    raise ValueError(config)


def test_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH", "VIRTUAL_ENV")
        and not k.startswith("COV_CORE")
    }
    env["PYTHONPATH"] = str(BENCHMARKS)  # for -p naive_heapcheck
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


SUMMARY_RE = re.compile(r"^=+ (.+ in [\d.]+s(?: \([\d:]+\))?) =+$")
COUNT_RE = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|warnings?|deselected)")


def parse_summary(output: str) -> tuple[str, dict[str, int]]:
    for line in reversed(output.splitlines()):
        m = SUMMARY_RE.match(line.strip())
        if m:
            counts: dict[str, int] = {}
            for n, what in COUNT_RE.findall(m.group(1)):
                key = {"error": "errors", "warning": "warnings"}.get(what, what)
                counts[key] = counts.get(key, 0) + int(n)
            return m.group(1), counts
    return "", {}


# Lines of a traceback block kept from its start and its end (the end says what failed).
HEAD_LINES, TAIL_LINES = 10, 60


def _block(lines: list[str]) -> str:
    if len(lines) > HEAD_LINES + TAIL_LINES:
        cut = len(lines) - HEAD_LINES - TAIL_LINES
        lines = [*lines[:HEAD_LINES], f"[... {cut} lines ...]", *lines[-TAIL_LINES:]]
    return "\n".join(lines).rstrip()


def plugin_errors(output: str) -> list[str]:
    """Tracebacks of the plugin failing, as the plugin (its warning) or pytest (INTERNALERROR)
    printed them, deduplicated across tests."""
    found: list[str] = []
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("INTERNALERROR>"):
            end = i
            while end < len(lines) and lines[end].startswith("INTERNALERROR>"):
                end += 1
        elif "pytest-leakcheck failed while" in line:
            end = i + 1
            while (
                end < len(lines)
                and not lines[end].startswith("=")
                and not (
                    "pytest-leakcheck failed while" in lines[end]
                    or (lines[end].strip() == "" and lines[end - 1].strip() == "")
                )
            ):
                end += 1
        else:
            i += 1
            continue
        text = _block(lines[i:end])
        key = re.sub(r"for \S+;", "for <test>;", text)
        if all(re.sub(r"for \S+;", "for <test>;", f) != key for f in found):
            found.append(text)
        i = end
    return found


def nodeid_of(case: ET.Element) -> str:
    """Rebuild a node id from a JUnit (xunit1) testcase: undo pytest's mangle_test_address."""
    classname = case.get("classname", "")
    name = case.get("name", "")
    path = case.get("file")
    if path:
        module = re.sub(r"\.py$", "", path).replace("/", ".")
        if classname == module:
            return f"{path}::{name}"
        if classname.startswith(module + "."):
            inner = classname[len(module) + 1 :].replace(".", "::")
            return f"{path}::{inner}::{name}"
    return f"{classname}::{name}" if classname else name


def parse_junit(path: Path) -> tuple[dict[str, Outcome], dict[str, int]]:
    outcomes: dict[str, Outcome] = {}
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if not path.exists():
        return outcomes, totals
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return outcomes, totals
    for suite in root.iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, "0") or 0)
    for case in root.iter("testcase"):
        outcome = Outcome("passed")
        for tag in ("skipped", "error", "failure"):  # the last one found wins
            child = case.find(tag)
            if child is None:
                continue
            kind = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
            if tag == "skipped" and child.get("type") == "pytest.xfail":
                kind = "xfailed"
            # The element's text is the whole report; its message attribute, a shortened copy.
            message = child.text or child.get("message") or ""
            outcome = Outcome(kind, message.strip())
        outcomes[nodeid_of(case)] = outcome
    return outcomes, totals


def run_pytest(
    suite: Suite,
    prep: Prepared,
    config: str,
    repeat: int,
    out: Path,
    timeout: float,
) -> RunResult:
    stem = f"{config}-{repeat}"
    junit = out / f"{stem}.xml"
    leak_json = out / f"{stem}-leakcheck.json"
    for stale in (junit, leak_json):
        stale.unlink(missing_ok=True)
    cmd = [str(prep.python), "-m", "pytest", *COMMON_ARGS, f"--junitxml={junit}"]
    cmd += [*config_args(config, leak_json), *suite.args]
    log = out / f"{stem}.log"
    source_hash = plugin_fingerprint()
    done = run(cmd, cwd=prep.source, env=test_env(), timeout=timeout, log=log)
    summary, counts = parse_summary(done.output)
    outcomes, totals = parse_junit(junit)
    naive = next((ln for ln in done.output.splitlines() if ln.startswith("naive-heapcheck:")), "")
    leakcheck: dict[str, Any] | None = None
    if config == "leakcheck" and leak_json.exists():
        leakcheck = json.loads(leak_json.read_text(encoding="utf-8"))
    return RunResult(
        config=config,
        repeat=repeat,
        seconds=done.seconds,
        returncode=done.returncode,
        timed_out=done.returncode is None,
        summary=summary,
        counts=counts,
        junit=totals,
        log=str(log),
        crashed="INTERNALERROR>" in done.output,
        plugin_src=source_hash,
        plugin_errors=plugin_errors(done.output),
        naive=naive,
        outcomes=outcomes,
        leakcheck=leakcheck,
    )


# -- comparing ----------------------------------------------------------------------------------

FAILING = ("failed", "error")


def failing(result: RunResult) -> set[str]:
    return {n for n, o in result.outcomes.items() if o.outcome in FAILING}


def leak_entries(result: RunResult | None) -> list[dict[str, Any]]:
    if result is None or result.leakcheck is None:
        return []
    tests = result.leakcheck.get("tests", [])
    return tests if isinstance(tests, list) else []


@dataclass
class SuiteReport:
    name: str
    dist: str
    version: str
    note: str
    status: str  # ok, install-failed, error
    error: str = ""
    source: str = ""
    runs: list[RunResult] = field(default_factory=list)
    plugin_only_failures: list[dict[str, Any]] = field(default_factory=list)
    plain_only_failures: list[str] = field(default_factory=list)
    not_run_with_plugin: list[str] = field(default_factory=list)  # e.g. after a crash
    findings: list[dict[str, Any]] = field(default_factory=list)
    not_checked: int = 0
    checked: int = 0

    def by_config(self, config: str) -> list[RunResult]:
        return [r for r in self.runs if r.config == config]

    def new_failures(self) -> dict[str, list[str]]:
        return {c: sorted(new_failures(self, c)) for c in CONFIGS if c != "plain"}

    def median_seconds(self, config: str) -> float | None:
        """Over the runs that finished; None when none did."""
        times = [r.seconds for r in self.by_config(config) if r.finished]
        return statistics.median(times) if times else None


def findings_of(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per thing the plugin reported for a test: survivor groups (``leaks``), what the
    test left running (``pending``) and heap growth (``heap_leak``)."""
    nodeid, verdict = entry.get("nodeid"), entry.get("verdict")
    rows: list[dict[str, Any]] = []
    for group in entry.get("leaks") or []:
        rows.append(
            {
                "nodeid": nodeid,
                "finding": "survivors",
                "verdict": group.get("verdict", verdict),
                "type": group.get("type"),
                "count": group.get("count"),
                "root": group.get("root"),
                "root_description": group.get("root_description"),
                "path": group.get("path") or [],
                "other_paths": group.get("other_paths") or [],
                "retained_bytes": group.get("retained_bytes"),
            }
        )
    for item in entry.get("pending") or []:
        rows.append(
            {
                "nodeid": nodeid,
                "finding": "left running",
                "verdict": item.get("verdict", verdict),
                "type": item.get("kind"),
                "count": 1,
                "root": item.get("kind"),
                "root_description": item.get("description"),
                "path": [str(item.get("description"))],
                "other_paths": [],
                "retained_bytes": None,
            }
        )
    if entry.get("heap_leak"):
        rows.append(
            {
                "nodeid": nodeid,
                "finding": "heap growth",
                "verdict": verdict,
                "type": "heap growth",
                "count": 1,
                "root": "heap",
                "root_description": json.dumps(entry.get("heap")),
                "path": [json.dumps(entry.get("heap"))],
                "other_paths": [],
                "retained_bytes": None,
            }
        )
    for row in rows:
        row["proof"] = entry.get("proof") or []
        row["snapshot"] = entry.get("snapshot")
        row["check_seconds"] = entry.get("check_seconds")
    return rows


def compare(report: SuiteReport) -> None:
    """Fill in the test-by-test comparison of plain against leakcheck, over every repetition."""
    plain = report.by_config("plain")
    checked = report.by_config("leakcheck")
    if not plain or not checked:
        return
    ever_plain = set().union(*(failing(r) for r in plain))
    ever_checked = set().union(*(failing(r) for r in checked))
    others = [r for r in report.runs if r.config not in ("plain", "leakcheck")]
    entries = {e["nodeid"]: e for r in checked for e in leak_entries(r)}
    for nodeid in sorted(ever_checked - ever_plain):
        outcome = next(r.outcomes[nodeid] for r in checked if nodeid in failing(r))
        report.plugin_only_failures.append(
            {
                "nodeid": nodeid,
                "outcome": outcome.outcome,
                "in_every_leakcheck_run": all(nodeid in failing(r) for r in checked),
                "also_fails_with": sorted({r.config for r in others if nodeid in failing(r)}),
                "leak_report": nodeid in entries,
                "message": outcome.message[:4000],
            }
        )
    ran = set().union(*(r.outcomes.keys() for r in checked))
    report.plain_only_failures = sorted((ever_plain - ever_checked) & ran)
    report.not_run_with_plugin = sorted(set(plain[-1].outcomes) - ran)
    for entry in sorted(entries.values(), key=lambda e: str(e.get("nodeid"))):
        report.findings.extend(findings_of(entry))
    last = checked[-1].leakcheck
    if last is not None:
        report.not_checked = len(last.get("not_checked") or [])
        report.checked = len(last.get("checked") or [])


# -- the whole benchmark ------------------------------------------------------------------------


def run_suite(
    suite: Suite, workdir: Path, configs: list[str], repeat: int, timeout: float, install: str
) -> SuiteReport:
    report = SuiteReport(suite.name, suite.dist, suite.version, suite.note, status="ok")
    print(f"\n### {suite.name} {suite.version}: preparing", flush=True)
    try:
        prep = prepare(suite, workdir, install, timeout=max(timeout, 900))
    except PrepareError as exc:
        report.status, report.error = "install-failed", str(exc)
        print(f"### {suite.name}: could not be installed\n{exc}", flush=True)
        return report
    report.source = str(prep.source)
    out = workdir / "results" / suite.name
    out.mkdir(parents=True, exist_ok=True)
    for rep in range(repeat):
        for config in configs:
            result = run_pytest(suite, prep, config, rep, out, timeout)
            state = "TIMEOUT" if result.timed_out else result.summary or ended(result.returncode)
            print(f"    {config:<10} run {rep + 1}: {result.seconds:7.1f}s  {state}", flush=True)
            for err in result.plugin_errors:
                print(f"    plugin error:\n{indent(err, 8)}", flush=True)
            report.runs.append(result)
    compare(report)
    return report


def ended(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"killed by {signal.Signals(-returncode).name} (not by this script)"
    return f"exit status {returncode}, no pytest summary"


def indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


def fmt_ratio(report: SuiteReport, config: str) -> str:
    """Median time relative to plain; for a configuration no run of which finished, a lower
    bound from the longest unfinished run (">51x")."""
    runs = report.by_config(config)
    if not runs:
        return "-"
    base = report.median_seconds("plain")
    mine = report.median_seconds(config)
    if mine is None:
        longest = max(r.seconds for r in runs)
        return f">{longest / base:.0f}x" if base else f">{longest:.0f}s"
    if not base:
        return f"{mine:.1f}s"
    return f"{mine / base:.2f}x"


def outcome_counts(result: RunResult) -> str:
    c = result.counts
    if result.timed_out:
        return f"TIMEOUT after {result.seconds:.0f} s"
    if not c:
        return ended(result.returncode)
    parts = [f"{c.get(k, 0)} {k}" for k in ("passed", "failed", "errors", "skipped") if c.get(k)]
    extra = [f"{c[k]} {k}" for k in ("xfailed", "xpassed") if c.get(k)]
    return ", ".join(parts + extra) or "0 tests"


# How many node ids a printed list shows before "... and N more" (the JSON has them all).
MAX_LISTED = 40
# For how many of the tests that fail only with the plugin the failure text is printed.
MAX_MESSAGES = 3


def print_list(title: str, lines: list[str]) -> None:
    print(f"  {title}: {len(lines)}")
    for line in lines[:MAX_LISTED]:
        print(f"    {line}")
    if len(lines) > MAX_LISTED:
        print(f"    ... and {len(lines) - MAX_LISTED} more (see the JSON)")


def print_report(report: SuiteReport) -> None:
    title = f"{report.name} {report.version}"
    print("\n" + "=" * 100)
    print(f"{title}" + (f"  ({report.note})" if report.note else ""))
    print("=" * 100)
    if report.status != "ok":
        print(f"NOT RUN: {report.status}\n{indent(report.error, 4)}")
        return
    rows = []
    for config in CONFIGS:
        runs = report.by_config(config)
        if not runs:
            continue
        med = report.median_seconds(config)
        last = runs[-1]
        rows.append(
            (
                config,
                str(len(last.outcomes)),
                outcome_counts(last) + (" CRASHED (INTERNALERROR)" if last.crashed else ""),
                "-" if config == "plain" else str(len(new_failures(report, config))),
                f"{med:.1f}" if med is not None else f">{max(r.seconds for r in runs):.0f}",
                "1.00x" if config == "plain" else fmt_ratio(report, config),
            )
        )
    headers = (
        "config",
        "tests",
        "pytest outcome (last run)",
        "fail only here",
        "wall s (median)",
        "vs plain",
    )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    naive = next((r.naive for r in report.by_config("naive") if r.naive), "")
    if naive:
        print(f"  {naive}")
    leak_tests = leaking_tests(report)
    suspect_tests = {str(f["nodeid"]) for f in report.findings} - leak_tests
    print(
        f"  leakcheck report: {report.checked} tests checked, {len(leak_tests)} leaking, "
        f"{len(suspect_tests)} suspect only, {report.not_checked} not checked (failed by "
        f"themselves); {len(report.findings)} finding(s)"
    )
    lines = []
    for item in report.plugin_only_failures:
        flags = []
        if not item["in_every_leakcheck_run"]:
            flags.append("not in every leakcheck run")
        if item["also_fails_with"]:
            flags.append("also fails with " + ",".join(item["also_fails_with"]))
        if not item["leak_report"]:
            flags.append("not in the leak report")
        lines.append(
            f"{item['outcome']:<6} {item['nodeid']}" + (f"  [{'; '.join(flags)}]" if flags else "")
        )
    print_list("fail only with --leakcheck", lines)
    for item in report.plugin_only_failures[:MAX_MESSAGES]:
        print(f"    --- {item['nodeid']}")
        print(indent("\n".join(str(item["message"]).splitlines()[:14]), 8))
    if report.plain_only_failures:
        print_list("fail only without --leakcheck (flaky?)", report.plain_only_failures)
    if report.not_run_with_plugin:
        print_list("never reached with --leakcheck", report.not_run_with_plugin)
    print_findings(report.findings)
    errors = {e for r in report.runs for e in r.plugin_errors}
    if errors:
        print(f"  plugin errors ({len(errors)} distinct):")
        for err in sorted(errors):
            print(indent(err, 4))


def new_failures(report: SuiteReport, config: str) -> set[str]:
    """Tests that fail in some run of this configuration and in no plain run."""
    plain = set().union(*(failing(r) for r in report.by_config("plain")))
    return set().union(*(failing(r) for r in report.by_config(config))) - plain


def leaking_tests(report: SuiteReport) -> set[str]:
    return {str(f["nodeid"]) for f in report.findings if f["verdict"] == "leak"}


# Addresses, numbers and line numbers that differ between otherwise identical findings.
VOLATILE = re.compile(r"0x[0-9a-f]+|\d+(?:\.\d+)?")


def print_findings(findings: list[dict[str, Any]]) -> None:
    """Leak and suspect groups, merged across tests by verdict, type, root and where the path
    starts (every group is in the JSON)."""
    merged: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for f in findings:
        start = (VOLATILE.sub("#", str(step)) for step in f["path"][:2])
        key = (str(f["verdict"]), str(f["type"]), str(f["root"] or "not walked"), *start)
        merged.setdefault(key, []).append(f)
    for (verdict, type_, root, *_start), group in sorted(merged.items()):
        tests = sorted({str(f["nodeid"]) for f in group})
        objects = sum(int(f["count"] or 0) for f in group)
        what = (
            "left running"
            if group[0]["finding"] == "left running"
            else ("not walked" if root == "not walked" else f"held by {root}")
        )
        print(
            f"  {verdict.upper():<7} {type_} {what}: {objects} in {len(tests)} test(s), "
            f"e.g. {tests[0]}"
        )
        path = " | ".join(map(str, group[0]["path"][:6])) or f"({group[0]['root_description']})"
        print(f"{'':10}path: {path}"[:300])


def print_overview(reports: list[SuiteReport]) -> None:
    print("\n" + "=" * 100)
    print("overview")
    print("=" * 100)
    headers = (
        "suite",
        "tests",
        "plain p/f/e",
        "leakcheck p/f/e",
        "only-plugin",
        "leaks",
        "suspects",
        "leakcheck",
        "memray",
        "threadleak",
        "naive",
    )
    rows = []
    for r in reports:
        if r.status != "ok":
            rows.append((r.name, r.status, *("-" * 1 for _ in headers[2:])))
            continue

        def pfe(config: str, r: SuiteReport = r) -> str:
            runs = r.by_config(config)
            if not runs:
                return "-"
            if not runs[-1].finished:
                return "TIMEOUT" if runs[-1].timed_out else "KILLED"
            c = runs[-1].counts
            crashed = " CRASH" if runs[-1].crashed else ""
            return f"{c.get('passed', 0)}/{c.get('failed', 0)}/{c.get('errors', 0)}{crashed}"

        plain_runs = r.by_config("plain")
        tests = str(len(plain_runs[-1].outcomes)) if plain_runs else "-"
        leak_tests = leaking_tests(r)
        suspect_tests = {str(f["nodeid"]) for f in r.findings} - leak_tests
        rows.append(
            (
                r.name,
                tests,
                pfe("plain"),
                pfe("leakcheck"),
                str(len(r.plugin_only_failures)),
                str(len(leak_tests)),
                str(len(suspect_tests)),
                fmt_ratio(r, "leakcheck"),
                fmt_ratio(r, "memray"),
                fmt_ratio(r, "threadleak"),
                fmt_ratio(r, "naive"),
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(
        "p/f/e: passed/failed/errors as pytest reported them (CRASH: INTERNALERROR); only-plugin:"
    )
    print("tests failing only with --leakcheck; leaks: tests with a finding of verdict leak;")
    print(
        "suspects: tests with suspects only; the last four columns: median wall time of the whole"
    )
    print("pytest process relative to plain.")


def plugin_fingerprint() -> str:
    """The plugin is installed editable from this checkout, which may change between runs."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "pytest_leakcheck").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def git_describe() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (src modified)" if dirty else "")


def to_json(report: SuiteReport) -> dict[str, Any]:
    data = asdict(report)
    data["fail_only_with"] = report.new_failures()
    data["median_seconds"] = {c: report.median_seconds(c) for c in CONFIGS}
    for run_json, run_ in zip(data["runs"], report.runs, strict=True):
        del run_json["outcomes"]
        run_json["failing"] = sorted(failing(run_))
        run_json["leakcheck"] = run_.leakcheck
    return data


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--suites",
        default=",".join(DEFAULT_SUITES),
        help=f"comma-separated, from: {', '.join(SUITES)} (default: %(default)s)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per pytest run")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="default: %(default)s")
    parser.add_argument("--install", choices=("editable", "wheel"), default="editable")
    parser.add_argument("--json", type=Path, default=None, help="default: <workdir>/results.json")
    args = parser.parse_args()

    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = [n for n in names if n not in SUITES]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in CONFIGS]
    if unknown or bad:
        parser.error(f"unknown suite(s) {unknown} or config(s) {bad}")
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: each configuration needs at least 1 run")
    if "plain" not in configs:
        configs.insert(0, "plain")
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="realsuites-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {workdir}")

    reports: list[SuiteReport] = []
    for name in names:
        suite = SUITES[name]
        try:
            report = run_suite(suite, workdir, configs, args.repeat, args.timeout, args.install)
        except Exception as exc:  # keep going: one broken suite must not hide the others
            report = SuiteReport(suite.name, suite.dist, suite.version, suite.note, "error")
            report.error = f"{type(exc).__name__}: {exc}"
        reports.append(report)
        print_report(report)
    print_overview(reports)

    results = {
        "meta": {
            "python": sys.version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "plugin_commit": git_describe(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "repeat": args.repeat,
            "timeout": args.timeout,
            "install": args.install,
            "tools": TOOLS,
            "configs": configs,
        },
        "suites": [to_json(r) for r in reports],
    }
    path = args.json or workdir / "results.json"
    path.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"\nraw results: {path}")
    return 0 if all(r.status == "ok" for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
