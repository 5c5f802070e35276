"""The path from a root to a survivor: a bounded breadth-first search over referrers.

``gc.get_referrers(*objs)`` walks the whole heap once per call and compares every reference with
each of ``objs`` (a frontier that grows level by level makes that quadratic), so the search asks
it once per level with a frontier of bounded width, and stops at the first level that reaches a
root. Roots are what lives on by itself: modules, classes, the frames that running threads are
executing (``frames``: no object refers to those), and holders kept in C (signal handlers,
wider-scoped fixtures that the caller passes in). What the search keeps is released before it
returns.
"""

from __future__ import annotations

import gc
import sys
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from . import describe, graphs, kinds
from .edges import edge_label, is_namespace_of, with_namespaces
from .frames import FrameIndex, own_frame
from .kinds import RootInfo
from .routes import Routes

NotWalked = Literal["budget", "repeat"]

# What a group counted without a search says in place of its root, by reason.
NOT_WALKED_TEXT: dict[str, str] = {
    "repeat": "not walked: this type was explained earlier in the session",
    "budget": (
        "not walked: the session's time budget for explaining suspects is spent "
        "(--leakcheck-explain-budget; --leakcheck-strict or a marker walks every one)"
    ),
}


@dataclass(frozen=True)
class Retention:
    """One explained survivor: a root kind and the path, as text only (no live references)."""

    kind: str
    root: str
    path: tuple[str, ...]
    depth_limited: bool = False
    dot: str | None = None  # the path as a Graphviz graph, when graphs were asked for
    busy_elsewhere: bool = False  # held by a running frame of a thread older than the check
    # The search found no root: nothing Python can see holds it (or not within the limits).
    rootless: bool = False
    # Counted without a search, and why: the type was explained earlier in the session, or the
    # time budget for explaining suspects was spent.
    not_walked: NotWalked | None = None
    # id() of the root object (a timer, a thread...): which of the things left running it is.
    root_id: int | None = None
    root_tag: int | None = None  # the test that made the root (``provenance``), when known
    root_site: str | None = None  # where the root was made (or its chain started), when noted

    @classmethod
    def unwalked(cls, why: NotWalked) -> Retention:
        return cls(kind=kinds.UNKNOWN, root=NOT_WALKED_TEXT[why], path=(), not_walked=why)


@dataclass
class _Found:
    top: object
    info: RootInfo | None
    frame: types.FrameType | None
    local: str | None


@dataclass
class SearchLimits:
    max_depth: int = 40
    max_frontier: int = 256


def is_stop(obj: object) -> bool:
    # Modules and classes are roots of a different kind; everything refers to classes (through
    # ob_type), so walking past one would flood the frontier. Not a class made inside a function
    # (a test's local handler class): it lives only as long as something holds it, often a cycle
    # through the very object it seems to hold, and the walk goes on to that holder.
    # type(), not isinstance(): a proxy's __class__ is the tested code's, and may raise.
    kind = type(obj)
    if issubclass(kind, type):
        return "<locals>" not in getattr(obj, "__qualname__", "")
    return issubclass(kind, types.ModuleType)


def find_path(
    target: object,
    *,
    extra_roots: Mapping[int, RootInfo],
    ignore: set[int],
    limits: SearchLimits | None = None,
    frames: FrameIndex | None = None,
    graph: bool = False,
) -> Retention:
    """Walk from ``target`` back to the nearest root and describe the path."""
    box = [target]
    try:
        return find_paths(
            box,
            extra_roots=extra_roots,
            ignore=ignore | {id(box)},
            limits=limits,
            frames=frames,
            graph=graph,
        )[0]
    finally:
        box.clear()


