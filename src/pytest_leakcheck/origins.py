"""Whose is it: what the checked test made, and what earlier tests left running that its check
found (their leftovers). Leftovers are named and stopped, never the checked test's verdict.

Origins are read from the tags of ``provenance``; without tags (nothing in the session was
tagged), every young root is the checked test's.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Set

from . import provenance, running
from .findings import LeakGroup, Pending
from .heap import WindowResult
from .running import ThreadKey
from .settle import HANDOVER_SECONDS, backoff
from .stopping import callback_of, stop_all


class Origins:
    """The origins of what one check found. ``tag`` is the checked test's tag."""

    def __init__(
        self,
        tag: int | None,
        *,
        threads_before: frozenset[ThreadKey],
        ignore_threads: tuple[str, ...],
        foreign_threads: frozenset[int],
    ) -> None:
        self._tag = tag
        self._threads_before = threads_before
        self._ignore_threads = ignore_threads
        self._foreign_threads = foreign_threads

    def other_tags(self, result: WindowResult) -> set[int]:
        """The tags of roots made by other tests (their leftovers) among what the window found."""
        own = self._tag
        if own is None:
            return set()
        tags = {provenance.tag_of(o) for o in result.found if id(o) in result.root_ids}
        return {tag for tag in tags if tag is not None and _another(tag, own)}

    def others_threads(self) -> frozenset[int]:
        """Idents of live threads that other tests made: nothing to wait for on this test's
        behalf."""
        own = self._tag
        if own is None:
            return frozenset()
        return frozenset(
            t.ident
            for t in threading.enumerate()
            if t.ident is not None and provenance.tag_of(t) not in (None, own)
        )

    def by_origin(
        self,
        started: list[object],
        pool_threads: frozenset[int],
        other_tags: set[int],
        *,
        idle: bool,
    ) -> tuple[list[object], list[object]]:
        """The roots this test made (with what its chains armed since), and those that other
        tests' leftovers made while it ran, with (``idle``) the timers they left that made
        nothing. Without tags, every young root is the test's. The workers that an older pool
        started for the test are the pool's (``pool_threads``)."""
        own = self._tag
        if own is None:
            return list(started), []
        mine: list[object] = []
        theirs: list[object] = []
        for obj in started:
            tag = provenance.tag_of(obj)
            if tag in (None, own):
                mine.append(obj)
            elif not provenance.live_fixture(tag):  # a fixture's heartbeat runs on purpose
                theirs.append(obj)
        # What the chains armed since the window closed, the test's and the others'.
        known = {id(o) for o in mine} | {id(o) for o in theirs}
        before = self._threads_before
        mine.extend(running.made_under(own, running.loops_of(mine), known, before, pool_threads))
        for tag in other_tags | {provenance.tag_of(o) for o in theirs}:
            if tag is not None:
                theirs.extend(running.made_under(tag, running.loops_of(theirs), known, before))
        if idle:
            theirs.extend(idle_leftovers(own, known | {id(o) for o in theirs}))
        return mine, theirs

    def handed_over(
        self,
        tags: set[int],
        found: list[tuple[Pending, object]],
        pending: Callable[[list[object]], list[tuple[Pending, object]]],
    ) -> list[tuple[Pending, object]]:
        """The pending timers of chains that ``found`` missed because they were caught between
        two timers: the old one seen still in its callback, finished by the time it was judged,
        and the next one not started yet when the threads were listed. Looked at again, briefly,
        for each of ``tags`` with nothing pending in ``found`` while one of its timers has not
        finished; ``pending`` judges what is listed."""
        missing = tags - {provenance.tag_of(obj) for _, obj in found}
        caught: list[tuple[Pending, object]] = []
        for tag in missing:
            for pause in backoff(HANDOVER_SECONDS):
                listed = running.made_under(tag, (), set(), self._threads_before)
                now = pending(listed)
                listed.clear()
                if now or not self._unfinished_timer(tag):
                    caught.extend(now)
                    break
                time.sleep(pause)
        return caught

    def _unfinished_timer(self, tag: int) -> bool:
        """A timer made under ``tag`` since the window opened has not run its function yet, or
        is running it (it may be arming the chain's next timer)."""
        return any(
            isinstance(t, threading.Timer)
            and not t.finished.is_set()
            and running.thread_key(t) not in self._threads_before
            and provenance.tag_of(t) == tag
            for t in threading.enumerate()
        )

    @staticmethod
    def leftovers(found: list[tuple[Pending, object]]) -> list[tuple[Pending, object]]:
        """What other tests left running, each named after the test that made it."""
        return [
            (dataclasses.replace(item, made_by=provenance.name(provenance.tag_of(obj) or 0)), obj)
            for item, obj in found
        ]

    @staticmethod
    def reported(found: list[tuple[Pending, object]]) -> tuple[Pending, ...]:
        """One line per chain: a chain caught while a timer's callback arms the next timer has
        two pending timers (both are stopped)."""
        seen: set[tuple[object, ...]] = set()
        items: list[Pending] = []
        for item, obj in found:
            called = callback_of(obj)
            func = getattr(called, "__func__", called)
            bound = getattr(called, "__self__", None)  # two objects' chains are two
            key = (
                (provenance.tag_of(obj), type(obj), id(func), id(bound))
                if func is not None
                else (id(obj),)
            )
            if key not in seen:
                seen.add(key)
                items.append(item)
        return tuple(items)

    def stop_leftovers(self, others: list[tuple[Pending, object]]) -> None:
        """Stop what other tests left running, chains and all, so that it does not tick into
        the next tests. ``others`` is emptied."""
        by_tag: dict[int, list[tuple[Pending, object]]] = {}
        for item, obj in others:
            by_tag.setdefault(provenance.tag_of(obj) or 0, []).append((item, obj))
        others.clear()
        for tag, items in by_tag.items():
            stop_all(
                items,
                [],
                (),
                threads_before=self._threads_before,
                ignore_threads=self._ignore_threads,
                foreign_threads=self._foreign_threads,
                tag=tag or None,
            )
        by_tag.clear()

    def split(
        self, groups: tuple[LeakGroup, ...]
    ) -> tuple[tuple[LeakGroup, ...], tuple[LeakGroup, ...]]:
        """Groups held only by roots another test made are that test's, not this one's; those
        held only by what a wider fixture runs are the fixture's, and no one's leak."""
        own = self._tag
        if own is None:
            return groups, ()
        groups = tuple(
            g
            for g in groups
            if not (g.retentions and all(provenance.live_fixture(r.root_tag) for r in g.retentions))
        )
        theirs = tuple(
            g
            for g in groups
            if g.retentions and all(r.root_tag not in (None, own) for r in g.retentions)
        )
        return tuple(g for g in groups if g not in theirs), theirs


def idle_leftovers(own: int | None, known: Set[int] = frozenset()) -> list[threading.Timer]:
    """Pending timers that other tests (or torn-down fixtures) left, not in ``known``.

    A leftover chain is found by what it makes while a later test runs; one that does not
    fire then (a slow timer, or a chain starved of the interpreter on a loaded machine) would go
    unnamed and tick on. Listing the threads finds it, and costs no walk of the heap.
    """
    if own is None:
        return []
    return [
        t
        for t in threading.enumerate()
        if isinstance(t, threading.Timer)
        and id(t) not in known
        and not t.finished.is_set()
        and _another(provenance.tag_of(t), own)
    ]


def _another(tag: int | None, own: int | None) -> bool:
    """``tag`` is another test's, or a wider fixture's that has been torn down."""
    return tag is not None and tag != own and not provenance.live_fixture(tag)
