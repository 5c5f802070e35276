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
from types import CodeType, FrameType
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


_USER_FILES: dict[str, bool] = {}


def _is_user_file(filename: str) -> bool:
    try:
        return _USER_FILES[filename]
    except KeyError:
        path = os.path.normcase(os.path.realpath(filename))
        answer = not filename.startswith("<") and not path.startswith(_NOT_USER)
        _USER_FILES[filename] = answer
        return answer


def _user(frame: FrameType | None) -> FrameType | None:
    while frame is not None:
        if _is_user_file(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return None


class SiteRecorder:
    """Notes creation sites while installed; keeps ids and text only, never the objects."""

    def __init__(self, rootdir: str | None, wanted: Callable[[type], bool]) -> None:
        self.rootdir = rootdir
        self._wanted = wanted
        self._types: dict[type, bool] = {}
        # id -> (type, code, line): formatted only for the few objects a report asks about.
        self.sites: dict[int, tuple[type, CodeType, int]] = {}
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
        tp = type(obj)
        wanted = self._types.get(tp)
        if wanted is None:
            wanted = self._types[tp] = self._wanted(tp)
        if wanted:
            frame = _user(caller)
            if frame is not None:
                self.sites[id(obj)] = (tp, frame.f_code, frame.f_lineno)

    def _where(self, code: CodeType, lineno: int) -> str:
        filename = code.co_filename
        shown = filename
        if self.rootdir:
            relative = os.path.relpath(filename, self.rootdir)
            shown = filename if relative.startswith("..") else relative
        line = linecache.getline(filename, lineno).strip()
        where = f"{shown}:{lineno} in {code.co_name}"
        return f"{where}: {line}" if line else where

    def site_of(self, obj: object) -> str | None:
        found = self.sites.get(id(obj))
        # An id can be reused by a later object: trust it only for the same type.
        if found is None or found[0] is not type(obj):
            return None
        return self._where(found[1], found[2])

    def clear(self) -> None:
        self.sites.clear()
        self._types.clear()
