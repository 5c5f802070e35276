"""Objects that fight back: the report stays correct and bounded, and nothing raises."""

from __future__ import annotations

import json
import threading
from typing import Any, ClassVar
from unittest import mock

import pytest

from pytest_leakcheck import check_leaks
from pytest_leakcheck.findings import Findings, LeakGroup
from pytest_leakcheck.report import findings_data, format_findings

KEEP: list[object] = []


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq for you")

    def __hash__(self) -> int:
        raise RuntimeError("no hash for you")


class HugeRepr:
    def __repr__(self) -> str:
        return "x" * 10_000_000


class ControlRepr:
    def __repr__(self) -> str:
        return "evil\x1b[31m\x00\nnewline\r\x07"


class AnswersAnything:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: self

    def __getattribute__(self, name: str) -> Any:
        if name in ("__dict__", "__class__"):
            return object.__getattribute__(self, name)
        return lambda *a, **k: None


class LyingClass:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return int


class Slotted:
    __slots__ = ("payload",)

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


class Meta(type):
    def __repr__(cls) -> str:
        raise RuntimeError("metaclass repr")

    @property
    def __module__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("metaclass module")


class WithMeta(metaclass=Meta):
    pass


class Resurrecting:
    saved: ClassVar[list[Resurrecting]] = []

    def __del__(self) -> None:
        Resurrecting.saved.append(self)


class CycleWithDel:
    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        pass


HOSTILE = [
    RaisingRepr,
    HugeRepr,
    ControlRepr,
    AnswersAnything,
    LyingClass,
    Slotted,
    WithMeta,
    CycleWithDel,
]


def only(findings: Findings | None) -> LeakGroup:
    assert findings is not None
    [group] = findings.groups
    return group


@pytest.mark.parametrize("kind", HOSTILE, ids=lambda k: k.__name__)
def test_a_hostile_survivor_is_reported_without_raising(kind: type) -> None:
    with check_leaks(kind) as check:
        KEEP.append(kind())
    KEEP.clear()
    group = only(check.findings)
    assert group.count == 1
    assert group.kind == "module global"
    assert group.path[1].startswith(".KEEP -> list")
    text = format_findings(findings_data(check.findings))  # type: ignore[arg-type]
    assert len(text) < 10_000  # bounded, whatever the repr says
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text
    json.dumps(findings_data(check.findings))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", HOSTILE, ids=lambda k: k.__name__)
def test_hostile_objects_on_the_path_do_not_break_the_search(kind: type) -> None:
    class User:
        def tick(self) -> None:
            pass

    holders = [kind()]  # held through a list only: a local naming it would be a root itself
    with check_leaks(User) as check:
        try:
            object.__setattr__(holders[0], "user", User())
        except (AttributeError, TypeError):  # slots, or a class that refuses attributes
            KEEP.append({"holder": holders[0], "user": User()})
        else:
            KEEP.append(holders[0])
        holders.clear()
    KEEP.clear()
    group = only(check.findings)
    assert group.kind == "module global"
    format_findings(findings_data(check.findings))  # type: ignore[arg-type]


def test_mocks_held_by_a_timer_are_traced_to_the_timer() -> None:
    # mock makes a subclass per instance: name the type by pattern.
    with check_leaks("unittest.mock.MagicMock") as check:
        magic = mock.MagicMock()
        timer = threading.Timer(60, magic.tick)
        timer.daemon = True
        timer.start()
        del magic
    groups = {g.type: g for g in check.findings.groups}  # type: ignore[union-attr]
    assert groups["unittest.mock.MagicMock"].kind == "threading.Timer"
    assert not timer.is_alive() or timer.finished.is_set()  # the proof stopped it


def test_a_resurrecting_object_does_not_break_the_check() -> None:
    with check_leaks(Resurrecting) as check:
        Resurrecting()  # freed at once, and put itself back in a class list
    group = only(check.findings)
    assert group.kind == "class attribute"
    Resurrecting.saved.clear()


def test_hundreds_of_survivors_give_a_bounded_report_quickly() -> None:
    class Item:
        pass

    with check_leaks(Item) as check:
        KEEP.extend(Item() for _ in range(500))
    KEEP.clear()
    assert check.findings is not None
    group = only(check.findings)
    assert group.count == 500
    assert group.untraced == 497
    assert check.findings.check_seconds < 5
    assert len(format_findings(findings_data(check.findings))) < 3000


def test_many_threads_that_finish_during_the_check_are_not_leaks() -> None:
    class Job:
        def run(self) -> None:
            pass

    done = threading.Event()

    def work(job: Job) -> None:
        done.wait(0.05)
        job.run()

    with check_leaks(Job) as check:
        threads = [threading.Thread(target=work, args=(Job(),)) for _ in range(50)]
        for t in threads:
            t.start()
        del t, threads
    assert check.findings is not None
    assert check.findings.groups == ()
    assert check.findings.pending == ()
