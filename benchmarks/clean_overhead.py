"""Per-check cost of a clean block, by heap size, against a naive whole-heap snapshot.

    python benchmarks/clean_overhead.py [--sizes 10000,100000,1000000] [--repeat 2000] [--json PATH]

Prints, per heap size, the typical time (the mean of the middle 80% of the timings, after a
warm-up) of: the frozen-window check (what the plugin does by default), the same around a body
whose watched objects die in reference cycles (then a young collection runs: "cyclic ms"), the
full-heap check (its fallback), the check when the heap was frozen by the application itself (as
a pre-fork server does at import: the check then compares only the unfrozen heap, "app-frozen
ms"), and the naive approach (gc.collect() plus a set of ids of gc.get_objects() before and
after), with ratios. ``--json`` also writes the figures, which
``benchmarks/versions.py`` compares across interpreters.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pytest_leakcheck import LeakCheck, Options
from pytest_leakcheck.watch import WatchFilter


class Filler:
    """One small gc-tracked object of the heap that the checks must not pay for."""

    def __init__(self, i: int) -> None:
        self.i = i


class Watched:
    pass


def body() -> None:
    # A clean test body: makes a few watched objects and lets them go.
    items = [Watched() for _ in range(10)]
    del items


def cyclic_body() -> None:
    # The same, but each object is in a reference cycle: only a collection frees it.
    items = [Watched() for _ in range(10)]
    for item in items:
        item.me = item  # type: ignore[attr-defined]
    del items


def check_once(mode: str, run: Callable[[], None] = body) -> float:
    check = LeakCheck(WatchFilter(rootdir=None, types=frozenset({Watched})), Options(mode=mode))
    began = time.perf_counter()
    check.start()
    run()
    findings = check.finish()
    elapsed = time.perf_counter() - began
    assert not findings.groups
    return elapsed


def app_frozen_once() -> float:
    """A check while the whole heap is frozen by the application, not by the check."""
    gc.freeze()
    try:
        return check_once("auto")
    finally:
        gc.unfreeze()


def naive_once() -> float:
    began = time.perf_counter()
    gc.collect()
    before = {id(o) for o in gc.get_objects()}
    body()
    gc.collect()
    after = [o for o in gc.get_objects() if id(o) not in before and type(o) is Watched]
    elapsed = time.perf_counter() - began
    assert not after
    return elapsed


def bare_once() -> float:
    began = time.perf_counter()
    body()
    return time.perf_counter() - began


def typical_ms(func: Callable[[], float], repeat: int, warmup: int = 1000) -> float:
    """The mean of the middle 80% of ``repeat`` timings, in ms, after a warm-up.

    Not the median: whether the collector's young-generation threshold trips inside a check
    depends on where its counter stands, and a median picked one side or the other of that
    phase by chance (a cell 1.5x off, the same in every process). The middle 80% averages over
    it and still drops interruptions. Warmed up first: the first few hundred checks of a
    process ran up to 1.7x slower than the rest on the 2-core machine.
    """
    for _ in range(min(repeat, warmup)):
        func()
    times = sorted(func() for _ in range(repeat))
    cut = len(times) // 10
    return statistics.fmean(times[cut : len(times) - cut]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    heap: list[Filler] = []
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        heap.extend(Filler(i) for i in range(size - len(heap)))
        gc.collect()
        naive_repeat = max(3, min(args.repeat, 2_000_000 // size))
        bare = typical_ms(bare_once, args.repeat)
        frozen = typical_ms(lambda: check_once("auto"), args.repeat)
        cyclic = typical_ms(lambda: check_once("auto", cyclic_body), args.repeat)
        full = typical_ms(lambda: check_once("full-heap"), naive_repeat, warmup=1)
        naive = typical_ms(naive_once, naive_repeat, warmup=1)
        rows.append((size, bare, frozen, cyclic, full, 0.0, naive))
    # Last: once a check has seen the application's freeze, it counts the permanent generation
    # again only every few checks, so a frozen-window measurement right after would be skewed.
    for n in reversed(range(len(rows))):
        size = rows[n][0]
        del heap[size:]  # largest first, then smaller
        gc.collect()
        app = typical_ms(app_frozen_once, args.repeat)
        rows[n] = (*rows[n][:5], app, rows[n][6])
    print(
        f"{'heap objects':>12} {'bare ms':>9} {'frozen ms':>10} {'added ms':>9} "
        f"{'cyclic ms':>10} {'full-heap ms':>13} {'app-frozen ms':>14} {'naive ms':>9} "
        f"{'naive/frozen':>13}"
    )
    for size, bare, frozen, cyclic, full, app, naive in rows:
        print(
            f"{size:>12,} {bare:>9.4f} {frozen:>10.4f} {frozen - bare:>9.4f} {cyclic:>10.4f} "
            f"{full:>13.3f} {app:>14.3f} {naive:>9.3f} {naive / frozen:>12.0f}x"
        )
    first, last = rows[0], rows[-1]
    print(
        f"frozen check at {last[0]:,} objects / at {first[0]:,}: "
        f"{(last[2] - last[1]) / (first[2] - first[1]):.2f}x"
    )
    if args.json is not None:
        names = ("heap_objects", "bare", "frozen", "cyclic", "full_heap", "app_frozen", "naive")
        doc = {
            "python": platform.python_version(),
            "unit": "ms",
            "rows": [dict(zip(names, row, strict=True)) for row in rows],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
