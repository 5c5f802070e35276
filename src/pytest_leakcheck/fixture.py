"""Repeated cycles: the ``leakcheck`` fixture, and a test body run again and again (``runs=``).

After one run, a cache filled once and a registry that grows on every connect look the same; a
type that grew in every counted run is the registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

import pytest

from . import config as cfg
from . import report
from .checker import LeakCheck, Options, RepeatError
from .errors import usage
from .watch import WatchFilter


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
            raise usage(f"{node.nodeid}: leakcheck.cycles(): {exc}") from None
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


def repeat_body(item: pytest.Function, check: LeakCheck, *, runs: int, warmup: int) -> None:
    """Run a test's body ``warmup + runs`` times inside its check's window."""
    function = item.obj
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        raise RepeatError(
            "pytest-leakcheck cannot repeat an async test body (runs=); use the leakcheck "
            "fixture's cycles() inside the test around the part that should repeat"
        )
    names = item._fixtureinfo.argnames
    kwargs = {name: item.funcargs[name] for name in names}
    for run in check.cycles(runs, warmup):
        try:
            function(**kwargs)
        except Exception as exc:
            if run == 0:
                raise
            raise RepeatError(
                f"pytest-leakcheck: the test body raised on run {run + 1} of {warmup + runs} "
                f"(warmup={warmup}, runs={runs}) after its first run passed, so it cannot be "
                f"repeated: it probably uses up a one-shot fixture or state. Remove runs= from "
                f"this test, or loop over the repeatable part with the leakcheck fixture: "
                f"for _ in leakcheck.cycles(5, warmup=2): ..."
            ) from exc
