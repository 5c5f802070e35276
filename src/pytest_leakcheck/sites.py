"""Where an object was created: the first frame of the project's own code that made it.

Known only when the block ran under ``--leakcheck-trace``. tracemalloc cannot tell it on every
interpreter (on 3.11 ``get_object_traceback`` misses instances with inline attributes), so a
profile function notes, for every ``__init__`` that runs and for every timer handle, task or
``sched`` event returned by the calls that make them, the caller's file and line. A profile
function slows every call down, so this is an option, and the report says how to switch it on.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

# Frames in these directories belong to the standard library or installed packages, not to the
# code that made the object: a Timer is made by the caller of threading.Timer(...).
_LIBRARY_DIRS = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
_NOT_USER = tuple(
    os.path.normcase(os.path.realpath(p)) + os.sep
    for p in (*_LIBRARY_DIRS, os.path.dirname(__file__))
)

# Calls whose return value is the object to tag: asyncio's handles and tasks, sched's events.
_MAKERS = frozenset(
    {
        "call_later",
        "call_at",
        "call_soon",
        "call_soon_threadsafe",
        "create_task",
        "enter",
        "enterabs",
        "ensure_future",
    }
)

ProfileFunc = Callable[[FrameType, str, Any], object]


def _user(frame: FrameType | None) -> FrameType | None:
    while frame is not None:
        filename = frame.f_code.co_filename
        path = os.path.normcase(os.path.realpath(filename))
        if not filename.startswith("<") and not path.startswith(_NOT_USER):
            return frame
        frame = frame.f_back
    return None


class SiteRecorder:
    """Notes creation sites while installed; keeps ids and text only, never the objects."""

    def __init__(self, rootdir: str | None) -> None:
        self.rootdir = rootdir
        self.sites: dict[int, tuple[type, str]] = {}
        self._previous: ProfileFunc | None = None
        self.active = False

    def start(self) -> bool:
        """Install the profile function; refuse if another profiler is running."""
        if sys.getprofile() is not None:
            return False
        sys.setprofile(self._profile)
        threading.setprofile(self._profile)
        self.active = True
        return True

    def stop(self) -> None:
        if self.active:
            if sys.getprofile() == self._profile:
                sys.setprofile(None)
            threading.setprofile(None)
            self.active = False

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        try:
            if event == "call" and frame.f_code.co_name == "__init__":
                varnames = frame.f_code.co_varnames
                if varnames:
                    obj = frame.f_locals.get(varnames[0])
                    if obj is not None and id(obj) not in self.sites:
                        self._note(obj, frame.f_back)
            elif event == "return" and arg is not None and frame.f_code.co_name in _MAKERS:
                self._note(arg, frame.f_back)
        except Exception:  # the profile function must never disturb the profiled code
            pass

    def _note(self, obj: object, caller: FrameType | None) -> None:
        frame = _user(caller)
        if frame is not None:
            self.sites[id(obj)] = (type(obj), self._where(frame))

    def _where(self, frame: FrameType) -> str:
        filename = frame.f_code.co_filename
        shown = filename
        if self.rootdir:
            relative = os.path.relpath(filename, self.rootdir)
            shown = filename if relative.startswith("..") else relative
        line = linecache.getline(filename, frame.f_lineno).strip()
        where = f"{shown}:{frame.f_lineno} in {frame.f_code.co_name}"
        return f"{where}: {line}" if line else where

    def site_of(self, obj: object) -> str | None:
        found = self.sites.get(id(obj))
        # An id can be reused by a later object: trust it only for the same type.
        return found[1] if found is not None and found[0] is type(obj) else None

    def clear(self) -> None:
        self.sites.clear()
