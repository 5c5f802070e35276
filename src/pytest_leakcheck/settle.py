"""Waiting for what is visibly stopping, with one retry policy and every pause in one place.

A cancelled ``threading.Timer`` needs a moment to exit, a thread the test told to stop may be on its
way out, and a thread leaves ``threading.enumerate()`` a little before its frames let go of their
locals. Judged at once, what those frames still hold would be reported as a leak. So survivors are
looked up again after pauses that double (the policy of goleak's retries), within a budget; when
nothing is running that could let go of them, there is no wait at all.
"""

from __future__ import annotations

import concurrent.futures.thread
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator

from . import garbage
from .heap import find_by_id, followed
from .sites import SNAPSHOT_LOCALS
from .watch import qualified_name

# The first pause of a wait; each next one is twice as long.
FIRST_PAUSE = 0.002
# The first pause before looking again at survivors held by an older thread's running frame (a
# pool's worker finishing the test's job takes longer than a timer's thread takes to exit).
BUSY_FIRST_PAUSE = 0.01
# How long the plugin waits, at most, for threads the test started (``Options.settle``).
SETTLE_BUDGET = 0.25
# A cancelled or fired Timer is certain to exit; on a loaded machine that can take longer than the
# settle budget, and giving up early would report a fixed test as leaking.
WINDING_DOWN_SECONDS = 2.0
# How long the workers of a collected executor are waited for before the first look (they
# exit as soon as they are scheduled).
DYING_WORKER_SECONDS = 0.1
# How long a stopped timer chain's timers still inside their callback are waited for.
CHAIN_SECONDS = 2.0
# How long a timer just cancelled, or a callback handed to a loop's thread, is waited for.
STOP_SECONDS = 1.0
# How long a chain caught between two timers (the old one's callback arming the next) is looked
# at again until its next timer is pending.
HANDOVER_SECONDS = 0.1


def backoff(budget: float, first: float = FIRST_PAUSE) -> Iterator[float]:
    """The pauses of one wait: doubling from ``first``, the last one cut to end on the budget."""
    deadline = time.monotonic() + budget
    pause = first
    while (remaining := deadline - time.monotonic()) > 0:
        yield min(pause, remaining)
        pause *= 2


def thread_idents() -> frozenset[int]:
    """Every thread that still has an interpreter state.

    Not ``threading.enumerate()``: a thread leaves it a little before its last frames let go of
    their locals, and those locals may be what keeps a survivor alive for that moment.
    """
    return frozenset(sys._current_frames())


def _exiting(idents: frozenset[int]) -> bool:
    """Threads that already left threading's table but whose frames are still unwinding."""
    return bool(idents - {t.ident for t in threading.enumerate()})


_TIMER_RUN = threading.Timer.run.__code__
_EVENT_WAIT = threading.Event.wait.__code__
# A thread pool's worker (concurrent.futures, and so asyncio's default executor), and the method
# that runs one job in it: between two jobs, the worker is blocked in its queue's get().
_POOL_WORKER = getattr(getattr(concurrent.futures.thread, "_worker", None), "__code__", None)
_POOL_JOB = getattr(
    getattr(getattr(concurrent.futures.thread, "_WorkItem", None), "run", None), "__code__", None
)


def _worker_loops() -> dict[types.CodeType, types.CodeType]:
    """The loops of thread pools' workers, each with the function that runs one job in it.

    A worker in its loop but not in a job waits for the next one, and holds nothing meanwhile.
    Found in the whole stack, not only the innermost frame: a wrapper of the blocking call (a
    test plugin that watches for blocking calls) may sit above the loop. trio's thread cache is
    read only once trio is imported.
    """
    loops: dict[types.CodeType, types.CodeType] = {}
    if _POOL_WORKER is not None and _POOL_JOB is not None:
        loops[_POOL_WORKER] = _POOL_JOB
    cache = sys.modules.get("trio._core._thread_cache")
    worker = getattr(cache, "WorkerThread", None)
    work = getattr(getattr(worker, "_work", None), "__code__", None)
    job = getattr(getattr(worker, "_handle_job", None), "__code__", None)
    if isinstance(work, types.CodeType) and isinstance(job, types.CodeType):
        loops[work] = job
    return loops


