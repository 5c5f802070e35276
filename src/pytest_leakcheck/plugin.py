"""pytest glue: the only module with hooks. It resolves the settings, selects tests, opens a check
around each one, and turns the findings into test outcomes, a summary and report files. The policy
lives elsewhere: ``budget`` (time for explaining suspects), ``holders`` (what pytest keeps alive),
``outputs`` (the files), ``fixture`` (the ``leakcheck`` fixture). Nothing imports this module."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Generator, Mapping
from typing import Any

import pytest

from . import baseline, provenance, report, snapshot
from . import config as cfg
from .budget import ExplainBudget
from .checker import LeakCheck
from .errors import LeakcheckWarning, guarded, usage  # noqa: F401 - the warning, by its old name
from .expectations import unreleased, with_expected
from .findings import Findings
from .fixture import (
    leakcheck,  # noqa: F401 - pytest finds the fixture in this module
    repeat_body,
)
from .frames import FrameIndex
from .holders import holders_of
from .options import Options
from .outputs import Outputs, add_html_links
from .running import ThreadKey, thread_key
from .settle import SETTLE_BUDGET
from .sites import InitMonitor
from .stash import CHECK_KEY, EXPECTED_KEY, FAILED_KEY, ITEM_KEY, JUDGED_KEY, SETTINGS_KEY
from .watch import WatchFilter, project_classes

NOT_CHECKED = (
    "not checked for leaks: the test {what}, and its traceback keeps its frames and locals alive, "
    "so survivors could not be told from the failure's own references"
)


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


def _flag_or_ini(config: pytest.Config, option: str, ini: str) -> bool:
    value = config.getoption(option)
    if value is not None:
        return bool(value)
    raw = config.getini(ini)
    try:
        return cfg.parse_bool(raw, name=ini, source=f"ini file {config.inipath or '?'}")
    except cfg.ConfigError as exc:
        raise usage(f"{exc} Fix the '{ini} =' line in {config.inipath}.") from None


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
        raise usage(f"{exc} {fix}") from None


def _resolve_settings(config: pytest.Config) -> cfg.Settings:
    json_path = config.getoption("leakcheck_json") or config.getini("leakcheck_json") or None
    try:
        watch = cfg.resolve_specs(config.getini("leakcheck_types"))
    except cfg.ConfigError as exc:
        raise usage(
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
        raise usage(f"{exc} Fix the line in {config.inipath}.") from None
    # Strictness with nothing to apply to is never what is meant: it checks every test too.
    strict = _flag_or_ini(config, "leakcheck_strict", "leakcheck_strict")
    return cfg.Settings(
        explain_budget=_explain_budget(config),
        check_all=strict or _flag_or_ini(config, "leakcheck", "leakcheck"),
        strict=strict,
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
        self.entries: list[dict[str, Any]] = []  # tests with a verdict, as their JSON
        self.not_checked: list[dict[str, str]] = []
        self.internal_errors: list[str] = []
        self.heaps: list[dict[str, Any]] = []  # every checked test's heap figures
        # Threads that wider-scoped fixtures started (see running.thread_key: a test's timer must
        # not pass for a fixture's thread that has long ended).
        self.fixture_threads: set[ThreadKey] = set()
        self.fixture_tags: dict[int, int] = {}  # id of a set-up wider fixture -> its tag
        self.budget = ExplainBudget(settings.explain_budget)
        self.outputs = Outputs(config, settings.json_path)
        self.known = self.outputs.known_leaks()
        self.outputs.check_paths()
        self.tagging = False  # threads and events are tagged with the test that made them
        self.monitor: InitMonitor | None = None  # where the project's instances are made
        self.leftovers: list[dict[str, Any]] = []  # what tests left that later checks found
        self.no_frozen: Counter[str] = Counter()  # why checks could not freeze, and how often
        self.no_frozen_noted: str | None = None  # what the line after collection already said

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
                raise usage(
                    f"{item.nodeid}: in @pytest.mark.leakcheck (on the test, its class or its "
                    f"module): {exc}"
                ) from None

    def _item_settings(self, item: pytest.Item) -> cfg.ItemSettings | None:
        found = item.stash.get(ITEM_KEY, None)
        return found if found is not None and found.checked else None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """When some test is checked: tag what each test makes from now on (``provenance``), and
        say once, before the tests run, that checks cannot freeze the heap, and the cost."""
        if not any(self._item_settings(item) for item in session.items):
            return
        provenance.install()
        self.tagging = True
        self._monitor_project_classes()
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

    def _monitor_project_classes(self) -> None:
        """From 3.12, note where the project's instances are made (``sites.InitMonitor``)."""
        if not InitMonitor.available():
            return
        watch = WatchFilter(rootdir=self.rootdir)
        classes = project_classes(watch)
        monitor = InitMonitor()
        if monitor.install(classes):
            self.monitor = monitor

    # -- the window --------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        # Every test gets a tag, checked or not: what an unchecked test leaves running must not
        # pass for the next checked test's.
        token = provenance.begin(item.nodeid)[1] if self.tagging else None
        try:
            return (yield)
        finally:
            if token is not None:
                provenance.end(token)
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
        try:
            return (yield)
        finally:
            self._end_window_before_wider_fixtures(item)

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
                graphs=self.outputs.graphs_dir is not None,
                stop_pending=not settings.keep_timers,
                ignore_threads=settings.ignore_threads,
                skip_tracing=self.budget.skip_types(),
                explain_suspects=self.budget.allows_more(),
                explain_seconds=self.budget.remaining(),
            ),
            sites=self.monitor,
        )
        check.start()
        item.stash[CHECK_KEY] = check

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        """Under ``runs=``, run the test body warm-up + counted times inside the window."""
        settings = self._item_settings(pyfuncitem)
        check = pyfuncitem.stash.get(CHECK_KEY, None)
        if settings is None or check is None or not settings.runs:
            return None
        repeat_body(pyfuncitem, check, runs=settings.runs, warmup=settings.warmup)
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        """Threads that a wider-scoped fixture starts are the fixture's, not the test's; so is
        what they go on to start (a heartbeat's next timer), through the fixture's own tag."""
        if fixturedef.scope == "function":
            return (yield)
        before = {thread_key(t) for t in threading.enumerate()}
        token = None
        if self.tagging:
            tag, token = provenance.begin_fixture(
                f"the {fixturedef.scope}-scoped fixture {fixturedef.argname!r}"
            )
            self.fixture_tags[id(fixturedef)] = tag
        try:
            return (yield)
        finally:
            if token is not None:
                provenance.end(token)
            self.fixture_threads.update({thread_key(t) for t in threading.enumerate()} - before)

    def pytest_fixture_post_finalizer(self, fixturedef: pytest.FixtureDef[object]) -> None:
        tag = self.fixture_tags.pop(id(fixturedef), None)
        if tag is not None:
            provenance.fixture_ended(tag)

    def _end_window_before_wider_fixtures(self, item: pytest.Item) -> None:
        """Make ending the window the test's last finalizer.

        pytest runs a test's own finalizers (its function-scoped fixtures' teardown) last-in
        first-out, and only then those of the module, class or session whose last test it is.
        Put first in the test's list, this one runs after all of them and before any wider
        fixture's teardown: the last test on a module's event loop is judged while that loop
        still holds what the test left on it. pytest offers no call to put a finalizer first;
        where its list is not where it has been from pytest 7 to 9, the window ends with the
        teardown report, after the wider fixtures' teardown, as it always could.
        """
        entry = getattr(getattr(item.session, "_setupstate", None), "stack", {}).get(item)
        finalizers = entry[0] if isinstance(entry, tuple) and entry else None
        if CHECK_KEY in item.stash and isinstance(finalizers, list):
            finalizers.insert(0, lambda: self._end_window(item))

    def _end_window(self, item: pytest.Item) -> None:
        check = item.stash.get(CHECK_KEY, None)
        if check is None or FAILED_KEY in item.stash:
            return  # judged or aborted when the report comes
        del item.stash[CHECK_KEY]
        self._guard(item, "checking for leaks", lambda: self._judge(item, check))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        rep = yield
        if EXPECTED_KEY in item.stash:
            self._expected_report(item, call.when, rep)
        if CHECK_KEY not in item.stash and JUDGED_KEY not in item.stash:
            return rep
        if call.when in ("setup", "call") and not rep.passed:
            what = "failed" if rep.failed else "was skipped"
            item.stash[FAILED_KEY] = what
            if rep.failed:
                rep.sections.append(("leakcheck", NOT_CHECKED.format(what=what)))
        elif call.when == "teardown":
            self._report(item, rep)
        return rep

    def _expected_report(self, item: pytest.Item, when: str, rep: pytest.TestReport) -> None:
        """A test that is not checked but named objects with ``leakcheck.expect_released()``:
        judged on its teardown report, once every fixture has let go."""
        if rep.passed and when != "teardown":
            return
        expected = item.stash[EXPECTED_KEY]
        del item.stash[EXPECTED_KEY]
        if not rep.passed:
            expected.items.clear()  # its traceback holds its locals: nothing to judge fairly
            return

        def judge() -> None:
            _drop_fixture_values(item)
            found = unreleased(
                expected.items,
                settle=SETTLE_BUDGET,
                threads_before=expected.threads_before,
                extra_roots=holders_of(item),
                frames=lambda: FrameIndex(frozenset(), expected.threads_before),
                site_of=lambda obj: None,
            )
            if found.groups:
                findings = with_expected(Findings(mode="expect_released"), found)
                self._apply(rep, self._data(findings), [])

        self._guard(item, "checking what the test expected to be released", judge)

    def _report(self, item: pytest.Item, rep: pytest.TestReport) -> None:
        """The teardown report: the check's verdict, judged now if no finalizer did earlier."""
        check = item.stash.get(CHECK_KEY, None)
        if check is not None:
            del item.stash[CHECK_KEY]
        judged = item.stash.get(JUDGED_KEY, None)
        if judged is not None:
            del item.stash[JUDGED_KEY]
        failed = item.stash.get(FAILED_KEY, None) or ("failed" if not rep.passed else None)
        if failed is not None:
            if check is not None:
                check.abort()
            if failed == "failed":
                self.not_checked.append({"nodeid": item.nodeid, "reason": f"the test {failed}"})
            return
        if check is not None:
            self._guard(item, "checking for leaks", lambda: self._judge(item, check))
            judged = item.stash.get(JUDGED_KEY, None)
            if judged is not None:
                del item.stash[JUDGED_KEY]
        if judged is not None:
            self._apply(rep, *judged)

    def _judge(self, item: pytest.Item, check: LeakCheck) -> None:
        _drop_fixture_values(item)
        alive = {thread_key(t): t.ident for t in threading.enumerate()}
        self.fixture_threads &= alive.keys()  # an ended one's ident is free for the next thread
        check.foreign_threads |= {i for key in self.fixture_threads if (i := alive[key])}
        try:
            findings = check.finish(extra_roots=holders_of(item))
        except BaseException:
            check.abort()
            raise
        data = self._data(findings)
        graphs = self.outputs.write_graphs(item.nodeid, findings, data)
        self.budget.record(findings, lenient=not check.options.strict)
        item.stash[JUDGED_KEY] = (data, graphs)

    def _data(self, findings: Findings) -> dict[str, Any]:
        """The findings as report data, fingerprinted and matched against the baseline."""
        data = report.findings_data(findings)
        baseline.add_fingerprints(data)
        baseline.apply(data, self.known)
        return data

    def _apply(self, rep: pytest.TestReport, data: dict[str, Any], graphs: list[str]) -> None:
        """Put the verdict on the teardown report: a leak fails it."""
        add_html_links(rep, graphs)
        # Carried to the xdist controller on the report, also for clean tests (their heap).
        rep.leakcheck = data  # type: ignore[attr-defined]
        if data["verdict"] is None:
            return
        rep.user_properties.extend(report.junit_properties(data))
        if data["verdict"] == "leak":
            rep.outcome = "failed"
            rep.longrepr = report.format_findings(data)

    def _guard(self, item: pytest.Item, doing: str, action: Callable[[], None]) -> None:
        """A bug in the plugin becomes a warning; the test's own outcome stands."""

        def drop_check() -> None:
            check = item.stash.get(CHECK_KEY, None)
            if check is not None:
                del item.stash[CHECK_KEY]
                check.abort()

        unsaid = guarded(item, doing, action, cleanup=drop_check)
        if unsaid is not None:
            self.internal_errors.append(unsaid)

    # -- reporting ---------------------------------------------------------------------------

    def pytest_report_teststatus(
        self, report: pytest.TestReport
    ) -> tuple[str, str, tuple[str, Mapping[str, bool]]] | None:
        data = getattr(report, "leakcheck", None)
        if report.when == "teardown" and report.failed and data and data.get("verdict") == "leak":
            # A failed test, counted and coloured as one, its report under FAILURES: a
            # teardown "error" reads as a broken fixture.
            return "failed", "L", ("LEAKED", {"red": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "leakcheck", None)
        if report.when == "teardown" and isinstance(data, dict):
            why = data.get("no_frozen_window")
            if why:
                self.no_frozen[why] += 1
            self.leftovers.extend(
                {"found_in": report.nodeid, **left} for left in data.get("leftovers") or ()
            )
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
        for line in report.leftover_lines(self.leftovers):
            terminalreporter.write_line(line)
        if not self.entries:
            return
        # From the reports, not counters of this process: under xdist the workers checked.
        leaked = any(e["verdict"] == "leak" for e in self.entries)
        terminalreporter.section("leakcheck summary", sep="=", red=leaked, yellow=not leaked)
        for line in report.session_summary(self.entries, self.settings.explain_budget):
            terminalreporter.write_line(line)

    # After pytest's junitxml has written its file (trylast), so that it can be rewritten.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        entries = sorted(self.entries, key=lambda e: e["nodeid"])
        extra = {
            "not_checked": self.not_checked,
            "checked": sorted(self.heaps, key=lambda e: e["nodeid"]),
            "leftovers": self.leftovers,
        }
        self.outputs.write_all(entries, extra, session)

    def pytest_unconfigure(self) -> None:
        if self.tagging:
            provenance.uninstall()
            self.tagging = False
        if self.monitor is not None:
            self.monitor.uninstall()
            self.monitor = None


def _drop_fixture_values(item: pytest.Item) -> None:
    """pytest drops the test's fixture values right after its teardown report; a value still
    listed there is not held by anything the test left behind."""
    funcargs = getattr(item, "funcargs", None)
    if isinstance(funcargs, dict):
        funcargs.clear()
