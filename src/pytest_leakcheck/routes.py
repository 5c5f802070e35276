"""Which walk's root serves another's: the joins between the walks of one search.

The search walks back from every survivor at once. A walk that reaches a node another walk
already owns *joins* it there: whatever holds that node holds both survivors. The join serves
only when the node lies on the other walk's path from its root. A node on a side branch (a dead
end such as a caller's list, or a branch the other walk never finished) says nothing about what
holds it, and a path through it would end at the other survivor instead of this one.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

Join = tuple[int, int, int]  # (other walk, id(node), id(held)): node is the other walk's


class _HasTop(Protocol):
    top: object


F = TypeVar("F", bound=_HasTop)


@dataclass(frozen=True)
class _Route:
    walk: int  # the walk whose root serves
    # At each join node, the id of the step towards this walk's target: ids only, so that the
    # search, which asks the heap for referrers, never finds this bookkeeping among them.
    turns: dict[int, int]
    on_path: frozenset[int]  # ids of the nodes from the root to this walk's target


class Routes(Generic[F]):
    """The joins of one search, and which walks they resolve; holds ids only, plus the
    search's own mappings (``found``, ``via``, ``nodes``), which the search clears."""

    def __init__(
        self,
        targets: Sequence[object],
        found: Mapping[int, F],
        via: Mapping[int, object],
        nodes: Mapping[int, object],
    ) -> None:
        self._targets = targets
        self._found = found
        self._via = via
        self._nodes = nodes
        self._joins: dict[int, list[Join]] = {}
        self._seen: set[tuple[int, int, int]] = set()  # (walk, other walk, node)
        self._resolved: dict[int, _Route] | None = None

    def join(self, n: int, m: int, node: int, held: int) -> None:
        if (n, m, node) in self._seen:
            return
        self._seen.add((n, m, node))
        self._joins.setdefault(n, []).append((m, node, held))
        # Only a join onto a resolved walk's path resolves anything now; a join onto an open
        # walk is weighed when that walk finds its root (which resets everything).
        other = self._resolved.get(m) if self._resolved is not None else None
        if other is not None and node in other.on_path:
            self._resolved = None

    def found_root(self) -> None:
        self._resolved = None

    def done(self, n: int) -> bool:
        """Walk ``n`` found a root, or joined a walk that did on that walk's path."""
        return n in self._all()

    def resolve(self, n: int) -> tuple[F | None, Mapping[int, object]]:
        """The root of walk ``n`` and the steps from it towards its target.

        A walk whose joins are all off their walks' paths gets the nearest of them still: the
        root is likely shared, and the path then ends at the other survivor, which the
        description says.
        """
        route = self._all().get(n) or self._nearest(n)
        if route is None:
            return None, self._via
        turns = {node: self._nodes[held] for node, held in route.turns.items()}
        return self._found[route.walk], ChainMap(turns, dict(self._via))

    def has_joins(self, n: int) -> bool:
        return bool(self._joins.get(n))

    def clear(self) -> None:
        self._joins.clear()
        self._seen.clear()
        self._resolved = None

    def _all(self) -> dict[int, _Route]:
        if self._resolved is not None:
            return self._resolved
        resolved: dict[int, _Route] = {}
        for k, hit in self._found.items():
            on_path = self._path(k, hit.top, {})
            if on_path is not None:
                resolved[k] = _Route(k, {}, on_path)
        # In rounds, so a walk takes the fewest joins to a root.
        while True:
            before = dict(resolved)
            for k, joins in self._joins.items():
                if k in resolved:
                    continue
                for m, node, held in joins:
                    other = before.get(m)
                    if other is None or node not in other.on_path:
                        continue
                    turns = {**other.turns, node: held}
                    on_path = self._path(k, self._found[other.walk].top, turns)
                    if on_path is not None:
                        resolved[k] = _Route(other.walk, turns, on_path)
                        break
            if len(resolved) == len(before):
                break
        self._resolved = resolved
        return resolved

    def _nearest(self, n: int) -> _Route | None:
        came: dict[int, tuple[int, Join]] = {}
        queue = [n]
        seen = {n}
        while queue:
            current = queue.pop(0)
            for join in self._joins.get(current, ()):
                m = join[0]
                if m in seen:
                    continue
                seen.add(m)
                came[m] = (current, join)
                if m in self._found:
                    top, turns = m, {}
                    while m != n:
                        m, (_, node, held) = came[m]
                        turns[node] = held
                    return _Route(top, turns, frozenset())
                queue.append(m)
        return None

    def _path(self, k: int, top: object, turns: Mapping[int, int]) -> frozenset[int] | None:
        target = self._targets[k]
        ids: list[int] = []
        node: object | None = top
        for _ in range(len(self._nodes) + 1):
            if node is None:
                return None
            ids.append(id(node))
            if node is target:
                return frozenset(ids)
            key = id(node)
            node = self._nodes[turns[key]] if key in turns else self._via.get(key)
        return None