def _waiting_worker(
    top: types.FrameType, loops: dict[types.CodeType, types.CodeType], *, alive: bool = True
) -> bool:
    """``top``'s thread is a pool worker between two jobs, and (``alive``) its pool alive."""
    jobs = set(loops.values())
    frame: types.FrameType | None = top
    while frame is not None:
        code = frame.f_code
        if code in jobs:
            return False
        if code in loops:
            return not alive or code is not _POOL_WORKER or _pool_alive(frame)
        frame = frame.f_back
    return False


def workers_between_jobs() -> set[int]:
    """Pool workers in their loop and not in a job, their pool alive or not: they hold nothing
    of a test's, whether they wait for work or are about to end."""
    loops = _worker_loops()
    frames = sys._current_frames()
    try:
        return {i for i, top in frames.items() if _waiting_worker(top, loops, alive=False)}
    finally:
        frames.clear()


def idle_threads() -> set[int]:
    """Threads not about to let go of anything by themselves: timers still waiting for their
    interval (not one running its function, nor one cancelled: it is about to end), and
    thread-pool workers waiting for work (they hold nothing between two jobs). Not worth waiting
    for."""
    waiting: set[int] = set()
    loops = _worker_loops()
    frames = sys._current_frames()
    try:
        for ident, frame in frames.items():
            if _waiting_worker(frame, loops):
                waiting.add(ident)
                continue
            inner: types.FrameType | None = None
            outer: types.FrameType | None = frame
            while outer is not None and outer.f_code is not _TIMER_RUN:
                inner, outer = outer, outer.f_back
            if outer is not None and inner is not None and _called_from(inner, outer):
                waiting.add(ident)
            inner = outer = None
    finally:
        frames.clear()
    # A cancelled timer still inside its wait is about to end, and to let go of its function.
    ending = {
        t.ident
        for t in threading.enumerate()
        if isinstance(t, threading.Timer) and t.finished.is_set()
    }
    return waiting - ending


def timer_threads() -> set[int]:
    return {
        t.ident
        for t in threading.enumerate()
        if isinstance(t, threading.Timer) and t.ident is not None
    }


def ticking() -> set[int]:
    """Timers running their function right now (or ending: their function has returned)."""
    return timer_threads() - idle_threads()


def wait_for_ticks(budget: float) -> None:
    """Wait, within ``budget`` seconds, until no timer is running its function.

    A callback in flight holds its objects in its frames for that moment (the user whose tick
    it is, the wrapper that re-arms it). Read then, the heap shows them held by the running
    timer as well as by what really keeps them, and which group retains which comes out
    otherwise than a moment later.
    """
    for pause in backoff(budget):
        if not ticking():
            return
        time.sleep(pause)


def _pool_alive(worker: types.FrameType) -> bool:
    """Whether the executor of this pool worker still exists. Once it is collected, its worker
    is woken up to exit: about to end, worth waiting for (whether it is gone by the time the
    check lists threads would otherwise be a matter of timing)."""
    local_vars = worker.f_locals
    try:
        ref = local_vars.get("executor_reference")
    finally:
        if SNAPSHOT_LOCALS and type(local_vars) is dict:
            # Before 3.13 the read left a snapshot of the worker's locals on its frame: a job
            # it holds for a moment would stay alive with it.
            local_vars.clear()
        del local_vars
    return not (isinstance(ref, weakref.ref) and ref() is None)


def _called_from(inner: types.FrameType, outer: types.FrameType) -> bool:
    """``inner`` is the frame of ``Event.wait`` that ``outer`` (a ``Timer.run``) called."""
    return inner.f_code is _EVENT_WAIT and inner.f_back is outer


def join_winding_down(timeout: float) -> bool:
    """Wait for timers that were cancelled or fired but whose thread has not exited yet.

    The Timer objects are dropped before returning: held across the next collection, they
    would keep their callbacks' owners alive.
    """
    stopping = [
        t
        for t in threading.enumerate()
        if isinstance(t, threading.Timer) and t.finished.is_set() and t.is_alive()
    ]
    for t in stopping:
        t.join(timeout)
    found = bool(stopping)
    stopping.clear()
    return found


