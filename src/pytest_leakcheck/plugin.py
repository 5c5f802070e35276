"""pytest glue: the only module with hooks. It selects tests, opens a check around each one, and
turns the findings into test outcomes, a summary and a JSON report. Nothing imports it."""

from __future__ import annotations

import builtins
import inspect
import os
import threading
import time
import traceback
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

import pytest

from . import baseline, files, graphs, junit, report, roots, snapshot
from . import config as cfg
from .checker import NOT_WALKED_BUDGET, Findings, LeakCheck, Options, RepeatError
from .roots import RootInfo
from .watch import WatchFilter

SETTINGS_KEY = pytest.StashKey[cfg.Settings]()
ITEM_KEY = pytest.StashKey[cfg.ItemSettings]()
CHECK_KEY = pytest.StashKey[LeakCheck]()
FAILED_KEY = pytest.StashKey[str]()

# In lenient (--leakcheck) checks, a passive suspect type is walked this many times per session;
# after that its survivors are counted only (see checker.Options.skip_tracing).
EXPLAIN_EACH_TYPE = 1

NOT_CHECKED = (
    "not checked for leaks: the test {what}, and its traceback keeps its frames and locals alive, "
    "so survivors could not be told from the failure's own references"
)


class LeakcheckWarning(pytest.PytestWarning):
    """The plugin failed while checking a test; the test's own outcome is unchanged."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leakcheck", "leak checking (pytest-leakcheck)")
    # Flags default to None so that the ini value is read when the flag is absent.
    group.addoption("--leakcheck", action="store_true", default=None, help=cfg.ENABLE_HELP)
    group.addoption("--leakcheck-strict", action="store_true", default=None, help=cfg.STRICT_HELP)
    group.addoption("--leakcheck-json", default=None, metavar="PATH", help=cfg.JSON_HELP)
    group.addoption("--leakcheck-trace", action="store_true", default=None, help=cfg.TRACE_HELP)
    group.addoption("--leakcheck-baseline", default=None, metavar="FILE", help=cfg.BASELINE_HELP)
    group.addoption("--leakcheck-graphs", default=None, metavar="DIR", help=cfg.GRAPHS_HELP)
    group.addoption(
        "--leakcheck-update-baseline",
        action="store_true",
        default=False,
        help=cfg.UPDATE_BASELINE_HELP,
    )
    group.addoption(
        "--leakcheck-explain-budget",
        default=None,
        metavar="PERCENT",
        help=cfg.EXPLAIN_BUDGET_HELP,
    )
    group.addoption(
        "--leakcheck-keep-timers", action="store_true", default=None, help=cfg.KEEP_TIMERS_HELP
    )
    parser.addini("leakcheck", cfg.ENABLE_HELP, default="false")
    parser.addini("leakcheck_strict", cfg.STRICT_HELP, default="false")
    parser.addini("leakcheck_json", cfg.JSON_HELP, default="")
    parser.addini("leakcheck_types", cfg.TYPES_HELP, type="args", default=[])
    parser.addini("leakcheck_max_growth", cfg.MAX_GROWTH_HELP, default="")
    parser.addini("leakcheck_runs", cfg.RUNS_HELP, default="0")
    parser.addini("leakcheck_warmup", cfg.WARMUP_HELP, default="")
    parser.addini("leakcheck_trace", cfg.TRACE_HELP, default="false")
    parser.addini("leakcheck_baseline", cfg.BASELINE_HELP, default="")
    parser.addini("leakcheck_graphs", cfg.GRAPHS_HELP, default="")
    parser.addini("leakcheck_keep_timers", cfg.KEEP_TIMERS_HELP, default="false")
    parser.addini(
        "leakcheck_explain_budget", cfg.EXPLAIN_BUDGET_HELP, default=str(cfg.DEFAULT_EXPLAIN_BUDGET)
    )
    parser.addini("leakcheck_ignore_threads", cfg.IGNORE_THREADS_HELP, type="args", default=[])


def _usage(message: str) -> pytest.UsageError:
    return pytest.UsageError(f"pytest-leakcheck: {message}")


def _flag_or_ini(config: pytest.Config, option: str, ini: str) -> bool:
    value = config.getoption(option)
    if value is not None:
        return bool(value)
    raw = config.getini(ini)
    try:
        return cfg.parse_bool(raw, name=ini, source=f"ini file {config.inipath or '?'}")
    except cfg.ConfigError as exc:
        raise _usage(f"{exc} Fix the '{ini} =' line in {config.inipath}.") from None


def _explain_budget(config: pytest.Config) -> float:
    raw = config.getoption("leakcheck_explain_budget")
    if raw is not None:
        source, fix = "command line", "Fix --leakcheck-explain-budget."
    else:
        raw = config.getini("leakcheck_explain_budget")
        source = f"ini file {config.inipath or '?'}"
        fix = f"Fix the 'leakcheck_explain_budget =' line in {config.inipath}."
    try:
        return cfg.parse_percent(raw, name="leakcheck_explain_budget", source=source)
    except cfg.ConfigError as exc:
        raise _usage(f"{exc} {fix}") from None


def _resolve_settings(config: pytest.Config) -> cfg.Settings:
    json_path = config.getoption("leakcheck_json") or config.getini("leakcheck_json") or None
    try:
        watch = cfg.resolve_specs(config.getini("leakcheck_types"))
    except cfg.ConfigError as exc:
        raise _usage(
            f"leakcheck_types in {config.inipath}: {exc}. List classes as importable dotted "
            f"names (myapp.session.User) or globs (myapp.session.*)."
        ) from None
    source = f"ini file {config.inipath or '?'}"
    try:
        max_growth_raw = config.getini("leakcheck_max_growth")
        max_growth = (
            cfg.parse_size(max_growth_raw, name="leakcheck_max_growth", source=source)
            if max_growth_raw
            else None
        )
        runs = cfg.parse_count(
            config.getini("leakcheck_runs"), name="leakcheck_runs", source=source, minimum=0
        )
        warmup_raw = config.getini("leakcheck_warmup")
        warmup = (
            cfg.parse_count(warmup_raw, name="leakcheck_warmup", source=source, minimum=0)
            if warmup_raw
            else None
        )
    except cfg.ConfigError as exc:
        raise _usage(f"{exc} Fix the line in {config.inipath}.") from None
    return cfg.Settings(
        explain_budget=_explain_budget(config),
        check_all=_flag_or_ini(config, "leakcheck", "leakcheck"),
        strict=_flag_or_ini(config, "leakcheck_strict", "leakcheck_strict"),
        json_path=str(json_path) if json_path else None,
        watch=watch,
        max_growth=max_growth,
        runs=runs,
        warmup=warmup,
        trace=_flag_or_ini(config, "leakcheck_trace", "leakcheck_trace"),
        keep_timers=_flag_or_ini(config, "leakcheck_keep_timers", "leakcheck_keep_timers"),
        ignore_threads=tuple(config.getini("leakcheck_ignore_threads")),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", cfg.MARKER_HELP)
    settings = _resolve_settings(config)
    config.stash[SETTINGS_KEY] = settings
    config.pluginmanager.register(LeakcheckSession(config, settings), "leakcheck-session")


class LeakcheckSession:
    """Per-session state: registered by pytest_configure, so each pytester run gets its own."""

    def __init__(self, config: pytest.Config, settings: cfg.Settings) -> None:
        self.config = config
        self.settings = settings
        self.rootdir = str(config.rootpath)
        self.entries: list[dict[str, Any]] = []
        self.not_checked: list[dict[str, str]] = []
        self.internal_errors: list[str] = []
        self.heaps: list[dict[str, Any]] = []
        # Threads that wider-scoped fixtures started (see roots.thread_key: a test's timer must
        # not pass for a fixture's thread that has long ended).
        self.fixture_threads: set[roots.ThreadKey] = set()
        self.explained: Counter[str] = Counter()  # suspects walked, by type
        # The budget for explaining suspects is a share of the time since the session began.
        self.began = time.perf_counter()
        self.passive_seconds = 0.0
        self.walks = 0  # lenient checks that walked or sized something
        self.known = self._read_baseline()
        self.write_errors: list[str] = []
        self._check_report_paths()
        graphs_dir = config.getoption("leakcheck_graphs") or config.getini("leakcheck_graphs")
        self.graphs_dir = (
            os.path.join(str(config.invocation_params.dir), str(graphs_dir)) if graphs_dir else None
        )
        self.checked = 0
        self.no_frozen: Counter[str] = Counter()  # why checks could not freeze, and how often
        self.no_frozen_noted: str | None = None  # what the line after collection already said

    def _json_path(self) -> str | None:
        path = self.settings.json_path
        return os.path.join(str(self.config.invocation_params.dir), path) if path else None

    def _junit_path(self) -> str | None:
        raw = getattr(self.config.option, "xmlpath", None)  # pytest's own --junitxml
        if not isinstance(raw, str) or not raw or hasattr(self.config, "workerinput"):
            return None
        # As pytest's junitxml resolves it, at configure time.
        return os.path.normpath(os.path.abspath(os.path.expanduser(os.path.expandvars(raw))))

    def _check_report_paths(self) -> None:
        """An unwritable report path is a usage error now, not a traceback after the run."""
        if hasattr(self.config, "workerinput"):  # the xdist controller writes the files
            return
        wanted = [(self._json_path(), "JSON report (--leakcheck-json / leakcheck_json)")]
        if self.config.getoption("leakcheck_update_baseline"):
            wanted.append((self._baseline_path(), "baseline (--leakcheck-baseline)"))
        for path, what in wanted:
            if path is None:
                continue
            try:
                files.check_writable(path, what)
            except files.UnwritableError as exc:
                raise _usage(str(exc)) from None

    def _baseline_path(self) -> str | None:
        raw = self.config.getoption("leakcheck_baseline") or self.config.getini(
            "leakcheck_baseline"
        )
        if not raw:
            return None
        return os.path.join(str(self.config.invocation_params.dir), str(raw))

    def _read_baseline(self) -> frozenset[str]:
        path = self._baseline_path()
        if path is None:
            if self.config.getoption("leakcheck_update_baseline"):
                raise _usage(
                    "--leakcheck-update-baseline needs a file: add --leakcheck-baseline=FILE "
                    "(or leakcheck_baseline = FILE in the ini file)."
                )
            return frozenset()
        if self.config.getoption("leakcheck_update_baseline"):
            return frozenset()  # rewriting it: every leak of this run is recorded, none hidden
        try:
            return baseline.read(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _usage(
                f"cannot read the baseline {path}: {exc}. Regenerate it with "
                f"--leakcheck-update-baseline, or fix the file."
            ) from None

    # -- selection ---------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            markers = [
                cfg.MarkerArgs(m.args, m.kwargs) for m in item.iter_markers(name="leakcheck")
            ]
            try:
                item.stash[ITEM_KEY] = cfg.item_settings(self.settings, markers)
            except cfg.ConfigError as exc:
                raise _usage(
                    f"{item.nodeid}: in @pytest.mark.leakcheck (on the test, its class or its "
                    f"module): {exc}"
                ) from None

    def _item_settings(self, item: pytest.Item) -> cfg.ItemSettings | None:
        found = item.stash.get(ITEM_KEY, None)
        return found if found is not None and found.checked else None

    # -- the window --------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            # If the protocol was cut short (pytest.exit, KeyboardInterrupt), never leave the
            # collector frozen.
            check = item.stash.get(CHECK_KEY, None)
            if check is not None:
                del item.stash[CHECK_KEY]
                check.abort()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        settings = self._item_settings(item)
        if settings is not None:
            self._guard(item, "starting the check", lambda: self._start(item, settings))
        return (yield)

    def _start(self, item: pytest.Item, settings: cfg.ItemSettings) -> None:
        watch = WatchFilter(
            rootdir=self.rootdir, types=settings.watch.types, patterns=settings.watch.patterns
        )
        check = LeakCheck(
            watch,
            Options(
                strict=settings.strict,
                # A failing (strict) check shows a few paths; a lenient one lists suspects.
                max_traced_per_type=3 if settings.strict else 1,
                max_growth=settings.max_growth,
                trace=settings.trace,
                graphs=self.graphs_dir is not None,
                stop_pending=not settings.keep_timers,
                ignore_threads=settings.ignore_threads,
                skip_tracing=frozenset(
                    name for name, n in self.explained.items() if n >= EXPLAIN_EACH_TYPE
                ),
                explain_suspects=self._within_budget(),
            ),
            extra_roots=lambda: _fixture_roots(item),
        )
        check.start()
        item.stash[CHECK_KEY] = check

    def _within_budget(self) -> bool:
        share = self.settings.explain_budget / 100
        # The next explanation is expected to cost what the earlier ones did on average: checked
        # before it runs, the budget is not overrun by the one that crosses it.
        typical = self.passive_seconds / self.walks if self.walks else 0.0
        allowed = share * (time.perf_counter() - self.began)
        return share > 0 and self.passive_seconds + typical <= allowed

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        """Under ``runs=``, run the test body warm-up + counted times inside the window."""
        settings = self._item_settings(pyfuncitem)
        check = pyfuncitem.stash.get(CHECK_KEY, None)
        if settings is None or check is None or not settings.runs:
            return None
        function = pyfuncitem.obj
        if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
            raise RepeatError(
                "pytest-leakcheck cannot repeat an async test body (runs=); use the leakcheck "
                "fixture's cycles() inside the test around the part that should repeat"
            )
        names = pyfuncitem._fixtureinfo.argnames
        kwargs = {name: pyfuncitem.funcargs[name] for name in names}
        total = settings.warmup + settings.runs
        for run in check.cycles(settings.runs, settings.warmup):
            try:
                function(**kwargs)
            except Exception as exc:
                if run == 0:
                    raise
                raise RepeatError(
                    f"pytest-leakcheck: the test body raised on run {run + 1} of {total} "
                    f"(warmup={settings.warmup}, runs={settings.runs}) after its first run "
                    f"passed, so it cannot be repeated: it probably uses up a one-shot fixture "
                    f"or state. Remove runs= from this test, or loop over the repeatable part "
                    f"with the leakcheck fixture: for _ in leakcheck.cycles(5, warmup=2): ..."
                ) from exc
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        """Threads that a wider-scoped fixture starts are the fixture's, not the test's."""
        if fixturedef.scope == "function":
            return (yield)
        before = {roots.thread_key(t) for t in threading.enumerate()}
        try:
            return (yield)
        finally:
            self.fixture_threads.update(
                {roots.thread_key(t) for t in threading.enumerate()} - before
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        rep = yield
        if CHECK_KEY not in item.stash:
            return rep
        if call.when in ("setup", "call") and not rep.passed:
            what = "failed" if rep.failed else "was skipped"
            item.stash[FAILED_KEY] = what
            if rep.failed:
                rep.sections.append(("leakcheck", NOT_CHECKED.format(what=what)))
        elif call.when == "teardown":
            check = item.stash[CHECK_KEY]
            del item.stash[CHECK_KEY]
            failed = item.stash.get(FAILED_KEY, None) or ("failed" if not rep.passed else None)
            if failed is not None:
                check.abort()
                if failed == "failed":
                    self.not_checked.append({"nodeid": item.nodeid, "reason": f"the test {failed}"})
                return rep
            self._guard(item, "checking for leaks", lambda: self._finish(item, check, rep))
        return rep

    def _finish(self, item: pytest.Item, check: LeakCheck, rep: pytest.TestReport) -> None:
        # pytest drops the test's fixture values right after this hook; a value still listed
        # here is not held by anything the test left behind.
        funcargs = getattr(item, "funcargs", None)
        if isinstance(funcargs, dict):
            funcargs.clear()
        del funcargs
        alive = {roots.thread_key(t): t.ident for t in threading.enumerate()}
        self.fixture_threads &= alive.keys()  # an ended one's ident is free for the next thread
        check.foreign_threads |= {i for key in self.fixture_threads if (i := alive[key])}
        try:
            findings = check.finish()
        except BaseException:
            check.abort()
            raise
        self.checked += 1
        # Carried to the xdist controller on the report, also for clean tests (their heap).
        data = report.findings_data(findings)
        baseline.add_fingerprints(data)
        baseline.apply(data, self.known)
        if self.graphs_dir is not None:
            self._write_graphs(item.nodeid, findings, data)
            _add_html_links(rep, [g["graph"] for g in data["leaks"] if g.get("graph")])
        self.explained.update(g.type for g in findings.suspects if g.retentions[0].path)
        if not check.options.strict:
            self.passive_seconds += findings.passive_seconds
            self.walks += findings.passive_seconds > 0.001
        rep.leakcheck = data  # type: ignore[attr-defined]
        if data["verdict"] is None:
            return
        rep.user_properties.extend(report.junit_properties(data))
        if data["verdict"] == "leak":
            rep.outcome = "failed"
            rep.longrepr = report.format_findings(data)

    def _write_graphs(self, nodeid: str, findings: Findings, data: dict[str, Any]) -> None:
        assert self.graphs_dir is not None
        for group, entry in zip(findings.groups, data["leaks"], strict=True):
            dot = group.retentions[0].dot if group.retentions else None
            if dot is None:
                continue
            name = f"{nodeid}--{group.type}--{entry['fingerprint']}"
            dot_path, svg_path = graphs.write(self.graphs_dir, name, dot)
            entry["graph"] = svg_path or dot_path

    def _guard(
        self,
        item: pytest.Item,
        doing: str,
        action: Callable[[], None],
    ) -> None:
        """A bug in the plugin becomes a warning; the test's own outcome stands."""
        try:
            action()
        except (KeyboardInterrupt, SystemExit, pytest.exit.Exception):
            raise
        except BaseException as exc:  # pytest-timeout's pytest.fail() can fire mid-check
            check = item.stash.get(CHECK_KEY, None)
            if check is not None:
                del item.stash[CHECK_KEY]
                check.abort()
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            message = (
                f"pytest-leakcheck failed while {doing} for {item.nodeid}; the test's outcome is "
                f"unchanged. Please report this with the traceback:\n{detail}"
            )
            try:
                item.warn(LeakcheckWarning(message))
            except Exception:
                # -W error turns the warning into an exception; the session must go on, and the
                # message is printed in the terminal summary instead.
                self.internal_errors.append(message)

    # -- reporting ---------------------------------------------------------------------------

    def pytest_report_teststatus(
        self, report: pytest.TestReport
    ) -> tuple[str, str, tuple[str, Mapping[str, bool]]] | None:
        data = getattr(report, "leakcheck", None)
        if report.when == "teardown" and report.failed and data and data.get("verdict") == "leak":
            return "error", "L", ("LEAKED", {"red": True})
        return None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Say once, before the tests run, that checks cannot freeze the heap, and the cost."""
        if not any(self._item_settings(item) for item in session.items):
            return
        why = snapshot.no_frozen_window()
        if why is None:
            return
        seconds, objects = snapshot.full_heap_cost(WatchFilter(rootdir=self.rootdir))
        self.no_frozen_noted = why
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"leakcheck: no frozen window ({why}): each check compares the whole heap, "
                f"about {seconds * 1000:.1f} ms per test at today's {objects:,} objects, "
                f"growing with the heap"
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "leakcheck", None)
        if report.when == "teardown" and isinstance(data, dict):
            why = data.get("no_frozen_window")
            if why:
                self.no_frozen[why] += 1
            heap = data.get("heap") or {}
            self.heaps.append({"nodeid": report.nodeid, **heap})
            if data.get("verdict") is not None:
                self.entries.append({"nodeid": report.nodeid, **data})

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.internal_errors:
            terminalreporter.section("leakcheck internal errors", sep="=", yellow=True)
            for message in self.internal_errors:
                terminalreporter.write_line(message)
        # From the reports: a freeze that an application made while the tests were collected
        # (or in an xdist worker) is seen only there.
        unseen = {why: n for why, n in self.no_frozen.items() if why != self.no_frozen_noted}
        for why, n in sorted(unseen.items()):
            terminalreporter.write_line(
                f"leakcheck: {n} test(s) compared the whole heap: no frozen window ({why})"
            )
        if not self.entries:
            return
        leaks = sum(1 for e in self.entries if e["verdict"] == "leak")
        known = sum(1 for e in self.entries if e["verdict"] == "known")
        suspects = len(self.entries) - leaks - known
        terminalreporter.section("leakcheck summary", sep="=", red=bool(leaks), yellow=not leaks)
        for line in report.summary_lines(self.entries):
            terminalreporter.write_line(line)
        for line in report.fingerprint_lines(self.entries):
            terminalreporter.write_line(line)
        if known:
            terminalreporter.write_line(f"{known} test(s) with only known leaks (in the baseline)")
        # From the reports, not a counter of this process: under xdist the workers checked.
        unexplained = sum(
            1
            for e in self.entries
            for g in e["leaks"]
            if g.get("root_description") == NOT_WALKED_BUDGET
        )
        if unexplained:
            terminalreporter.write_line(
                f"{unexplained} suspect group(s) counted without a path: explaining "
                f"suspects had used its {self.settings.explain_budget:g}% of the session's time "
                f"(raise it with --leakcheck-explain-budget)"
            )
        terminalreporter.write_line(
            f"{leaks} leaking, {suspects} suspect test(s); suspects do not fail the run "
            f"(use --leakcheck-strict to make them fail)"
            if suspects
            else f"{leaks} leaking test(s)"
        )

    # After pytest's junitxml has written its file (trylast), so that it can be rewritten.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):  # the xdist controller writes the files
            return
        entries = sorted(self.entries, key=lambda e: e["nodeid"])
        baseline_path = self._baseline_path()
        if baseline_path and self.config.getoption("leakcheck_update_baseline"):
            self._write("baseline", baseline_path, lambda: baseline.write(baseline_path, entries))
        json_path = self._json_path()
        if json_path:
            extra = {
                "not_checked": self.not_checked,
                "checked": sorted(self.heaps, key=lambda e: e["nodeid"]),
            }
            self._write(
                "JSON report", json_path, lambda: report.write_json(json_path, entries, extra)
            )
        junit_path = self._junit_path()
        if (
            junit_path
            and os.path.exists(junit_path)
            and any(e["verdict"] == "leak" for e in entries)
        ):
            self._write("JUnit XML", junit_path, lambda: junit.leaks_as_failures(junit_path))
        if self.write_errors and session.exitstatus == pytest.ExitCode.OK:
            # A CI gate whose report is missing must not pass.
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def _write(self, what: str, path: str, action: Callable[[], object]) -> None:
        try:
            action()
        except (OSError, ValueError, ET.ParseError) as exc:
            message = f"pytest-leakcheck: could not write the {what} to {path}: {exc}"
            self.write_errors.append(message)
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(message, red=True)


class CycleRunner:
    """What the ``leakcheck`` fixture gives a test: cycles judged like ``runs=``."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    def cycles(
        self, runs: int, warmup: int = 0, *, types: Sequence[type | str] = ()
    ) -> Iterator[int]:
        """``for _ in leakcheck.cycles(5, warmup=2): connect(); disconnect()``.

        After the last run, the test fails if a watched type (the project's classes, plus
        ``types``) grew in every counted run, or the traced heap did, with the report of a leak.
        """
        node = self._request.node
        try:
            spec = cfg.resolve_specs(types)
        except cfg.ConfigError as exc:
            raise _usage(f"{node.nodeid}: leakcheck.cycles(): {exc}") from None
        watch = WatchFilter(
            rootdir=str(node.config.rootpath), types=spec.types, patterns=spec.patterns
        )
        check = LeakCheck(watch, Options(strict=True))
        check.start()
        try:
            yield from check.cycles(runs, warmup)
        except BaseException:
            check.abort()
            raise
        findings = check.finish()
        if findings.verdict == "leak":
            pytest.fail(report.format_findings(report.findings_data(findings)), pytrace=False)


