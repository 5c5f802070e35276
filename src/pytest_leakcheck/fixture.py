"""The ``leakcheck`` fixture (repeated cycles, objects that must be released) and a test body
run again and again (``runs=``).

After one run, a cache filled once and a registry that grows on every connect look the same; a
type that grew in every counted run is the registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

import pytest

from . import config as cfg
from . import report
from .checker import LeakCheck, RepeatError
from .errors import usage
from .expectations import Expected, NotWeaklyReferable, expect
from .options import Options
from .settle import thread_idents
from .sites import caller_site
from .stash import CHECK_KEY, EXPECTED_KEY
from .watch import WatchFilter


class CycleRunner:
    """What the ``leakcheck`` fixture gives a test: cycles judged like ``runs=``, and objects
    named as "must be released by the end of the test"."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        # Threads running before the test's body: only those it starts may still be letting go
        # of an expected object when the test ends.
        self._threads_before = thread_idents()

    def expect_released(self, obj: object, why: str = "") -> None:
        """Fail the test if ``obj`` is still alive when it ends, with what holds it.

        Any object that accepts a weak reference: a library's connection, a socket, a closure.
        Only a weak reference is kept. ``why`` is said in the report.
        """
        node = self._request.node
        if not isinstance(why, str):
            raise usage(
                f"{node.nodeid}: leakcheck.expect_released(why={why!r}): why= is the text the "
                f"report gives for expecting the object to be released, a str; pass one, or "
                f"leave it out"
            )
        try:
            expectation = expect(obj, why, at=caller_site(skip=1, depth=4))
        except NotWeaklyReferable as exc:
            raise usage(f"{node.nodeid}: leakcheck.{exc}") from None
        check = node.stash.get(CHECK_KEY, None)
        if check is not None and check.started:
            check.expect(expectation)
        else:
            node.stash.setdefault(EXPECTED_KEY, Expected(self._threads_before)).items.append(
                expectation
            )

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
    """Repeat part of a test in cycles and fail it when something grows in every cycle; name
    objects that must be released by the end of the test."""
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
