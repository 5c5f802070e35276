"""Running frames as roots: which local variable of which thread's frame holds an object.

No object refers to the frame a thread is executing, so the search cannot reach those frames
through referrers; their locals are indexed by id before the search and matched by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
import types
from collections.abc import Mapping

from . import describe, kinds, provenance
from .kinds import RootInfo
from .sites import SNAPSHOT_LOCALS, where

_PACKAGE_DIR = __file__.rpartition("/")[0] if "/" in __file__ else ""


def own_frame(frame: types.FrameType) -> bool:
    return bool(_PACKAGE_DIR) and frame.f_code.co_filename.startswith(_PACKAGE_DIR)


def frame_locals(frame: types.FrameType) -> Mapping[str, object]:
    try:
        return frame.f_locals
    except Exception:
        return {}


def _function_locals(frame: types.FrameType) -> list[tuple[str, object]]:
    """A function frame's local variables, the snapshot that reading them left undone. None for
    module or class body code: its "locals" are a module's globals, and the module is the root
    to name (a walk reaches it through the namespace)."""
    if not frame.f_code.co_flags & 0x1:  # not CO_OPTIMIZED
        return []
    found = list(frame_locals(frame).items())
    _release_snapshot(frame)
    return found


def local_values(top: types.FrameType) -> list[object]:
    """The values of the local variables of ``top`` and the frames below it (the callers).

    A running frame's locals are not among its referents (``gc.get_referents``): the thread,
    not the frame object, owns them while it runs.
    """
    values: list[object] = []
    frame: types.FrameType | None = top
    while frame is not None:
        values.extend(value for _, value in _function_locals(frame))
        frame = frame.f_back
    return values


def _release_snapshot(frame: types.FrameType) -> None:
    # Before 3.13, reading f_locals of a function frame stores a snapshot dict on the frame that
    # keeps every local alive until the function returns. The next read rebuilds it, so emptying
    # it now undoes what the search did.
    if SNAPSHOT_LOCALS and frame.f_code.co_flags & 0x1:  # CO_OPTIMIZED
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


class FrameIndex:
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
                info = RootInfo(kinds.FIXTURE, f"a wider-scoped fixture's {info.description}")
            elif ident in self._older and ident != current:
                info = dataclasses.replace(info, busy_elsewhere=True)
            for f in _persistent_frames(top):
                if not own_frame(f):
                    self._index(f, info)

    @staticmethod
    def _thread_root(thread: threading.Thread | None, current: bool) -> RootInfo:
        if thread is None:
            return RootInfo(kinds.UNKNOWN, "a frame of a thread that threading does not know")
        if current:
            return RootInfo(
                kinds.UNKNOWN, f"a local variable in the test runner's thread {thread.name!r}"
            )
        kind = kinds.TIMER if isinstance(thread, threading.Timer) else kinds.THREAD
        site = provenance.site_of(thread)
        return RootInfo(
            kind,
            describe.root(thread),
            holder=id(thread),
            tag=provenance.tag_of(thread),
            site=where(site) if site is not None else None,
        )

    def _index(self, frame: types.FrameType, info: RootInfo) -> None:
        for name, value in _function_locals(frame):
            self.by_id.setdefault(id(value), (frame, name, info))

    def close(self) -> None:
        for frame, _, _ in self.by_id.values():
            _release_snapshot(frame)
        self.by_id.clear()
