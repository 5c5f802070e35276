"""How fast a leak is explained in a big heap, against objgraph.find_backref_chain.

    python benchmarks/explain_speed.py [--sizes 10000,100000,1000000]

For each heap size, one object leaks through a started threading.Timer (the seed's shape) and
one through a module-level registry. Prints the time to find and classify the root with the
plugin's search (retention.find_path) and with objgraph.find_backref_chain(obj,
objgraph.is_proper_module) on the same object, and the time of a whole check (window, settle,
search, retained size, proof) as the plugin runs it.
"""

from __future__ import annotations

import argparse
import gc
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import objgraph

from pytest_leakcheck import LeakCheck, Options
from pytest_leakcheck.retention import Retention, find_path
from pytest_leakcheck.watch import WatchFilter

REGISTRY: list[object] = []
T = TypeVar("T")


class Filler:
    def __init__(self, i: int) -> None:
        self.i = i


class User:
    def tick(self) -> None:
        pass


def timed(func: Callable[..., T], *args: object) -> tuple[float, T]:
    began = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - began, result


def search(box: list[object]) -> Retention:
    # The object is reached only through ``box``, which the search ignores, as the checker
    # ignores its own lists: a local variable naming it would be a root of its own.
    return find_path(box[0], extra_roots={}, ignore={id(box)})


def backref_chain(box: list[object]) -> list[object]:
    chain: list[object] = objgraph.find_backref_chain(
        box[0], objgraph.is_proper_module, extra_ignore=(id(box),)
    )
    return chain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    heap: list[Filler] = []
    print(
        f"{'heap objects':>12} {'leak via':>16} {'find_path s':>12} {'objgraph s':>11} "
        f"{'ratio':>7} {'whole check s':>14}  root found / objgraph chain length"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        heap.extend(Filler(i) for i in range(size - len(heap)))
        gc.collect()
        for via in ("threading.Timer", "module global"):
            box: list[object] = [User()]
            timer = None
            if via == "threading.Timer":
                timer = threading.Timer(600, box[0].tick)  # type: ignore[attr-defined]
                timer.daemon = True
                timer.start()
            else:
                REGISTRY.append(box[0])
            ours, found = timed(search, box)
            theirs, chain = timed(backref_chain, box)
            box.clear()
            check = LeakCheck(WatchFilter(rootdir=None, types=frozenset({User})), Options())
            check.start()
            fresh = User()
            if via == "threading.Timer":
                late = threading.Timer(600, fresh.tick)
                late.daemon = True
                late.start()
            else:
                REGISTRY.append(fresh)
            del fresh
            whole, _ = timed(check.finish)
            if timer is not None:
                timer.cancel()
            REGISTRY.clear()
            print(
                f"{size:>12,} {via:>16} {ours:>12.3f} {theirs:>11.3f} {theirs / ours:>6.1f}x "
                f"{whole:>14.3f}  {found.kind} / {len(chain)}"
            )


if __name__ == "__main__":
    main()
