"""How much each leak keeps, how the heap grew, and leaks that only show over repeated cycles."""

from __future__ import annotations

import json
import threading
import time

import pytest
from examples.user_session import User
from pympler import asizeof

from pytest_leakcheck import check_leaks
from pytest_leakcheck.settle import ticking, wait_for_ticks
from pytest_leakcheck.sizes import retained_size
from pytest_leakcheck.watch import qualified_name

SHARED_BIG = ["shared" * 100 for _ in range(2000)]  # about 1.3 MB that every holder points to
REGISTRY: list[object] = []


class Holder:
    def __init__(self, payload: object) -> None:
        self.payload = payload
        self.shared = SHARED_BIG


@pytest.fixture
def user() -> User:
    user = User("sized")
    user.clear_timer()
    return user


def test_the_seed_users_retained_size_is_within_10_percent_of_asizeof(user: User) -> None:
    ours = retained_size([user])
    reference = asizeof.asizeof(user)
    assert ours.complete
    assert ours.bytes > 50_000_000  # tens of MB, as in the seed
    assert abs(ours.bytes - reference) / reference < 0.10, (ours.bytes, reference)


def test_shared_objects_are_not_counted() -> None:
    alone = retained_size([Holder(None)])
    owned = retained_size([Holder(bytes(1_000_000))])
    assert alone.bytes < 2000  # the big shared list is not the holder's
    assert 1_000_000 < owned.bytes < 1_002_000  # a private megabyte is


def test_modules_and_classes_are_not_counted() -> None:
    import collections

    holder = Holder(collections)  # a module
    holder.kind = Holder  # type: ignore[attr-defined]  # and a class
    assert retained_size([holder]).bytes < 2000


def test_what_two_survivors_share_is_theirs_together() -> None:
    private = bytes(500_000)
    a, b = Holder(private), Holder(private)
    del private
    assert retained_size([a]).bytes < 2000  # b holds it too
    assert retained_size([a, b]).bytes > 500_000


GROWTH = """
    import pytest

    KEEP = []

    @pytest.mark.leakcheck(max_growth="1 MB")
    def test_keeps_two_megabytes():
        KEEP.append(bytes(2_000_000))  # not an instance of a project class: only the heap shows it

    @pytest.mark.leakcheck(max_growth="1 MB")
    def test_allocates_and_frees_two_megabytes():
        data = bytes(2_000_000)
        del data

    @pytest.mark.leakcheck(max_growth="10 MB")
    def test_keeps_two_megabytes_under_a_higher_limit():
        KEEP.append(bytes(2_000_000))
"""


def test_max_growth_fails_a_test_whose_heap_grows_past_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(GROWTH)
    result = pytester.runpytest_subprocess("--leakcheck-json=out.json", "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_keeps_two_megabytes _*",
            "leakcheck: the heap grew by 2.? MB (limit 1.0 MB)",
            "heap: * tracked objects; resident memory * -> *; 2.? MB allocated and kept "
            "(limit 1.0 MB)",
        ]
    )
    assert "test_allocates_and_frees" not in result.stdout.str().split("short test summary")[1]
    doc = json.loads((pytester.path / "out.json").read_text())
    [entry] = doc["tests"]
    assert entry["nodeid"].endswith("::test_keeps_two_megabytes")
    assert entry["heap_leak"] is True
    assert 2_000_000 <= entry["heap"]["traced_growth_bytes"] < 2_300_000


CYCLES = """
    import functools
    import pytest

    class Session:
        pass

    class Config:
        pass

    REGISTRY = []

    @functools.lru_cache(maxsize=None)
    def config():
        return Config()  # filled once, by the first run

    def connect():
        config()
        session = Session()
        REGISTRY.append(session)  # the leak: one per connect, never removed
        return session

    def connect_cached_only():
        return config()
"""


def test_runs_tell_a_registry_that_grows_every_cycle_from_a_cache(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        CYCLES
        + """
    @pytest.mark.leakcheck(runs=3, warmup=2)
    def test_registry_grows():
        connect()

    @pytest.mark.leakcheck(runs=3, warmup=2)
    def test_cache_fills_once():
        connect_cached_only()
        """
    )
    result = pytester.runpytest_subprocess("--leakcheck-json=out.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_registry_grows _*",
            "LEAK: 5 x *.Session, retaining *, held by module global: module *",
            "  +1 per run: [[]1, 1, 1]",
            "cycles: 2 warm-up + 3 counted runs",
            "  objects after each run: * [[]*]",
            "  heap after each run: * [[]*]",
            "  *.Session per counted run: [[]1, 1, 1]  <- grows every run",
        ]
    )
    doc = json.loads((pytester.path / "out.json").read_text())
    [entry] = doc["tests"]
    assert entry["nodeid"].endswith("::test_registry_grows")
    cycles = entry["cycles"]
    assert (cycles["runs"], cycles["warmup"], len(cycles["objects"])) == (3, 2, 6)
    assert cycles["growing"] == [
        "test_runs_tell_a_registry_that_grows_every_cycle_from_a_cache.Session"
    ]


