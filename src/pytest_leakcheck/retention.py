"""The path from a root to a survivor: a bounded breadth-first search over referrers.

``gc.get_referrers(*objs)`` walks the whole heap once per call and compares every reference with
each of ``objs`` (``../shared/FACTS.md``), so the search asks it once per level with a frontier of
bounded width, and stops at the first level that reaches a root. Roots are what lives on by itself:
modules, classes, the frames that running threads are executing (no object refers to those, so their
locals are matched by hand), and holders kept in C (signal handlers, wider-scoped fixtures that the
caller passes in). What the search keeps is released before it returns.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import types
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from . import describe, graphs, roots
from .roots import RootInfo

_PACKAGE_DIR = __file__.rpartition("/")[0] if "/" in __file__ else ""
_SNAPSHOT_LOCALS = sys.version_info < (3, 13)  # f_locals is a write-through proxy from 3.13 on


@dataclass(frozen=True)
class Retention:
    """One explained survivor: a root kind and the path, as text only (no live references)."""

    kind: str
    root: str
    path: tuple[str, ...]
    depth_limited: bool = False
    dot: str | None = None  # the path as a Graphviz graph, when graphs were asked for
    busy_elsewhere: bool = False  # held by a running frame of a thread older than the check


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


def _own_frame(frame: types.FrameType) -> bool:
    return bool(_PACKAGE_DIR) and frame.f_code.co_filename.startswith(_PACKAGE_DIR)


def _frame_locals(frame: types.FrameType) -> Mapping[str, object]:
    try:
        return frame.f_locals
    except Exception:
        return {}


def _release_snapshot(frame: types.FrameType) -> None:
    # Before 3.13, reading f_locals of a function frame stores a snapshot dict on the frame that
    # keeps every local alive until the function returns. The next read rebuilds it, so emptying
    # it now undoes what the search did.
    if _SNAPSHOT_LOCALS and frame.f_code.co_flags & 0x1:  # CO_OPTIMIZED
        try:
            locals_dict = frame.f_locals
            if isinstance(locals_dict, dict):
                locals_dict.clear()
        except Exception:
            pass


_HANDLE_RUN = asyncio.Handle._run.__code__


def _persistent_frames(top: types.FrameType) -> list[types.FrameType]:
    """A thread's frames, minus those of an event loop callback that is running right now.

    A callback's frames hold their objects only while it runs; what keeps it coming back is the
    loop's handle, which the search reaches through the loop frame below it. Naming the thread
    instead would blame the loop's thread for the handle's leak.
    """
    stack: list[types.FrameType] = []
    f: types.FrameType | None = top
    while f is not None:
        stack.append(f)
        f = f.f_back
    for depth, frame in enumerate(stack):
        if frame.f_code is _HANDLE_RUN:
            return stack[depth:]
    return stack


class _FrameIndex:
    """Which local variable of which running frame holds an object, by id."""

    def __init__(
        self, foreign: frozenset[int] = frozenset(), older: frozenset[int] = frozenset()
    ) -> None:
        # Threads that something outside the check owns (a wider-scoped fixture's server):
        # their frames hold what that owner holds.
        self._foreign = foreign
        # Threads that ran before the check began: a pool worker running the test's work item.
        self._older = older
        self.by_id: dict[int, tuple[types.FrameType, str, RootInfo]] = {}
        frames = sys._current_frames()
        try:
            self._index_threads(frames)
        finally:
            # This very frame is among the values: left in a local, it would be a reference cycle
            # keeping every caller's locals (the survivors among them) alive until a collection.
            frames.clear()

    def _index_threads(self, frames: Mapping[int, types.FrameType]) -> None:
        names = {t.ident: t for t in threading.enumerate()}
        current = threading.get_ident()
        for ident, top in frames.items():
            info = self._thread_root(names.get(ident), ident == current)
            if ident in self._foreign:
                info = RootInfo(roots.FIXTURE, f"a wider-scoped fixture's {info.description}")
            elif ident in self._older and ident != current:
                info = RootInfo(info.kind, info.description, busy_elsewhere=True)
            for f in _persistent_frames(top):
                if not _own_frame(f):
                    self._index(f, info)

    @staticmethod
    def _thread_root(thread: threading.Thread | None, current: bool) -> RootInfo:
        if thread is None:
            return RootInfo(roots.UNKNOWN, "a frame of a thread that threading does not know")
        if current:
            return RootInfo(
                roots.UNKNOWN, f"a local variable in the test runner's thread {thread.name!r}"
            )
        kind = roots.TIMER if isinstance(thread, threading.Timer) else roots.THREAD
        return RootInfo(kind, describe.root(thread))

    def _index(self, frame: types.FrameType, info: RootInfo) -> None:
        if not frame.f_code.co_flags & 0x1:  # not CO_OPTIMIZED: module or class body code
            # Its "locals" are a module's globals: the module is the root to name, and the walk
            # reaches it through the namespace.
            return
        for name, value in list(_frame_locals(frame).items()):
            self.by_id.setdefault(id(value), (frame, name, info))
        _release_snapshot(frame)

    def close(self) -> None:
        for frame, _, _ in self.by_id.values():
            _release_snapshot(frame)
        self.by_id.clear()


def edge_label(parent: object, child: object) -> str:
    """How ``parent`` refers to ``child``: an attribute, key, index, closure cell..."""
    try:
        return _edge_label(parent, child)
    except Exception:
        return "(reference)"


def _edge_label(parent: object, child: object) -> str:
    if isinstance(parent, dict):
        for key, value in parent.items():
            if value is child:
                return f"[{describe.safe_repr(key, 40)}]"
            if key is child:
                return "(key)"
        return "(entry)"
    if isinstance(parent, (list, tuple)):
        for i, value in enumerate(parent):
            if value is child:
                return f"[{i}]"
        return "(item)"
    if isinstance(parent, (set, frozenset)):
        return "(member)"
    if isinstance(parent, types.MethodType):
        return ".__self__" if parent.__self__ is child else ".__func__"
    if isinstance(parent, types.BuiltinMethodType):
        return ".__self__"
    if isinstance(parent, types.FunctionType):
        return _function_edge(parent, child)
    if isinstance(parent, types.CellType):
        return ".cell_contents"
    if isinstance(parent, types.FrameType):
        for name, value in _frame_locals(parent).items():
            if value is child:
                return f"local {name!r}"
        return "(frame)"
    if isinstance(parent, types.TracebackType):
        return ".tb_frame" if parent.tb_frame is child else ".tb_next"
    if isinstance(parent, (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)):
        frame = getattr(parent, "cr_frame", None) or getattr(parent, "gi_frame", None)
        if frame is None:
            frame = getattr(parent, "ag_frame", None)
        if frame is not None:
            for name, value in _frame_locals(frame).items():
                if value is child:
                    return f"local {name!r}"
        return "(frame)"
    if isinstance(parent, type):
        for name, value in parent.__dict__.items():
            if value is child:
                return f".{name}"
        return "(class reference)"
    attrs = _instance_dict(parent)
    if attrs is child:
        return ".__dict__"
    if attrs is not None:
        for name, value in attrs.items():
            if value is child:
                return f".{name}"
    for name in _c_level_attributes(type(parent)):
        try:
            value = object.__getattribute__(parent, name)
        except Exception:
            continue
        if value is child:
            return f".{name}"
        # Some C getters build a fresh list of what the object holds (Future._callbacks gives
        # (callback, context) pairs): look one level in.
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if item is child or (isinstance(item, tuple) and id(child) in _identity(item)):
                    return f".{name}[{i}]"
    return "(reference)"


def _identity(items: tuple[object, ...]) -> list[int]:
    return [id(x) for x in items]


def _c_level_attributes(tp: type) -> list[str]:
    """Attributes stored in the object itself (slots, C struct members and getters).

    Properties are skipped: they run Python code, and a report must not.
    """
    names: list[str] = []
    for klass in getattr(tp, "__mro__", ()):
        for name, attr in vars(klass).items():
            c_level = isinstance(attr, (types.MemberDescriptorType, types.GetSetDescriptorType))
            if c_level and name not in ("__dict__", "__weakref__"):
                names.append(name)
    return names


def _function_edge(func: types.FunctionType, child: object) -> str:
    if func.__closure__:
        names = func.__code__.co_freevars
        for name, cell in zip(names, func.__closure__, strict=False):
            if cell is child:
                return f".__closure__ ({name})"
    if func.__defaults__ is child:
        return ".__defaults__"
    if func.__globals__ is child:
        return ".__globals__"
    return "(function reference)"


def _instance_dict(obj: object) -> dict[str, object] | None:
    try:
        d = object.__getattribute__(obj, "__dict__")
    except Exception:
        return None
    return d if isinstance(d, dict) else None


def _with_namespaces(chain: list[object]) -> list[object]:
    """The chain with the ``__dict__`` between an instance and its attribute put back.

    objgraph draws only the edges that ``gc.get_referents`` shows, and once a ``__dict__`` was
    read, an instance refers to its attributes through it.
    """
    drawn: list[object] = []
    for parent, child in zip(chain, [*chain[1:], None], strict=True):
        drawn.append(parent)
        namespace = _instance_dict(parent)
        if child is not None and namespace is not None and namespace is not child:
            referents = gc.get_referents(parent)
            if all(r is not child for r in referents) and any(r is namespace for r in referents):
                drawn.append(namespace)
    return drawn


def _is_namespace_of(owner: object, candidate: object) -> bool:
    if isinstance(owner, type):
        # A class shows its dict only through a mappingproxy; the real dict is its referent.
        return type(candidate) is dict and candidate.keys() == owner.__dict__.keys()
    return _instance_dict(owner) is candidate


def _is_stop(obj: object) -> bool:
    # Modules and classes are roots of a different kind; everything refers to classes (through
    # ob_type), so walking past one would flood the frontier.
    return isinstance(obj, (types.ModuleType, type))


def find_path(
    target: object,
    *,
    extra_roots: Mapping[int, RootInfo],
    ignore: set[int],
    limits: SearchLimits | None = None,
    frames: _FrameIndex | None = None,
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
    frames: _FrameIndex | None = None,
    graph: bool = False,
) -> list[Retention]:
    """Walk from every target at once back to roots: one heap pass per level for all of them.

    Survivors of one test are often held by one chain (a cached lexer and the rules it holds):
    a walk that reaches a node another target's walk already owns *joins* it, and its path is
    that walk's path down to the join, then its own.
    """
    limits = limits or SearchLimits()
    own_index = frames is None
    index = frames if frames is not None else _FrameIndex()
    via: dict[int, object] = {}  # id(holder) -> the object it holds, one step nearer a target
    origin: dict[int, int] = {id(t): n for n, t in enumerate(targets)}  # node -> target index
    nodes: dict[int, object] = {id(t): t for t in targets}
    found: dict[int, _Found] = {}
    # target -> every (other target, id(node), id(held)) where its walk reached another's node;
    # ids, not objects: the bookkeeping must not be a referrer the walk then follows
    joins: dict[int, list[_Join]] = {}
    closed: dict[int, bool] = {}  # per target, until a root or a join is added
    frontier: list[object] = list(nodes.values())
    here = sys._getframe()
    own = {id(via), id(origin), id(nodes), id(found), id(joins), id(here), id(index.by_id)}
    ignore = ignore | own | {id(frontier), id(targets)}
    depth = 0

    def open_(n: int) -> bool:
        # A walk is done when it found a root, or joined (through other walks) one that did.
        if n not in closed:
            closed[n] = _route(n, found, joins) is not None
        return not closed[n]

    try:
        while frontier and depth < limits.max_depth and any(map(open_, range(len(targets)))):
            for hit in _roots_in(frontier, extra_roots, index):
                n = origin[id(hit.top)]
                if open_(n):
                    found[n] = hit
                    closed.clear()
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
                if isinstance(holder, types.FrameType) and _own_frame(holder):
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
                        if m != n and all(j[0] != m for j in joins.get(n, ())):
                            joins.setdefault(n, []).append((m, hid, id(held)))
                            closed.clear()
                        continue
                    origin[hid] = n
                    via[hid] = held
                    nodes[hid] = holder
                    if _is_stop(holder):
                        found[n] = _Found(holder, None, None, None)
                        closed.clear()
                    elif len(next_frontier) < cap:
                        next_frontier.append(holder)
            del referrers
            frontier = next_frontier
        limited = depth >= limits.max_depth
        return [
            _describe(t, *_resolve(n, found, joins, via, nodes), limited, graph)
            for n, t in enumerate(targets)
        ]
    finally:
        # Nothing the search touched may outlive it.
        via.clear()
        nodes.clear()
        origin.clear()
        found.clear()
        joins.clear()
        closed.clear()
        frontier = []
        del here
        if own_index:
            index.close()


_Join = tuple[int, int, int]  # (other target's walk, id(node), id(held))


def _route(
    n: int, found: Mapping[int, _Found], joins: Mapping[int, list[_Join]]
) -> list[_Join] | None:
    """The joins from walk ``n`` to the nearest walk that found a root, or None."""
    if n in found:
        return []
    came: dict[int, tuple[int, _Join]] = {}
    queue = [n]
    seen = {n}
    while queue:
        current = queue.pop(0)
        for join in joins.get(current, ()):
            m = join[0]
            if m in seen:
                continue
            seen.add(m)
            came[m] = (current, join)
            if m in found:
                route: list[_Join] = []
                while m != n:
                    m, step = came[m]
                    route.append(step)
                return route[::-1]
            queue.append(m)
    return None


def _resolve(
    n: int,
    found: Mapping[int, _Found],
    joins: Mapping[int, list[_Join]],
    via: Mapping[int, object],
    nodes: Mapping[int, object],
) -> tuple[_Found | None, Mapping[int, object]]:
    """The root of target ``n`` and the steps toward it, following joins into other walks."""
    steps = dict(via)
    route = _route(n, found, joins)
    if route is None:
        return None, steps
    for m, node, held in route:
        steps[node] = nodes[held]  # at the join, turn towards this target's own walk
        n = m
    return found.get(n), steps


def _all_held(holder: object, frontier_ids: set[int], nodes: Mapping[int, object]) -> list[object]:
    try:
        return [nodes[id(ref)] for ref in gc.get_referents(holder) if id(ref) in frontier_ids]
    except Exception:
        return []


def _held_from(
    holder: object, frontier_ids: set[int], nodes: Mapping[int, object]
) -> object | None:
    try:
        for ref in gc.get_referents(holder):
            if id(ref) in frontier_ids:
                return nodes[id(ref)]
    except Exception:
        return None
    return None


def _roots_in(
    frontier: list[object], extra_roots: Mapping[int, RootInfo], index: _FrameIndex
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
            kind=roots.UNKNOWN,
            root="no root found within the search limits"
            if depth_limited
            else "nothing that Python can see refers to it (held from C?)",
            path=(describe.short(target),),
            depth_limited=depth_limited,
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
        if i + 2 < len(chain) and _is_namespace_of(parent, child):
            child = chain[i + 2]
            i += 1
        lines.append(f"{edge_label(parent, child)} -> {describe.short(child)}")
        i += 1
    kind, root_desc = roots.classify(chain, found.info, found.top)
    dot = None
    if graph:
        drawn = _with_namespaces(chain)
        labels = [edge_label(parent, child) for parent, child in pairwise(drawn)]
        dot = graphs.chain_dot(drawn, root_desc, labels)
        drawn.clear()
    busy = (
        found.info is not None and found.info.busy_elsewhere and root_desc == found.info.description
    )
    return Retention(kind=kind, root=root_desc, path=tuple(lines), dot=dot, busy_elsewhere=busy)
