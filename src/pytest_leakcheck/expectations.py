"""Objects a test names as "must be gone by the end": ``expect_released(obj, why=...)``.

Any type that accepts a weak reference can be named: a library's connection, a socket wrapper, a
closure. The weak reference is the only thing kept (it is what tells, without holding the object,
whether it is gone); an object that refuses weak references cannot be followed soundly by id
alone (its address is reused as soon as it is freed), so it is refused with the remedy.

An object still alive at the end, after a collection and a brief wait for threads that are
stopping, is a leak whatever the check's strictness, reported with what holds it.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .findings import Findings, LeakGroup
from .frames import FrameIndex
from .heap import collect_all
from .kinds import RootInfo
from .retention import SearchLimits, find_path
from .settle import backoff, join_winding_down, thread_idents
from .sites import Site, where
from .sizes import retained_size
from .watch import qualified_name


class NotWeaklyReferable(TypeError):
    """``expect_released`` was given an object that refuses weak references."""


@dataclass(frozen=True)
class Expectation:
    ref: weakref.ref[object]
    type: str
    why: str
    at: str | None  # where the test asked for it


def expect(obj: object, why: str, *, at: Site | None) -> Expectation:
    """Note that ``obj`` must be released by the end of the test; ``at`` is where it said so."""
    try:
        ref = weakref.ref(obj)
    except TypeError:
        name = qualified_name(type(obj))
        raise NotWeaklyReferable(
            f"expect_released() needs an object that supports weak references, and a {name} "
            f"does not (its id would name another object as soon as it is freed): name an "
            f"object that holds it instead, such as the instance it belongs to"
        ) from None
    return Expectation(ref, qualified_name(type(obj)), why, where(at) if at else None)


@dataclass
class Expected:
    """What a test that is not checked named, and the threads that ran before it (the
    ``leakcheck`` fixture's set-up): only those the test started may still be letting go."""

    threads_before: frozenset[int]
    items: list[Expectation] = field(default_factory=list)


@dataclass(frozen=True)
class Unreleased:
    """The expected objects still alive, explained; ``ids`` keeps them out of the survivors
    (each is reported once, as expected)."""

    groups: tuple[LeakGroup, ...] = ()
    ids: frozenset[int] = frozenset()
    # Weak, to tell what stopping the test's timers and tasks frees of them.
    refs: tuple[weakref.ref[object], ...] = ()
    retained_bytes: int | None = None  # what they retain together, each byte once
    retained_complete: bool = True


def with_expected(findings: Findings, expected: Unreleased) -> Findings:
    """The findings with the unreleased objects first. What they and the other survivors retain
    may overlap (a connection that holds a session): the total is then the larger of the two,
    said as "at least", not a sum that counts shared bytes twice."""
    if not expected.groups:
        return findings
    total, complete = expected.retained_bytes, expected.retained_complete
    if findings.groups and findings.retained_bytes is not None:
        total = max(total or 0, findings.retained_bytes)
        complete = False
    return dataclasses.replace(
        findings,
        groups=(*expected.groups, *findings.groups),
        retained_bytes=total,
        retained_complete=complete,
    )


def unreleased(
    expectations: list[Expectation],
    *,
    settle: float,
    threads_before: frozenset[int],
    extra_roots: Mapping[int, RootInfo],
    frames: Callable[[], FrameIndex],
    site_of: Callable[[object], str | None],
    sizes: bool = True,
) -> Unreleased:
    """Collect, wait while threads the test started still run (within ``settle`` seconds), then
    explain each expected object still alive. ``expectations`` is emptied."""
    waiting = [e for e in expectations if e.ref() is not None]
    expectations.clear()
    if not waiting:
        return Unreleased()
    collect_all()
    began = time.monotonic()
    for pause in backoff(settle):
        waiting = [e for e in waiting if e.ref() is not None]
        # Only threads the test started can still let go of them.
        if not waiting or not (thread_idents() - threads_before):
            break
        join_winding_down(max(0.0, settle - (time.monotonic() - began)))
        time.sleep(pause)
        collect_all()
    groups: list[LeakGroup] = []
    ids: set[int] = set()
    refs: list[weakref.ref[object]] = []
    for expectation in waiting:
        obj = expectation.ref()
        if obj is None:
            continue
        ids.add(id(obj))
        refs.append(expectation.ref)
        groups.append(_explained(expectation, obj, extra_roots, frames(), site_of, sizes))
        obj = None
    # Sized together once every path is found: a list holding them would be on their paths.
    alive = still_alive(e.ref for e in waiting)
    waiting.clear()
    try:
        together = retained_size(alive) if sizes and alive else None
    finally:
        alive.clear()
    return Unreleased(
        tuple(groups),
        frozenset(ids),
        tuple(refs),
        together.bytes if together is not None else None,
        together.complete if together is not None else True,
    )


def still_alive(refs: Iterable[weakref.ref[object]]) -> list[object]:
    """The objects of these weak references that are alive. (Not a comprehension with ``:=``:
    that would bind the last one in the caller's frame, and keep it alive there.)"""
    objects = (ref() for ref in refs)
    return [o for o in objects if o is not None]


def _explained(
    expectation: Expectation,
    obj: object,
    extra_roots: Mapping[int, RootInfo],
    index: FrameIndex,
    site_of: Callable[[object], str | None],
    sizes: bool,
) -> LeakGroup:
    try:
        retention = find_path(
            obj, extra_roots=extra_roots, ignore=set(), limits=SearchLimits(), frames=index
        )
        retained = retained_size([obj]) if sizes else None
        created = site_of(obj)
    finally:
        index.close()
        del obj
    return LeakGroup(
        type=expectation.type,
        count=1,
        kind=retention.kind,
        verdict="leak",
        retentions=(retention,),
        retained_bytes=retained.bytes if retained is not None else None,
        retained_complete=retained.complete if retained is not None else True,
        created=created,
        root_created=retention.root_site,
        expected=expectation.why,
        expected_at=expectation.at,
    )
