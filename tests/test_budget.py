"""The time for explaining suspects is a budget: a walk of passive suspects stops when it is
spent, and what it had not reached is counted; a leak is always walked to its end."""

from __future__ import annotations

import time
from pathlib import Path

from pytest_leakcheck.explain import Explainer, ExplainPolicy
from pytest_leakcheck.frames import FrameIndex
from pytest_leakcheck.retention import find_paths
from pytest_leakcheck.watch import WatchFilter

HERE = str(Path(__file__).resolve().parent)
REGISTRY: list[object] = []


class Cached:
    pass


def test_a_walk_started_after_its_deadline_reports_its_targets_as_not_walked() -> None:
    REGISTRY.append(Cached())
    try:
        targets = list(REGISTRY)
        [late] = find_paths(targets, extra_roots={}, ignore=set(), deadline=time.perf_counter())
        [walked] = find_paths(targets, extra_roots={}, ignore=set())
        targets.clear()
    finally:
        REGISTRY.clear()
    assert late.not_walked == "budget"
    assert walked.not_walked is None and walked.kind == "module global"


def _explain(watch: WatchFilter, seconds: float | None) -> tuple[str, str | None]:
    explainer = Explainer(
        watch,
        ExplainPolicy(strict=False, walk_seconds=seconds),
        roots=dict,
        frames=FrameIndex,
        site_of=lambda obj: None,
    )
    REGISTRY.append(Cached())
    survivors = list(REGISTRY)
    try:
        groups, _ = explainer.explain(survivors, None)
    finally:
        survivors.clear()
        REGISTRY.clear()
    [group] = groups
    return group.verdict, group.retentions[0].not_walked


def test_a_suspect_whose_walk_the_budget_ends_is_counted_without_a_path() -> None:
    project = WatchFilter(rootdir=HERE)
    assert _explain(project, seconds=0.0) == ("suspect", "budget")
    assert _explain(project, seconds=None) == ("suspect", None)


def test_a_named_type_is_walked_to_its_end_whatever_is_left_of_the_budget() -> None:
    named = WatchFilter(rootdir=HERE, types=frozenset({Cached}))
    assert _explain(named, seconds=0.0) == ("leak", None)