def test_without_runs_the_cache_is_indistinguishable_from_a_leak(
    pytester: pytest.Pytester,
) -> None:
    # The reason runs exist: a single run sees the cached Config as a survivor.
    pytester.makepyfile(
        CYCLES
        + """
    @pytest.mark.leakcheck
    def test_cache_fills_once():
        connect_cached_only()
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["LEAK: 1 x *.Config, *held by functools cache*"])


def test_the_leakcheck_fixture_judges_explicit_cycles(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        CYCLES
        + """
    def test_explicit_loop_leaks(leakcheck):
        for _ in leakcheck.cycles(3, warmup=2):
            connect()

    def test_explicit_loop_with_cache_is_clean(leakcheck):
        for _ in leakcheck.cycles(3, warmup=2):
            connect_cached_only()
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_explicit_loop_leaks _*",
            "LEAK: 5 x *.Session, retaining *, held by module global: *",
            "  +1 per run: [[]1, 1, 1]",
        ]
    )


def test_a_body_that_cannot_be_repeated_is_told_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def ticket():
            return iter(["the only one"])

        @pytest.mark.leakcheck(runs=2)
        def test_uses_up_its_ticket(ticket):
            next(ticket)
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RepeatError: pytest-leakcheck: the test body raised on run 2 of 3 (warmup=1, "
            "runs=2) after its first run passed, so it cannot be repeated*",
        ]
    )


def test_cycles_work_from_the_pure_api() -> None:
    class Session:
        pass

    with check_leaks(Session) as check:
        for run in check.cycles(3, warmup=1):
            if run == 0:
                REGISTRY.append(Session())  # a cache filled by the warm-up
    REGISTRY.clear()
    assert check.findings is not None
    assert check.findings.verdict is None
    assert check.findings.cycles is not None
    assert check.findings.cycles.type_deltas() == {f"{__name__}.{Session.__qualname__}": [0, 0, 0]}

    with check_leaks(Session) as check:
        for _ in check.cycles(3, warmup=1):
            REGISTRY.append(Session())
    REGISTRY.clear()
    assert check.findings is not None
    [group] = check.findings.leaks
    assert group.per_run == (1, 1, 1)
    assert group.count == 4  # every session of a growing type survives, the warm-up's too


def test_every_leaked_group_reports_its_retained_size() -> None:
    with check_leaks(Holder) as check:
        REGISTRY.append(Holder(bytes(300_000)))
    REGISTRY.clear()
    assert check.findings is not None
    [group] = check.findings.leaks
    assert group.retained_bytes is not None
    assert 300_000 < group.retained_bytes < 302_000


class Session:
    """Holds its ticker in an attribute; the ticker holds it through a bound method."""

    def __init__(self) -> None:
        self.data = ["payload" * 10 for _ in range(100)]
        self.ticker = Ticker(self.tick)

    def tick(self) -> None:
        pass


class Ticker:
    def __init__(self, callback: object) -> None:
        self.callback = callback


@pytest.mark.parametrize("kept", ["session", "ticker"])
def test_of_two_types_that_retain_each_other_the_owner_is_the_outer_one(kept: str) -> None:
    # Each retains all the other does. Whether the search reaches the ticker last (the registry
    # keeps the session) or the session last (it keeps the ticker), the session, which keeps
    # its ticker in an attribute, is the outer group: where a search starts (a callback in
    # flight) must not decide it.
    with check_leaks(Session, Ticker) as check:
        session = Session()
        REGISTRY.append(session if kept == "session" else session.ticker)
        del session
    REGISTRY.clear()
    assert check.findings is not None
    within = {g.type.rsplit(".", 1)[-1]: g.retained_within for g in check.findings.leaks}
    assert within == {"Session": None, "Ticker": "test_sizes.Session"}


def test_a_few_bytes_more_do_not_make_the_held_type_the_outer_one() -> None:
    # The seed's report read "5 x RepeatingTimer, retaining 422.3 MB" with the users inside it,
    # about one run in ten under load: a tick in flight had just made the next timer, a few
    # bytes more for the timer wrapper, and the larger size decided.
    from pytest_leakcheck.explain import _within
    from pytest_leakcheck.sizes import Retained

    class Wrapper:
        def __init__(self, function: object) -> None:
            self.function = function

    class Session:
        def __init__(self) -> None:
            self.timer = Wrapper(self.tick)

        def tick(self) -> None:
            pass

    session = Session()
    ids = frozenset({id(session), id(session.timer)})
    by_type: dict[type, list[object]] = {Session: [session], Wrapper: [session.timer]}
    sizes = {
        Session: Retained(bytes=422_300_000, objects=10, complete=True, holds=ids),
        Wrapper: Retained(bytes=422_300_200, objects=11, complete=True, holds=ids),
    }
    assert _within(by_type, sizes, {}) == {Wrapper: qualified_name(Session)}