@pytest.fixture
def leakcheck(request: pytest.FixtureRequest) -> CycleRunner:
    """Repeat part of a test in cycles and fail it when something grows in every cycle."""
    return CycleRunner(request)


def _add_html_links(rep: pytest.TestReport, paths: list[str]) -> None:
    """Link each leak's graph from pytest-html's report, when pytest-html is installed."""
    if not paths:
        return
    try:
        from pytest_html import extras
    except ImportError:
        return
    links = list(getattr(rep, "extras", []))
    links.extend(extras.url(path, name=f"leak graph {os.path.basename(path)}") for path in paths)
    rep.extras = links  # type: ignore[attr-defined]


def _fixture_roots(item: pytest.Item) -> dict[int, RootInfo]:
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
            desc = RootInfo(roots.FIXTURE, f"{scope}-scoped fixture {name!r}")
            found[id(fixturedef)] = desc
            found[id(cached)] = desc
            found[id(cached[0])] = desc
    found.update(_pytest_holders(item))
    return found


def _pytest_holders(item: pytest.Item) -> dict[int, RootInfo]:
    """What pytest itself keeps past the test, by design; not the test's leak."""
    found: dict[int, RootInfo] = {}
    # The instance pytest made of the test's class lives as long as the item does.
    instance = getattr(item, "instance", None)
    if instance is not None:
        found[id(instance)] = RootInfo(roots.FIXTURE, "the test class instance pytest keeps")
    # A parametrized test's arguments live in its callspec as long as the item does: a
    # pytest.raises(...) passed as a parameter keeps the exception it caught, and its traceback.
    params = getattr(getattr(item, "callspec", None), "params", None)
    if isinstance(params, dict):
        found[id(params)] = RootInfo(roots.FIXTURE, "this test's parameters (pytest's callspec)")
    # catch_warnings(record=True) around the test: its list of records, until the protocol ends.
    recorder = getattr(warnings, "_showwarnmsg_impl", None)
    records = getattr(recorder, "__self__", None)
    if isinstance(records, list):
        found[id(records)] = RootInfo(roots.FIXTURE, "the warnings pytest records for this test")
    # pytest's logging plugin keeps the records of the last phase (the teardown) until the next
    # test resets its handlers; a record's args and exc_info (a traceback, with its frames'
    # locals) can hold the test's objects.
    logging_plugin = item.config.pluginmanager.get_plugin("logging-plugin")
    for attr in ("caplog_handler", "report_handler"):
        records = getattr(getattr(logging_plugin, attr, None), "records", None)
        if isinstance(records, list):
            found[id(records)] = RootInfo(
                roots.FIXTURE, f"the log records pytest's logging plugin keeps ({attr})"
            )
    # The value a doctest example displayed last, kept by sys.displayhook in builtins._.
    last = builtins.__dict__.get("_")
    if last is not None:
        found[id(last)] = RootInfo(roots.FIXTURE, "builtins._, the last value a doctest showed")
    return found