def join_dying_workers(timeout: float) -> None:
    """Wait, briefly, for pool workers whose executor was collected: they are told to exit and
    hold nothing, so once they are gone nothing needs looking up again (no collection)."""
    frames = sys._current_frames()
    try:
        dying = {
            ident
            for ident, frame in frames.items()
            if frame.f_code is _POOL_WORKER and not _pool_alive(frame)
        }
    finally:
        frames.clear()
    if not dying:
        return
    deadline = time.monotonic() + timeout
    for thread in [t for t in threading.enumerate() if t.ident in dying]:
        thread.join(max(0.0, deadline - time.monotonic()))


def settle(
    found: list[object],
    budget: float,
    threads_before: frozenset[int],
    not_the_tests: Callable[[], frozenset[int]] = frozenset,
    threads_found: frozenset[int] = frozenset(),
) -> tuple[list[object], float]:
    """Look the survivors up again while something visibly stops, within ``budget`` seconds.

    While threads that the test started are at work or exiting, they are waited for, in pauses,
    and the survivors looked up again (a full collection) once they are idle or gone, or the
    budget is spent; again when the set of threads changed while they were looked up (a thread
    that exits during a collection leaves its garbage for the next one). Without such threads a
    real leak costs one short pause.
    ``not_the_tests`` names threads that are new but not the test's (what earlier tests left
    running): they are not waited for. ``threads_found``: the threads when the survivors were
    found; one that has ended since may have let go of them (a test's thread that was closing
    its loop when the window closed). Returns what is still alive (``found`` is emptied) and
    the seconds waited.
    """

    def threads_now() -> frozenset[int]:
        return thread_idents() - not_the_tests()

    def running() -> bool:
        return bool(threads_now() - threads_before - idle_threads())

    join_dying_workers(DYING_WORKER_SECONDS)
    looked = threads_now()  # the threads when the survivors were last looked up
    alive = list(found)  # what the window found, without a second walk over the heap
    found.clear()
    began = time.monotonic()  # what is reported is the waiting, not the first look-up
    stale = bool(threads_found - thread_idents())  # something ran since the last look
    for pause in backoff(budget):
        if not alive:
            break
        now = threads_now()
        if not stale and now == looked and not running():
            # Nothing the test started is running (its timers wait, its pools' workers idle),
            # and nothing changed since the last look: nothing will.
            break
        remaining = max(0.0, budget - (time.monotonic() - began))
        joined = join_winding_down(max(remaining, WINDING_DOWN_SECONDS))
        time.sleep(pause)
        if not joined and running():
            # Still at work: waited for without a collection per pause, which on a big heap
            # costs more than the pauses themselves.
            stale = True
            continue
        looked = threads_now()  # before: a thread that ends during the collection is a change
        alive = _looked_up(alive)
        stale = _exiting(looked)
    if stale and alive:
        alive = _looked_up(alive)
    return alive, time.monotonic() - began


def _looked_up(alive: list[object]) -> list[object]:
    """What of ``alive`` is still held now that the threads let go. What the proof from
    reference counts shows to be garbage (the threads dropped it: only this list holds it) is
    not; what a module holds is. Only when something is neither are the survivors looked up
    after a full collection (tens of milliseconds on a real suite's heap), which frees what the
    proof cannot tell."""
    gone = garbage.garbage(alive)
    rest = [o for o in alive if id(o) not in gone]
    if len(garbage.held_by_modules(rest)) == len(rest):
        alive.clear()
        return rest
    rest.clear()
    ids = followed(alive)
    alive.clear()
    return find_by_id(ids)


def look_again(survivors: list[object], names: set[str], budget: float, first: float) -> set[str]:
    """Let go of the survivors of these types and look them up again (a full collection each
    time) after ``first`` seconds, then after each pause of ``backoff``, until none is left. They
    are followed by id and type meanwhile: held here, they could not go. Returns the names of the
    types still alive; what is alive is put back into ``survivors``."""
    wanted = followed(o for o in survivors if qualified_name(type(o)) in names)
    kept = [o for o in survivors if id(o) not in wanted]
    survivors.clear()
    survivors.extend(kept)
    kept.clear()
    time.sleep(first)
    alive = find_by_id(wanted)
    for pause in backoff(budget, max(first * 2, BUSY_FIRST_PAUSE)):
        if not alive:
            break
        wanted = followed(alive)
        alive.clear()
        time.sleep(pause)
        alive = find_by_id(wanted)
    still = {qualified_name(type(o)) for o in alive}
    survivors.extend(alive)
    alive.clear()
    return still