def find_paths(
    targets: list[object],
    *,
    extra_roots: Mapping[int, RootInfo],
    ignore: set[int],
    limits: SearchLimits | None = None,
    frames: FrameIndex | None = None,
    graph: bool = False,
    deadline: float | None = None,
) -> list[Retention]:
    """Walk from every target at once back to roots: one heap pass per level for all of them.

    ``deadline`` (a ``time.perf_counter()`` value): no level is started after it, and a target
    whose walk was still open then is returned as not walked (``"budget"``).

    Survivors of one test are often held by one chain (a cached lexer and the rules it holds):
    a walk that reaches a node another target's walk already owns *joins* it, and its path is
    that walk's path down to the join, then its own (``routes``: only a join on that path).
    """
    limits = limits or SearchLimits()
    own_index = frames is None
    index = frames if frames is not None else FrameIndex()
    via: dict[int, object] = {}  # id(holder) -> the object it holds, one step nearer a target
    origin: dict[int, int] = {id(t): n for n, t in enumerate(targets)}  # node -> target index
    nodes: dict[int, object] = {id(t): t for t in targets}
    found: dict[int, _Found] = {}
    # Joins are kept as ids: the bookkeeping must not be a referrer the walk then follows.
    routes = Routes(targets, found, via, nodes)
    frontier: list[object] = list(nodes.values())
    here = sys._getframe()
    own = {id(via), id(origin), id(nodes), id(found), id(routes), id(here), id(index.by_id)}
    ignore = ignore | own | {id(frontier), id(targets)}
    depth = 0

    def open_(n: int) -> bool:
        # A walk is done when it found a root, or joined (through other walks) one that did.
        return not routes.done(n)

    try:
        timed_out = False
        while frontier and depth < limits.max_depth and any(map(open_, range(len(targets)))):
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                break
            for hit in _roots_in(frontier, extra_roots, index):
                n = origin[id(hit.top)]
                if open_(n):
                    found[n] = hit
                    routes.found_root()
            frontier = [o for o in frontier if open_(origin[id(o)])]
            ignore.add(id(frontier))  # the list itself refers to every node it holds
            if not frontier:
                break
            depth += 1
            referrers = gc.get_referrers(*frontier)
            ignore.add(id(referrers))
            frontier_ids = {id(o) for o in frontier}
            next_frontier: list[object] = []
            ignore.add(id(next_frontier))
            cap = min(limits.max_frontier * len(frontier_ids), limits.max_frontier * 8)
            for holder in referrers:
                hid = id(holder)
                if hid in ignore:
                    continue
                if isinstance(holder, types.FrameType) and own_frame(holder):
                    continue
                # One holder can hold several walks' nodes (a list of all the survivors): the
                # first open walk owns it, the others join that walk there.
                for held in _all_held(holder, frontier_ids, nodes):
                    n = origin[id(held)]
                    if not open_(n):
                        continue
                    if hid in origin:  # another walk got here first: its path may serve
                        m = origin[hid]
                        # Every join is kept: two survivors that hold each other (a queue and its
                        # proxies, a user and its timer) join each other's walks, and the root is
                        # whichever walk of the group finds one.
                        if m != n:
                            routes.join(n, m, hid, id(held))
                        continue
                    origin[hid] = n
                    via[hid] = held
                    nodes[hid] = holder
                    if is_stop(holder):
                        found[n] = _Found(holder, None, None, None)
                        routes.found_root()
                    elif len(next_frontier) < cap:
                        next_frontier.append(holder)
            del referrers
            frontier = next_frontier
        limited = depth >= limits.max_depth
        return [
            Retention.unwalked("budget")
            if timed_out and open_(n)
            else _describe(t, *routes.resolve(n), limited, graph)
            for n, t in enumerate(targets)
        ]
    finally:
        # Nothing the search touched may outlive it.
        via.clear()
        nodes.clear()
        origin.clear()
        found.clear()
        routes.clear()
        frontier = []
        del here
        if own_index:
            index.close()


def _all_held(holder: object, frontier_ids: set[int], nodes: Mapping[int, object]) -> list[object]:
    try:
        return [nodes[id(ref)] for ref in gc.get_referents(holder) if id(ref) in frontier_ids]
    except Exception:
        return []


def _roots_in(
    frontier: list[object], extra_roots: Mapping[int, RootInfo], index: FrameIndex
) -> list[_Found]:
    hits: list[_Found] = []
    for obj in frontier:
        info = extra_roots.get(id(obj))
        if info is not None:
            hits.append(_Found(obj, info, None, None))
            continue
        hit = index.by_id.get(id(obj))
        if hit is not None:
            frame, name, frame_info = hit
            hits.append(_Found(obj, frame_info, frame, name))
    return hits


def _describe(
    target: object,
    found: _Found | None,
    via: Mapping[int, object],
    depth_limited: bool,
    graph: bool = False,
) -> Retention:
    if found is None:
        return Retention(
            kind=kinds.UNKNOWN,
            root="no root found within the search limits"
            if depth_limited
            else "nothing that Python can see refers to it (held from C?)",
            path=(describe.short(target),),
            depth_limited=depth_limited,
            rootless=True,
        )
    chain: list[object] = [found.top]
    while chain[-1] is not target and id(chain[-1]) in via:
        chain.append(via[id(chain[-1])])
    if found.frame is not None:
        lines = [
            describe.short(found.frame),
            f"local {found.local!r} -> {describe.short(found.top)}",
        ]
    else:
        lines = [describe.short(found.top)]
    i = 0
    while i + 1 < len(chain):
        parent, child = chain[i], chain[i + 1]
        # "module -> its __dict__ -> value" reads better as "module.name -> value".
        if i + 2 < len(chain) and is_namespace_of(parent, child):
            child = chain[i + 2]
            i += 1
        lines.append(f"{edge_label(parent, child)} -> {describe.short(child)}")
        i += 1
    if chain[-1] is not target:
        # Joined onto another survivor's walk off its path: the root is likely the same, the way
        # on from that survivor was not followed.
        lines.append(f"... -> {describe.short(target)}")
    root = kinds.classify(chain, found.info, found.top)
    dot = None
    if graph:
        drawn = with_namespaces(chain)
        labels = [edge_label(parent, child) for parent, child in pairwise(drawn)]
        dot = graphs.chain_dot(drawn, root.description, labels)
        drawn.clear()
    # Held by the older thread's frame itself, not by something on the path below it.
    busy = (
        found.info is not None
        and found.info.busy_elsewhere
        and root.holder is not None
        and root.holder == found.info.holder
    )
    return Retention(
        kind=root.kind,
        root=root.description,
        path=tuple(lines),
        dot=dot,
        busy_elsewhere=busy,
        root_id=root.holder,
        root_tag=root.tag,
        root_site=root.site,
    )