def test_a_timer_running_its_function_is_let_finish_before_the_heap_is_read() -> None:
    # Paused in the middle of a tick, the timer's frames hold the user and its wrapper: each
    # then seems shared, and which group retains which comes out otherwise than a moment later
    # (the seed's report, once in a few loaded runs).
    started = threading.Event()
    release = threading.Event()
    done = threading.Event()

    def tick() -> None:
        started.set()
        release.wait(5)
        done.set()

    timer = threading.Timer(0, tick)
    timer.start()
    assert started.wait(5)
    releaser = threading.Timer(0.05, release.set)
    releaser.start()
    try:
        wait_for_ticks(2.0)
        assert done.is_set()
        assert not ticking() - {releaser.ident}
    finally:
        release.set()
        timer.join(5)
        releaser.join(5)


def test_a_timer_whose_tick_outlasts_the_budget_is_not_waited_for_longer() -> None:
    # Nor again, once the heap is read: it was in the heap before the search, as it always was.
    from pytest_leakcheck.investigation import _Pause

    started = threading.Event()
    release = threading.Event()
    timer = threading.Timer(0, lambda: (started.set(), release.wait(5)))
    timer.start()
    assert started.wait(5)
    pause = _Pause(budget=1.0)
    try:
        began = time.monotonic()
        pause.start()  # waits its budget for the tick, then gives up
        assert time.monotonic() - began < 3.0  # the tick lasts 5 s
        began = time.monotonic()
        pause.quiet()
        assert time.monotonic() - began < 0.5  # a second wait would take the whole budget
        assert timer.ident in ticking()
    finally:
        pause.end()
        release.set()
        timer.join(5)


def test_a_tick_that_begins_while_the_search_blocks_is_let_finish_before_the_next_read() -> None:
    # The search blocks now and then (reading a file to show where something was made): a timer
    # that fired meanwhile takes the GIL and stops in the middle of its tick, at its first
    # blocking call. Read then, the heap shows its frames holding what it ticks for (the seed's
    # report under a loaded -n 2 run: the wrapper as the outer group, "frame of start").
    from pytest_leakcheck.investigation import _Pause

    release = threading.Event()
    done = threading.Event()

    def tick() -> None:
        release.wait(5)
        done.set()

    quiet = threading.Timer(60, lambda: None)
    in_flight = threading.Timer(0.1, tick)
    for timer in (quiet, in_flight):
        timer.start()
    pause = _Pause(budget=2.0)
    try:
        pause.start()
        assert not ticking()  # timers waiting for their interval are no ticks
        time.sleep(0.3)  # the search blocks; the timer fires and stops in its tick
        assert in_flight.ident in ticking()
        threading.Thread(target=lambda: (time.sleep(0.05), release.set())).start()
        pause.quiet()
        assert done.is_set()
        assert not ticking()
    finally:
        pause.end()
        release.set()
        for timer in (quiet, in_flight):
            timer.cancel()
            timer.join(5)


class _Owner:
    def __init__(self) -> None:
        self.payload = [str(n) * 50 for n in range(200)]
        self.helper = _Helper(self.ping)

    def ping(self) -> None:
        pass


class _Helper:
    def __init__(self, callback: object) -> None:
        self.callback = callback  # the owner, through a bound method: each retains the other
        self.buffer = bytearray(10_000)


def _sizes_and_walks(
    survivors: list[object], monkeypatch: pytest.MonkeyPatch
) -> tuple[object, int, object]:
    from pytest_leakcheck import explain

    walks = []

    def counted(*args: object, **kwargs: object) -> object:
        walks.append(1)
        return retained_size(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(explain, "retained_size", counted)
    by_type = explain._by_type(survivors)
    caller_refs = dict.fromkeys(map(id, survivors), 2)  # as explain() holds them
    _, total = explain._sizes(by_type, caller_refs)
    by_type.clear()
    monkeypatch.undo()
    # What all of them retain, walked from all of them at once (``everyone``, the reference
    # _sizes holds, counted as the caller's own).
    everyone = list(survivors)
    alone = retained_size(everyone, caller_refs=dict.fromkeys(map(id, survivors), 3))
    everyone.clear()
    return total, len(walks), alone


def test_a_type_that_retains_all_the_others_gives_the_total_without_a_third_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owners = [_Owner() for _ in range(3)]
    survivors: list[object] = [*owners, *(o.helper for o in owners)]
    owners.clear()
    total, walks, alone = _sizes_and_walks(survivors, monkeypatch)
    survivors.clear()
    assert walks == 2
    assert total == alone


def test_types_that_retain_apart_are_walked_together_for_the_total(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    survivors: list[object] = [_Helper(None), _Helper(None), Holder([1] * 1000)]
    total, walks, alone = _sizes_and_walks(survivors, monkeypatch)
    survivors.clear()
    assert walks == 3
    assert total == alone
