"""Explaining survivors: group them by type, find what holds a few of each, size and judge them.

Every choice that depends on the session (which types to count without a search, whether the time
for explaining suspects is spent, whether the test left something running) comes in as an
``ExplainPolicy``: this module keeps no state between checks.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from . import provenance
from .cycles import Series
from .findings import LeakGroup, group_verdict
from .frames import FrameIndex
from .kinds import ACTIVE_KINDS, FIXTURE, RootInfo
from .retention import NotWalked, Retention, SearchLimits, find_path, find_paths
from .running import dict_of
from .settle import BUSY_FIRST_PAUSE, look_again
from .sizes import Retained, retained_size
from .watch import WatchFilter, qualified_name

_NUMBERS = re.compile(r"\d+|\['[^']*'\]")


@dataclass(frozen=True)
class ExplainPolicy:
    strict: bool = True
    max_traced_per_type: int = 3
    limits: SearchLimits = field(default_factory=SearchLimits)
    graphs: bool = False  # draw each traced path (a full collection per path)
    sizes: bool = True  # measure what each leaked group retains
    settle: float = 0.25  # seconds a second look at passing or rootless survivors may take
    # Types counted, not walked, because they were explained earlier in the session (lenient).
    skip_types: frozenset[str] = frozenset()
    # False once the session's time for explaining suspects is spent (lenient).
    walk_suspects: bool = True
    # The test left something running: what a fixture holds may be held by a timer as well.
    something_running: bool = False
    # Seconds the walk of passive suspects may take (what is left of the session's budget);
    # None: no bound (strict, or the test left something running).
    walk_seconds: float | None = None


class Explainer:
    """One check's explanation of its survivors.

    ``roots`` names the holders the search stops at beyond what it finds by itself (handlers kept
    in C, wider-scoped fixtures), and ``frames`` indexes the running threads' frames: both are
    made only when something is to be walked. ``quiet`` is called before each read of the heap
    (the frames and the walk, then the sizes): it lets a timer's tick in flight finish.
    """

    def __init__(
        self,
        watch: WatchFilter,
        policy: ExplainPolicy,
        *,
        roots: Callable[[], Mapping[int, RootInfo]],
        frames: Callable[[], FrameIndex],
        site_of: Callable[[object], str | None],
        first_site_of: Callable[[type], str | None] | None = None,
        quiet: Callable[[], None] = lambda: None,
    ) -> None:
        self.watch = watch
        self._quiet = quiet
        self.policy = policy
        self._roots = roots
        self._new_frames = frames
        self._site_of = site_of
        self._first_site_of = first_site_of
        self._extra: Mapping[int, RootInfo] = {}
        self._frames: FrameIndex | None = None
        # Ids of the types whose walks the budget ended before they found anything: not the
        # types, which a class made by the test would keep alive with all it closes over.
        self._cut: set[int] = set()

    def explain(
        self, survivors: list[object], series: Series | None
    ) -> tuple[tuple[LeakGroup, ...], Retained | None]:
        """The groups of these survivors, leaks first, largest first, and what they retain
        together (each byte once), when sizes are measured."""
        by_type = _by_type(survivors)
        if series is not None:
            # Under cycles, only what grew in every counted run is a leak; what appeared once
            # (a cache warmed up by the first runs) is not.
            growing = series.growing_types()
            for tp in [tp for tp in by_type if qualified_name(tp) not in growing]:
                del by_type[tp]
        if all(map(self._not_walked, by_type)):
            # Nothing to walk: no roots to gather, no frames to index.
            counted = [self._counted(tp, len(objs)) for tp, objs in by_type.items()]
            by_type.clear()
            return tuple(counted), None
        # The checker's own containers refer to the survivors; the search must not stop there,
        # and the sizes must not count them as holders: each survivor is in ``survivors`` and in
        # its type's list.
        ignore = {id(survivors), id(by_type), *(id(v) for v in by_type.values())}
        caller_refs = dict.fromkeys(map(id, survivors), 2)
        groups: list[LeakGroup] = []
        walked: dict[type, list[Retention]] = {}
        sizes: dict[type, Retained] = {}
        total: Retained | None = None
        self._quiet()
        self._extra = self._roots()
        self._frames = self._new_frames()
        try:
            walked = self._walk(by_type, ignore)
            if self.policy.sizes:
                # Describing the paths reads files (where a site is): other threads run then.
                self._quiet()
                sizes, total = _sizes(
                    {tp: objs for tp, objs in by_type.items() if not self._not_walked(tp)},
                    caller_refs,
                )
            within = _within(by_type, sizes, walked)
            # No loop variable may name a survivor after the search: indexing keeps none.
            for tp in list(by_type):
                groups.extend(
                    self._groups(
                        tp, by_type[tp], walked.get(tp, []), series, sizes.get(tp), within.get(tp)
                    )
                )
        finally:
            self._frames.close()
            self._frames = None
            self._extra = {}
            by_type.clear()
            walked.clear()
            sizes.clear()
        groups.sort(
            key=lambda g: (
                g.verdict != "leak",
                g.retained_within is not None,  # what retains the others comes first
                -(g.retained_bytes or 0),
                -g.count,
                g.type,
            )
        )
        return tuple(groups), total

    def drop_garbage(
        self, groups: tuple[LeakGroup, ...], survivors: list[object]
    ) -> tuple[LeakGroup, ...]:
        """Survivors with no root at all may be garbage that only a full collection frees.

        The windows collect the young generations only; an old cycle that became garbage during
        the test could still hold new objects. A thread that is ending (a cancelled timer, on a
        loaded machine) can also hold what its frames held from C for a moment after it left
        every list Python shows: so they are looked at again, briefly, before they are called
        held by nothing.
        """
        rootless = {g.type for g in groups if g.retentions and g.retentions[0].rootless}
        if not rootless:
            return groups
        still = look_again(survivors, rootless, self.policy.settle, first=0.0)
        return tuple(g for g in groups if g.type not in rootless or g.type in still)

    def drop_passing(
        self, groups: tuple[LeakGroup, ...], survivors: list[object]
    ) -> tuple[LeakGroup, ...]:
        """Survivors held only by a running frame of a thread older than the test (a shared
        pool's worker finishing the test's work item) are looked at again, briefly: a frame
        that lets go was passing through, not leaking."""
        passing = {
            g.type for g in groups if g.retentions and all(r.busy_elsewhere for r in g.retentions)
        }
        if not passing:
            return groups
        still = look_again(survivors, passing, self.policy.settle, first=BUSY_FIRST_PAUSE)
        return tuple(g for g in groups if g.type not in passing or g.type in still)

    def _not_walked(self, tp: type) -> bool:
        """A survivor type that is only counted: it could only be a suspect, never a leak, and
        it was explained before or the time for explaining suspects is spent."""
        if self.policy.strict or self.watch.is_named(tp):
            return False
        if id(tp) in self._cut:
            return True
        return not self.policy.walk_suspects or qualified_name(tp) in self.policy.skip_types

    def _counted(self, tp: type, count: int) -> LeakGroup:
        """A suspect counted, not walked: walking costs heap passes, and a large suite whose
        every test leaves the same cached object would pay them thousands of times."""
        why: NotWalked = "repeat" if qualified_name(tp) in self.policy.skip_types else "budget"
        retention = Retention.unwalked(why)
        return LeakGroup(
            type=qualified_name(tp),
            count=count,
            kind=retention.kind,
            verdict="suspect",
            retentions=(retention,),
            untraced=count,
        )

    def _walk(
        self, by_type: Mapping[type, list[object]], ignore: set[int]
    ) -> dict[type, list[Retention]]:
        """Paths for a few survivors of each type, all found in one walk."""
        limit = self.policy.max_traced_per_type
        targets = [
            o for tp, objs in by_type.items() if not self._not_walked(tp) for o in objs[:limit]
        ]
        if not targets:
            return {}
        seconds = self.policy.walk_seconds
        # Only a walk of suspects alone is bounded: a named type's survivors are leaks, and a
        # leak is always explained.
        bounded = (
            seconds is not None
            and not self.policy.strict
            and not any(self.watch.is_named(type(t)) for t in targets)
        )
        rets = find_paths(
            targets,
            extra_roots=self._extra,
            ignore=ignore,
            limits=self.policy.limits,
            frames=self._frames,
            graph=self.policy.graphs,
            deadline=time.perf_counter() + seconds if bounded and seconds is not None else None,
        )
        walked: dict[type, list[Retention]] = {}
        try:
            # A type none of whose walks got anywhere before the budget ran out is counted.
            reached = {type(targets[n]) for n, ret in enumerate(rets) if ret.not_walked is None}
            self._cut = {id(type(t)) for t in targets} - {id(tp) for tp in reached}
            for n, ret in enumerate(rets):
                if ret.not_walked is not None:
                    continue
                if ret.kind == FIXTURE and self.policy.something_running:
                    ret = self._behind_fixture(targets[n], ret, ignore | {id(targets)})
                walked.setdefault(type(targets[n]), []).append(ret)
        finally:
            targets.clear()
        return walked

    def _behind_fixture(self, target: object, ret: Retention, ignore: set[int]) -> Retention:
        """Held by a wider fixture (or pytest) here; but is it held by anything else, a timer say?
        Looked again with those holders out of the way (only when the test left something
        running: otherwise there is no timer to find)."""
        owned = {key for key, info in self._extra.items() if info.kind == FIXTURE}
        other = find_path(
            target,
            extra_roots={k: v for k, v in self._extra.items() if k not in owned},
            ignore=ignore | owned,
            limits=self.policy.limits,
            frames=self._frames,
            graph=self.policy.graphs,
        )
        # A passive holder is the same one; what the fixture itself runs is the fixture's.
        fixtures = other.kind not in ACTIVE_KINDS or provenance.live_fixture(other.root_tag)
        return ret if fixtures else other

    def _groups(
        self,
        tp: type,
        objs: list[object],
        rets: list[Retention],
        series: Series | None,
        retained: Retained | None,
        within: str | None,
    ) -> Iterable[LeakGroup]:
        if self._not_walked(tp):
            yield self._counted(tp, len(objs))
            return
        created = next((site for o in objs if (site := self._site_of(o)) is not None), None)
        if created is None and self._first_site_of is not None:
            first_made = self._first_site_of(tp)
            created = f"{first_made} (where this test made its first one)" if first_made else None
        by_kind: dict[str, list[Retention]] = {}
        for ret in rets:
            by_kind.setdefault(ret.kind, []).append(ret)
        untraced = max(0, len(objs) - self.policy.max_traced_per_type)
        named = self.watch.is_named(tp)
        name = qualified_name(tp)
        per_run = tuple(series.growing_types().get(name, ())) if series is not None else ()
        first = True
        for kind, kind_rets in by_kind.items():
            verdict = group_verdict(
                kind,
                strict=self.policy.strict,
                named=named,
                busy_elsewhere=all(r.busy_elsewhere for r in kind_rets),
            )
            if verdict is None:
                continue
            extra_count = untraced if first else 0
            first = False
            yield LeakGroup(
                type=name,
                count=len(kind_rets) + extra_count,
                kind=kind,
                verdict=verdict,
                retentions=tuple(_distinct(kind_rets)),
                untraced=extra_count,
                retained_bytes=retained.bytes if retained is not None else None,
                retained_complete=retained.complete if retained is not None else True,
                per_run=per_run,
                created=created,
                retained_within=within,
                root_created=next((r.root_site for r in kind_rets if r.root_site), None),
            )


def _sizes(
    by_type: Mapping[type, list[object]], caller_refs: Mapping[int, int]
) -> tuple[dict[type, Retained], Retained | None]:
    """What each type's survivors retain (and which other survivors among it), and what all of
    them retain together: one more walk, only when there are several types and none of them
    retains all the others."""
    everyone = [o for objs in by_type.values() for o in objs]
    ids = frozenset(map(id, everyone))
    # ``everyone`` is one more reference to each survivor, the caller's own.
    refs = {key: caller_refs.get(key, 0) + 1 for key in ids}
    try:
        sizes = {
            tp: retained_size(objs, caller_refs=refs, contains=ids) for tp, objs in by_type.items()
        }
        if len(sizes) <= 1:
            return sizes, next(iter(sizes.values()), None)
        # A type whose survivors retain every other survivor retains what all of them do: its
        # walk reached the same objects and found the same ones shared (the seed's users retain
        # their timer wrappers). The walk of all of them would be a third walk of 400 MB there.
        whole = next((r for r in sizes.values() if r.complete and r.holds >= ids), None)
        if whole is not None:
            return sizes, Retained(whole.bytes, whole.objects, whole.complete)
        return sizes, retained_size(everyone, caller_refs=refs)
    finally:
        everyone.clear()


def _within(
    by_type: Mapping[type, list[object]],
    sizes: Mapping[type, Retained],
    walked: Mapping[type, list[Retention]],
) -> dict[type, str]:
    """For each type whose survivors are all retained by another type's, that type's name (the
    largest such, for a type that two others retain).

    Two types may retain each other (a session and its timer wrapper, each referring to the
    other): the larger is the outer one; at equal sizes (to three digits), the one whose objects
    refer to more of the other types' objects directly (a user holds its timer in an attribute;
    the timer holds the user through a bound method), then the one that the path from the root
    reaches last.
    Decided by these, never by the order in which the heap listed them; the path comes last
    because a callback running at the moment of the search changes where it starts.
    """

    def depth(tp: type) -> int:
        paths = walked.get(tp)
        return len(paths[0].path) if paths else 0

    types_of = {id(o): tp for tp in sizes for o in by_type[tp]}

    def holds_directly(tp: type) -> int:
        return len(
            {
                other
                for o in by_type[tp]
                for ref in _attributes(o)
                if (other := types_of.get(id(ref))) is not None and other is not tp
            }
        )

    direct = {tp: holds_directly(tp) for tp in sizes}
    types_of.clear()
    ranked = sorted(
        sizes,
        key=lambda tp: (-_coarse(sizes[tp].bytes), -direct[tp], -depth(tp), qualified_name(tp)),
    )
    found: dict[type, str] = {}
    # The lesser types first: of two that retain each other, the first ranked is the outer one.
    for tp in reversed(ranked):
        ids = set(map(id, by_type[tp]))
        for outer in ranked:
            if outer is tp or found.get(outer) == qualified_name(tp):
                continue
            if ids <= sizes[outer].holds:
                found[tp] = qualified_name(outer)
                break
    return found


def _coarse(size: int) -> int:
    """A size to three significant digits. Two types that retain each other retain the same
    memory, give or take what a timer tick in flight allocates (a new timer, its lock): that
    must not decide which is the outer one."""
    return round(size, 3 - len(str(size))) if size >= 1000 else size


def _attributes(obj: object) -> list[object]:
    """What an object refers to itself, its ``__dict__``'s values included (before 3.13 an
    instance's attributes live in that dict; from 3.13, mostly in the instance)."""
    refs = gc.get_referents(obj)
    if not any(type(r) is dict for r in refs):
        return refs  # reading __dict__ would make one (3.13 keeps attributes inline)
    own = dict_of(obj)
    return [*refs, *own.values()] if isinstance(own, dict) and any(r is own for r in refs) else refs


def holding(groups: Iterable[LeakGroup]) -> set[int]:
    """id() of every root that holds a survivor of these groups."""
    return {r.root_id for g in groups for r in g.retentions if r.root_id is not None}


def _by_type(objs: list[object]) -> dict[type, list[object]]:
    grouped: dict[type, list[object]] = {}
    for obj in objs:
        grouped.setdefault(type(obj), []).append(obj)
    return grouped


def _distinct(rets: list[Retention]) -> list[Retention]:
    """Paths that differ only in indexes, ids or line numbers are the same path."""
    seen: set[tuple[str, ...]] = set()
    out: list[Retention] = []
    for r in rets:
        shape = tuple(_NUMBERS.sub("#", step) for step in r.path)
        if shape not in seen:
            seen.add(shape)
            out.append(r)
    return out
