"""Stopping what a test left running, and proving what that freed.

Each pending timer, handle, task or event is cancelled, one at a time, and the survivors are looked
up again after each: what disappears was held by what was stopped. This is the proof of cause, and
it also keeps one test's timers from firing into the next tests and a non-daemon timer chain from
holding up the interpreter's exit. A chain re-arms while it is being stopped, so what it re-armed is
looked for and stopped too, a few rounds at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import sched
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from . import describe, provenance
from .findings import LeakGroup, Pending, Proof, StopOutcome
from .heap import find_by_id, followed
from .kinds import HANDLE, SCHED_EVENT, TASK, THREAD, TIMER, TIMER_HANDLE
from .running import ThreadKey, left_running, made_under, queued_event, thread_key
from .settle import CHAIN_SECONDS, STOP_SECONDS
from .watch import qualified_name

# A chain re-arms while it is stopped: this many rounds of looking for what it re-armed, at most
# (with tags, until nothing the test made is pending, within ``CHAIN_SECONDS``).
MAX_ROUNDS = 4
MAX_TAGGED_ROUNDS = 50

# Numbers and dict keys: what tells one timer of a chain from the next.
_NUMBERS = re.compile(r"\d+|\['[^']*'\]")


def stop(obj: object, kind: str) -> str | None:
    """Cancel a pending timer, handle, task or event; return what was done, None if it cannot be.

    Handles and tasks of a loop running in another thread are cancelled from that thread, as
    asyncio requires, and waited for briefly.
    """
    if kind == TIMER and isinstance(obj, threading.Timer):
        obj.cancel()
        obj.join(STOP_SECONDS)
        return f"cancelling threading.Timer {obj.name!r}"
    if kind in (TIMER_HANDLE, HANDLE) and isinstance(obj, asyncio.Handle):
        what = describe.callable_name(getattr(obj, "_callback", None))  # cancel() clears it
        _in_loop_thread(getattr(obj, "_loop", None), obj.cancel)
        return f"cancelling {kind} calling {what}"
    if kind == TASK and isinstance(obj, asyncio.Task):
        loop = obj.get_loop()
        if loop.is_closed():
            return None
        _in_loop_thread(loop, obj.cancel)
        if not loop.is_running():
            # Its next step raises CancelledError when the loop runs again (the next test on a
            # module's loop): it never ticks again, but what it holds goes only then.
            return f"cancelling asyncio.Task {obj.get_name()!r} (done when its loop runs again)"
        return f"cancelling asyncio.Task {obj.get_name()!r}"
    if kind == SCHED_EVENT and isinstance(obj, sched.Event):
        scheduler = queued_event(obj)
        if scheduler is None:
            return None
        with contextlib.suppress(ValueError):
            scheduler.cancel(obj)
        return f"cancelling sched event calling {describe.callable_name(obj.action)}"
    return None


def _in_loop_thread(loop: object, action: Callable[[], object]) -> None:
    if not isinstance(loop, asyncio.AbstractEventLoop) or loop.is_closed():
        action()
        return
    if not loop.is_running():
        action()
        return
    done = threading.Event()

    def run() -> None:
        try:
            action()
        finally:
            done.set()

    loop.call_soon_threadsafe(run)
    done.wait(STOP_SECONDS)


def callback_of(obj: object) -> object:
    """What a timer or handle calls, as given (a bound method stays bound)."""
    if isinstance(obj, threading.Timer):
        return getattr(obj, "function", None)
    return getattr(obj, "_callback", None) if isinstance(obj, asyncio.Handle) else None


def callback_function(obj: object) -> object:
    """The plain function behind a timer's or handle's callback (bound methods unwrapped)."""
    func = callback_of(obj)
    return getattr(func, "__func__", func)


class _Chains:
    """What was stopped, remembered so that what a chain re-armed meanwhile can be found.

    With the test's tag, whatever it made that is still pending is found directly (``running.
    made_under``): a chain's next timer, armed by a callback in flight, carries the tag too.
    """

    def __init__(self, threads_before: frozenset[ThreadKey], tag: int | None) -> None:
        self._threads_before = threads_before
        self._tag = tag
        self.callbacks: set[object] = set()
        self.loops: list[object] = []

    def note(self, obj: object) -> None:
        func = callback_function(obj)
        if func is not None:
            with contextlib.suppress(TypeError):  # an unhashable callable
                self.callbacks.add(func)
        loop = getattr(obj, "_loop", None)
        if (
            isinstance(obj, asyncio.Handle)
            and loop is not None
            and all(loop is not seen for seen in self.loops)
        ):
            self.loops.append(loop)

    def rearmed(self) -> list[object]:
        """Timers and handles that a stopped chain re-armed while the check ran.

        A Timer started after the test began, or a handle on a loop we stopped one on that calls
        the same function, is the same leak one tick later; not a timer that another test or a
        wider fixture made (its tag says so): a fixture's heartbeat must go on beating.
        """
        tag = self._tag
        candidates: list[object] = [
            t
            for t in threading.enumerate()
            if isinstance(t, threading.Timer)
            and thread_key(t) not in self._threads_before
            and (tag is None or provenance.tag_of(t) in (None, tag))
        ]
        for loop in self.loops:
            queued = [*getattr(loop, "_scheduled", ()), *getattr(loop, "_ready", ())]
            candidates.extend(h for h in queued if _in(self.callbacks, callback_function(h)))
        if self._tag is not None:
            loops = [loop for loop in self.loops if isinstance(loop, asyncio.AbstractEventLoop)]
            known = {id(c) for c in candidates}
            candidates.extend(made_under(self._tag, loops, known, self._threads_before))
        return candidates

    def await_in_callback(self) -> bool:
        """Wait for the stopped chain's timers still inside their callback to end.

        A cancelled timer that was already firing runs its callback to the end, and a repeating
        timer's callback arms the next timer; looked for too early, that one escapes, and ticks
        on into the next test, which is then blamed for it. Returns whether there was one.
        """
        waited = False
        for thread in threading.enumerate():
            # Cancelled (or done) but alive: still inside its callback. A timer still waiting to
            # fire is not waited for: the caller stops it.
            if (
                isinstance(thread, threading.Timer)
                and thread.finished.is_set()
                and thread_key(thread) not in self._threads_before
                and thread is not threading.current_thread()
                and _in(self.callbacks, callback_function(thread))
            ):
                waited = True
                thread.join(CHAIN_SECONDS)
        return waited

    def clear(self) -> None:
        self.callbacks.clear()
        self.loops.clear()


def _in(items: set[object], item: object) -> bool:
    try:
        return item in items
    except TypeError:  # an unhashable callable
        return False


def stop_all(
    running: list[tuple[Pending, object]],
    survivors: list[object],
    groups: Iterable[LeakGroup],
    *,
    threads_before: frozenset[ThreadKey],
    ignore_threads: tuple[str, ...],
    foreign_threads: frozenset[int],
    tag: int | None = None,
) -> Proof:
    """Cancel what can be cancelled, one at a time, and note what each freed.

    Each stopped object is dropped before the survivors are looked up again: held here, it would
    keep alive what it holds. ``running`` and ``survivors`` are emptied.
    """
    leaked = {g.type for g in groups}
    remaining = {id(o): name for o in survivors if (name := qualified_name(type(o))) in leaked}
    types_of = followed(o for o in survivors if id(o) in remaining)
    survivors.clear()  # from here on the survivors are followed by id (and type) only
    # Tasks first: cancelling a task also cancels the timers of the sleep it waits in.
    running.sort(key=lambda entry: entry[0].kind != TASK)
    outcomes: list[StopOutcome] = []
    chains = _Chains(threads_before, tag)
    deadline = time.monotonic() + CHAIN_SECONDS
    rearmed = 0
    tried: set[int] = set()  # stopped once: a thread that cannot be stopped is not tried again
    for round_ in range(MAX_TAGGED_ROUNDS if tag is not None else MAX_ROUNDS):
        if round_:
            rearmed += len(running)
        while running:
            item, outcome = _stop_first(running, chains, tried, rearmed=round_ > 0)
            caught: list[StopOutcome] = []
            if outcome.stopped and item.kind == TIMER:
                # The stop may have waited for a timer inside its callback, which armed the
                # next one: that one fires within milliseconds, sooner than the look-up below
                # (a full collection) ends. Stopped first, it cannot escape.
                for _ in range(MAX_ROUNDS):
                    soon = _rearmed_now(chains, running, tried, ignore_threads, foreign_threads)
                    if not soon:
                        break
                    rearmed += len(soon)
                    while soon:
                        caught.append(_stop_first(soon, chains, tried, rearmed=True)[1])
            if outcome.stopped and remaining:
                alive = find_by_id({key: types_of[key] for key in remaining})
                still = {id(o) for o in alive}
                alive.clear()
                freed = Counter(name for key, name in remaining.items() if key not in still)
                remaining = {key: name for key, name in remaining.items() if key in still}
                outcome = dataclasses.replace(outcome, freed=tuple(sorted(freed.items())))
            outcomes.append(outcome)
            outcomes.extend(caught)
        if not remaining and tag is None:
            break
        if time.monotonic() > deadline:
            break
        running = _still_running(chains.rearmed(), ignore_threads, foreign_threads, tried)
        if not running and chains.await_in_callback():
            # A cancelled timer of the chain was still in its callback, which may have armed the
            # next timer after the look above: looked for too early, that one escapes and ticks
            # into the next test.
            running = _still_running(chains.rearmed(), ignore_threads, foreign_threads, tried)
        if not running:
            break
    chains.clear()
    still_alive = Counter(remaining.values())
    return Proof(
        outcomes=_merged(outcomes),
        still_alive=tuple(sorted(still_alive.items())),
        rearmed=rearmed,
    )


def _rearmed_now(
    chains: _Chains,
    running: list[tuple[Pending, object]],
    tried: set[int],
    ignore_threads: tuple[str, ...],
    foreign_threads: frozenset[int],
) -> list[tuple[Pending, object]]:
    """What the chains re-armed that is neither stopped nor about to be."""
    queued = tried | {id(o) for _, o in running}
    return _still_running(chains.rearmed(), ignore_threads, foreign_threads, queued)


def _stop_first(
    found: list[tuple[Pending, object]], chains: _Chains, tried: set[int], *, rearmed: bool
) -> tuple[Pending, StopOutcome]:
    """Take the first of ``found`` out of it and stop it, noted as tried and as part of its
    chain; nothing here holds it afterwards."""
    item, obj = found.pop(0)
    tried.add(id(obj))
    chains.note(obj)
    outcome = _stop_one(item, obj, rearmed=rearmed)
    del obj
    return item, outcome


def _still_running(
    candidates: list[object],
    ignore_threads: tuple[str, ...],
    foreign_threads: frozenset[int],
    tried: set[int],
) -> list[tuple[Pending, object]]:
    try:
        return left_running(
            [c for c in candidates if id(c) not in tried],
            ignore_threads=ignore_threads,
            foreign_threads=foreign_threads,
            site_of=lambda obj: None,
        )
    finally:
        candidates.clear()


def _stop_one(item: Pending, obj: object, *, rearmed: bool) -> StopOutcome:
    try:
        action = stop(obj, item.kind)
    except Exception as exc:
        return StopOutcome(f"could not stop {item.kind}: {exc!r}", stopped=False)
    if action is not None:
        return StopOutcome(action, stopped=True, rearmed=int(rearmed))
    why = "threads cannot be stopped from outside" if item.kind == THREAD else "its loop is closed"
    return StopOutcome(f"left running ({why}): {item.description}", stopped=False)


def _merged(outcomes: list[StopOutcome]) -> tuple[StopOutcome, ...]:
    """One outcome per kind of action: five timers of one chain read as one."""
    merged: dict[tuple[str, bool], StopOutcome] = {}
    freed: dict[tuple[str, bool], Counter[str]] = {}
    for outcome in outcomes:
        shape = (_NUMBERS.sub("#", outcome.action), outcome.stopped)
        first = merged.get(shape)
        if first is None:
            merged[shape] = outcome
        else:
            merged[shape] = dataclasses.replace(
                first, times=first.times + 1, rearmed=first.rearmed + outcome.rearmed
            )
        freed.setdefault(shape, Counter()).update(dict(outcome.freed))
    return tuple(
        dataclasses.replace(o, freed=tuple(sorted(freed[shape].items())))
        for shape, o in merged.items()
    )
