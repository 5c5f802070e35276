"""What a check found, as plain data, and the one place that decides every verdict.

Nothing here holds a live object: groups, paths and what was left running are text and numbers, so
a finding can be kept, printed, sent from an xdist worker or written as JSON without keeping alive
what it describes. ``report`` renders these; it decides nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .cycles import Series
from .kinds import ACTIVE_KINDS, FIXTURE, PENDING_LEAK_KINDS
from .retention import Retention

Verdict = Literal["leak", "suspect"]


# -- verdicts ----------------------------------------------------------------------------------


def judge(kind: str, *, strict: bool, named: bool) -> Verdict | None:
    """The verdict for one survivor, given what holds it and how the test was selected."""
    if kind == FIXTURE:
        return None
    if strict or named or kind in ACTIVE_KINDS:
        return "leak"
    return "suspect"


def group_verdict(
    kind: str, *, strict: bool, named: bool, busy_elsewhere: bool = False
) -> Verdict | None:
    """``judge``, and: survivors still in use by a thread older than the test (a shared pool's
    worker running the test's job) after a second look are in flight, not forgotten. Leniently
    that is a suspect; a marked test fails on it."""
    verdict = judge(kind, strict=strict, named=named)
    if verdict == "leak" and busy_elsewhere and not (strict or named):
        return "suspect"
    return verdict


def pending_verdict(kind: str, *, passive: bool) -> Verdict:
    """Something left running: a timer, thread, handle, task, event or itimer is a leak by itself
    (unless ``passive``: a thread holding none of the project's objects, under a lenient check);
    a changed signal handler or an ``atexit`` registration is listed as a suspect."""
    return "leak" if kind in PENDING_LEAK_KINDS and not passive else "suspect"


def test_verdict(verdicts: Iterable[str | None], *, heap_leak: bool = False) -> str | None:
    """A test's verdict from its parts' verdicts: "leak", "suspect", "known" (every leak is in the
    baseline) or None."""
    found = set(verdicts)
    if heap_leak or "leak" in found:
        return "leak"
    for verdict in ("suspect", "known"):
        if verdict in found:
            return verdict
    return None


# -- what was found ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakGroup:
    """Survivors of one type held through one kind of root. Text only: it keeps nothing alive."""

    type: str
    count: int
    kind: str
    verdict: Verdict
    retentions: tuple[Retention, ...]
    untraced: int = 0
    retained_bytes: int | None = None
    retained_complete: bool = True
    per_run: tuple[int, ...] = ()  # growth per counted run, under repeated cycles
    created: str | None = None  # where the first traced survivor was made (--leakcheck-trace)
    # The type of another group whose survivors retain all of these: its size includes theirs.
    retained_within: str | None = None
    # Where the root (a timer, a thread...) was made, or where its chain started, when noted.
    root_created: str | None = None
    # Why the test said this object must be released, and where (``expect_released``).
    expected: str | None = None
    expected_at: str | None = None

    @property
    def root(self) -> str:
        return self.retentions[0].root if self.retentions else ""

    @property
    def path(self) -> tuple[str, ...]:
        return self.retentions[0].path if self.retentions else ()

    @property
    def walked(self) -> bool:
        """False when the group was counted without a search (see ``Retention.not_walked``)."""
        return not self.retentions or self.retentions[0].not_walked is None


@dataclass(frozen=True)
class Heap:
    """Cheap, deterministic heap figures of one check (see the README for what each measures)."""

    objects_added: int  # gc-tracked objects the block made that are still alive after it
    rss_before: int | None = None  # resident set size in bytes (Linux), noisy: informational
    rss_after: int | None = None
    traced_growth: int | None = None  # bytes, when tracemalloc traced the block
    max_growth: int | None = None

    @property
    def over_limit(self) -> bool:
        return (
            self.max_growth is not None
            and self.traced_growth is not None
            and self.traced_growth > self.max_growth
        )


@dataclass(frozen=True)
class Pending:
    """Something the test started and left running or scheduled. Text only."""

    kind: str
    description: str
    created: str | None = None  # where the test started it (--leakcheck-trace)
    # A thread that holds none of the project's objects, under a lenient check: listed as a
    # suspect. Servers and workers that end a little after their test are common in real
    # suites; a marked (strict) check fails on it.
    passive: bool = False
    # Made by another test (its node id) and found still running while this one was checked:
    # listed and stopped, never this test's verdict.
    made_by: str | None = None

    @property
    def verdict(self) -> Verdict:
        return pending_verdict(self.kind, passive=self.passive)

    @property
    def is_leak(self) -> bool:
        return self.verdict == "leak"


@dataclass(frozen=True)
class StopOutcome:
    """What stopping one thing (or several alike: one chain's timers) did."""

    action: str  # "cancelling threading.Timer 'Thread-3'", or why it could not be stopped
    stopped: bool  # False: left running (a thread), or stopping it raised
    freed: tuple[tuple[str, int], ...] = ()  # survivors gone afterwards: (type, count)
    times: int = 1  # how many alike were stopped (a chain re-arms while it is stopped)
    rearmed: int = 0  # of those, how many the chain armed again while it was being stopped


@dataclass(frozen=True)
class Proof:
    """Stopping what the test left running, and what that freed: the proof of cause."""

    outcomes: tuple[StopOutcome, ...] = ()
    disarmed: tuple[str, ...] = ()  # interval timers put back to zero
    still_alive: tuple[tuple[str, int], ...] = ()  # survivors of leaked types that stayed
    rearmed: int = 0  # what the test's chains armed again while they were being stopped


@dataclass(frozen=True)
class Findings:
    groups: tuple[LeakGroup, ...] = ()
    mode: str = ""
    # Why the check compared the whole heap instead of freezing it ("" when it froze).
    no_frozen_window: str = ""
    settle_seconds: float = 0.0
    check_seconds: float = 0.0
    # Spent walking and sizing survivors of a block that left nothing running (the cost that
    # the plugin's budget for explaining suspects counts).
    passive_seconds: float = 0.0
    heap: Heap | None = None
    cycles: Series | None = None
    pending: tuple[Pending, ...] = ()  # what the block started and left running
    stopped: Proof = field(default_factory=Proof)
    traced: bool = False  # creation sites were recorded
    # What earlier tests left running that this check found (``Pending.made_by``), and what of
    # this test's survivors those hold: theirs, not this test's.
    leftovers: tuple[Pending, ...] = ()
    held_by_leftovers: tuple[LeakGroup, ...] = ()
    # What all of the test's survivors retain together (each retained byte once), when sized.
    retained_bytes: int | None = None
    retained_complete: bool = True

    @property
    def proof(self) -> tuple[str, ...]:
        """What stopping it did, as the report's lines."""
        from .report import proof_lines  # rendering lives with the other text

        return tuple(proof_lines(self.stopped, self.groups))

    @property
    def pending_leaks(self) -> tuple[Pending, ...]:
        return tuple(p for p in self.pending if p.is_leak)

    @property
    def leaks(self) -> tuple[LeakGroup, ...]:
        return tuple(g for g in self.groups if g.verdict == "leak")

    @property
    def suspects(self) -> tuple[LeakGroup, ...]:
        return tuple(g for g in self.groups if g.verdict == "suspect")

    @property
    def heap_leak(self) -> bool:
        """The heap outgrew its limit, or grew in every counted cycle."""
        over = self.heap is not None and self.heap.over_limit
        return over or (self.cycles is not None and self.cycles.heap_grows())

    @property
    def verdict(self) -> Verdict | None:
        verdicts = [g.verdict for g in self.groups] + [p.verdict for p in self.pending]
        found = test_verdict(verdicts, heap_leak=self.heap_leak)
        return "leak" if found == "leak" else "suspect" if found == "suspect" else None
