"""Walks that join each other: a join serves only on the other walk's path from its root.

The checker's own list of what a test left running once made a dead end that every task's walk
reached: the first walk owned it, the others joined there and stopped, and their paths ended at
the first survivor. The fingerprints of those groups then changed with the order of the walks.
"""

from __future__ import annotations

import gc

from pytest_leakcheck.retention import find_paths


class Conn:
    buf: object


class Buf:
    pass


SHORT: list[object] = []  # holds the first connection one step from the module
LONG: dict[str, list[object]] = {}  # holds the second one, two steps further down
DEAD_END: list[list[object]] = []  # what the caller keeps: passed to the search as ignored


def _setup() -> None:
    first, second = Conn(), Conn()
    second.buf = Buf()
    SHORT.append(first)
    LONG["x"] = [second]
    # Reached by both connections' walks at the same level, held by nothing the search follows.
    # Two of them, in both orders: whichever walk owns one, the other walk joins it there.
    DEAD_END.append([(1, first), (2, second)])
    DEAD_END.append([(2, second), (1, first)])


def test_a_walk_joins_another_only_on_that_walks_path() -> None:
    _setup()
    targets = [SHORT[0], LONG["x"][0], LONG["x"][0].buf]  # type: ignore[attr-defined]
    try:
        first, second, buf = find_paths(targets, extra_roots={}, ignore={id(DEAD_END), id(targets)})
    finally:
        targets.clear()
        SHORT.clear()
        LONG.clear()
        DEAD_END.clear()
    conn, buf_type = f"{__name__}.Conn", f"{__name__}.Buf"
    assert first.path[-1].endswith(f"-> {conn}"), first.path
    assert first.path[1].startswith(".SHORT"), first.path
    for ret in (second, buf):
        assert ret.kind == "module global"
        assert any("LONG" in step for step in ret.path), ret.path
        assert not any(step.startswith("...") for step in ret.path), ret.path
    assert second.path[-1].endswith(f"-> {conn}"), second.path
    assert buf.path[-2:] == (f"[0] -> {conn}", f".buf -> {buf_type}"), buf.path


def test_a_walk_that_met_others_only_off_their_paths_says_so_at_its_end() -> None:
    # The second survivor is held only by the dead end (what the caller keeps, ignored): its
    # walk never finds a root of its own. It gets the first survivor's, as before, but its path
    # no longer ends at the first survivor as if that were it.
    first, second = Conn(), Conn()
    SHORT.append(first)
    DEAD_END.append([(1, first), (2, second)])
    DEAD_END.append([(2, second), (1, first)])
    del first, second
    targets = [SHORT[0], DEAD_END[0][1][1]]
    try:
        _, second_ret = find_paths(targets, extra_roots={}, ignore={id(DEAD_END), id(targets)})
    finally:
        targets.clear()
        SHORT.clear()
        DEAD_END.clear()
    assert second_ret.path[1].startswith(".SHORT"), second_ret.path
    assert second_ret.path[-1] == f"... -> {__name__}.Conn", second_ret.path


class _Top:
    held: object
    other: object


class _Found:
    def __init__(self, top: object) -> None:
        self.top = top


def test_the_routes_add_no_referrer_of_what_the_search_walks() -> None:
    # The search asks the heap for the referrers of its frontier between two resolutions: a
    # route that held the objects at its turns would be one of them, a holder to walk into.
    from pytest_leakcheck.routes import Routes

    targets: list[object] = [Conn(), Conn()]
    top = _Top()
    top.held, top.other = targets
    via = {id(top): targets[0]}
    nodes = {id(top): top, id(targets[0]): targets[0], id(targets[1]): targets[1]}
    found = {0: _Found(top)}
    routes = Routes(targets, found, via, nodes)
    before = {id(r) for r in gc.get_referrers(targets[1])}
    routes.join(1, 0, id(top), id(targets[1]))  # top holds the second one too
    assert routes.done(1)
    after = {id(r) for r in gc.get_referrers(targets[1])}
    root, steps = routes.resolve(1)
    assert root is found[0] and steps[id(top)] is targets[1]
    routes.clear()
    assert after == before
