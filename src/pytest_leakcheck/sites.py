"""Where something was created: the first frame of the project's own code that made it.

Two recorders of where the project's instances are made, both keeping ids and text, never the
objects:

* ``InitMonitor`` (Python 3.12 and later, on by default): ``sys.monitoring`` reports the start of
  the project's own ``__init__`` methods only, so nothing else in the process is slowed down. A
  class's ``__init__`` is reported for the first ``PER_INIT`` instances of each test and then
  switched off until the next test: a test that makes a million objects pays for a few.
* ``SiteRecorder`` (``--leakcheck-trace``; the only way on 3.10 and 3.11): a profile function notes
  every ``__init__`` and every timer handle, task or ``sched`` event the calls that make them
  return. It slows every call down.

Where a timer, thread, handle, task or event was made is recorded by ``provenance`` when it is
made, with the helpers here.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
import threading
import types
from collections.abc import Callable, Iterable
from types import CodeType, FrameType
from typing import Any

from .describe import shown_path

# Frames in these directories belong to the standard library, installed packages or their
# console scripts (the `pytest` command), not to the code that made the object: a Timer is made
# by the caller of threading.Timer(...).
_LIBRARY_DIRS = {
    sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib", "scripts")
}
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
# Where: the innermost user frame first, then up to two user frames that led to it; formatted only
# when a report asks (``where``).
Site = tuple[tuple[CodeType, int], ...]
_CALLERS = 2

_USER_FILES: dict[str, bool] = {}
SNAPSHOT_LOCALS = sys.version_info < (3, 13)  # f_locals is a write-through proxy from 3.13 on


def is_user_file(filename: str) -> bool:
    """A file of the project's own (or the test's) code: not the standard library, not an
    installed package, not this plugin."""
    try:
        return _USER_FILES[filename]
    except KeyError:
        path = os.path.normcase(os.path.realpath(filename))
        answer = not filename.startswith("<") and not path.startswith(_NOT_USER)
        _USER_FILES[filename] = answer
        return answer


def user_frame(frame: FrameType | None, depth: int = 1_000) -> FrameType | None:
    """The first frame of user code from ``frame`` outwards, looking at most ``depth`` frames."""
    while frame is not None and depth > 0:
        if is_user_file(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
        depth -= 1
    return None


def caller_site(skip: int, depth: int = 8) -> Site | None:
    """Where the user code that called into the library is (a few frames up, never more), with
    the user frames that led to it."""
    try:
        frame: FrameType | None = sys._getframe(skip + 1)
    except ValueError:
        return None
    return site_from(user_frame(frame, depth))


def site_from(frame: FrameType | None) -> Site | None:
    """A user frame and the user frames that called it."""
    found: list[tuple[CodeType, int]] = []
    while frame is not None and len(found) <= _CALLERS:
        if is_user_file(frame.f_code.co_filename):
            found.append((frame.f_code, frame.f_lineno))
        frame = frame.f_back
    return tuple(found) or None


def where(site: Site) -> str:
    """``path:line in function: source line (from path:line in function, ...)``."""
    (code, lineno), *callers = site
    line = linecache.getline(code.co_filename, lineno).strip()
    text = f"{shown_path(code.co_filename)}:{lineno} in {code.co_name}"
    if line:
        text += f": {line}"
    if callers:
        text += (
            " (from "
            + ", from ".join(f"{shown_path(c.co_filename)}:{n} in {c.co_name}" for c, n in callers)
            + ")"
        )
    return text


class SiteRecorder:
    """Notes creation sites while installed (a profile function); ``--leakcheck-trace``."""

    def __init__(self, wanted: Callable[[type], bool]) -> None:
        self._wanted = wanted
        # Keyed and valued by ids, never by the types themselves: a class made by the test holds
        # what its methods close over, and kept here it would keep that alive through the check.
        self._types: dict[int, bool] = {}
        # id -> (id of its type, site): formatted only for the few objects a report asks about.
        self.sites: dict[int, tuple[int, Site]] = {}
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
        wanted = self._types.get(id(tp))
        if wanted is None:
            wanted = self._types[id(tp)] = self._wanted(tp)
        if wanted:
            site = site_from(user_frame(caller))
            if site is not None:
                self.sites[id(obj)] = (id(tp), site)

    def site_of(self, obj: object) -> str | None:
        found = self.sites.get(id(obj))
        # An id can be reused by a later object: trust it only for the same type.
        if found is None or found[0] != id(type(obj)):
            return None
        return where(found[1])

    def clear(self) -> None:
        self.sites.clear()
        self._types.clear()


# -- sys.monitoring, from Python 3.12: only the project's own __init__ methods report --------

_monitoring: Any = getattr(sys, "monitoring", None)
# Tool ids 0, 1, 2 and 5 are the debugger's, coverage's, a profiler's and an optimizer's by
# convention; 3 and 4 are free for others.
_TOOL_IDS = (4, 3)
PER_INIT = 8  # instances of one class whose creation site is noted, per test


class InitMonitor:
    """Where the project's instances are made, from ``sys.monitoring`` PY_START events of their
    classes' ``__init__`` code. Made once per session; ``begin``/``end`` around each check."""

    def __init__(self) -> None:
        self._tool: int | None = None
        self._codes: set[CodeType] = set()
        self._off: set[CodeType] = set()  # switched off for the rest of this check
        self._counts: dict[CodeType, int] = {}
        # id -> (id of its type, site); not the type itself (see SiteRecorder).
        self.sites: dict[int, tuple[int, Site]] = {}
        self.recording = False

    @staticmethod
    def available() -> bool:
        return _monitoring is not None

    def install(self, classes: Iterable[type]) -> bool:
        """Watch these classes' own ``__init__`` (those written in Python). False when every
        tool id this could use is taken (another tool's monitoring is left alone)."""
        if _monitoring is None:
            return False
        if self._tool is None:
            for tool in _TOOL_IDS:
                if _monitoring.get_tool(tool) is None:
                    _monitoring.use_tool_id(tool, "pytest-leakcheck")
                    _monitoring.register_callback(tool, _monitoring.events.PY_START, self._started)
                    self._tool = tool
                    break
            else:
                return False
        for cls in classes:
            init = cls.__dict__.get("__init__")
            code = getattr(init, "__code__", None)
            if isinstance(code, types.CodeType) and code not in self._codes:
                self._codes.add(code)
                _monitoring.set_local_events(self._tool, code, _monitoring.events.PY_START)
        return True

    def uninstall(self) -> None:
        if self._tool is not None and _monitoring is not None:
            for code in self._codes:
                _monitoring.set_local_events(self._tool, code, 0)
            _monitoring.register_callback(self._tool, _monitoring.events.PY_START, None)
            _monitoring.free_tool_id(self._tool)
        self._tool = None
        self._codes.clear()
        self.clear()

    def begin(self) -> None:
        """A check starts: every watched ``__init__`` reports again."""
        if self._tool is not None and _monitoring is not None:
            for code in self._off:
                _monitoring.set_local_events(self._tool, code, _monitoring.events.PY_START)
        self._off.clear()
        self._counts.clear()
        self.recording = True

    def end(self) -> None:
        self.recording = False

    def _started(self, code: CodeType, offset: int) -> object:
        if not self.recording:
            return None
        try:
            frame: FrameType | None = sys._getframe(1)
            names = code.co_varnames
            obj = None
            if frame is not None and names:
                local_vars = frame.f_locals
                obj = local_vars.get(names[0])
                if SNAPSHOT_LOCALS and type(local_vars) is dict:
                    # Before 3.13 the read stored a snapshot of every local on the frame, alive
                    # until __init__ returns: code that drops its locals early to free them (an
                    # __init__ that runs a whole coroutine) would see them kept.
                    local_vars.clear()
                del local_vars
            if frame is not None and obj is not None and id(obj) not in self.sites:
                site = site_from(user_frame(frame.f_back))
                if site is not None:
                    self.sites[id(obj)] = (id(type(obj)), site)
            frame = None
            count = self._counts.get(code, 0) + 1
            self._counts[code] = count
            if count >= PER_INIT and self._tool is not None:
                # Enough of this class for this test: no more events from it until the next.
                self._off.add(code)
                _monitoring.set_local_events(self._tool, code, 0)
        except Exception:  # must never disturb the monitored code
            pass
        return None

    def site_of(self, obj: object) -> str | None:
        found = self.sites.get(id(obj))
        if found is None or found[0] != id(type(obj)):
            return None
        return where(found[1])

    def first_of(self, tp: type) -> str | None:
        """Where the first instance of ``tp`` noted in this check was made."""
        for found_type, site in self.sites.values():
            if found_type == id(tp):
                return where(site)
        return None

    def clear(self) -> None:
        self.sites.clear()
