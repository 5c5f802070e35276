"""Turn live objects into short, safe text: no user ``__repr__`` may break or flood a report."""

from __future__ import annotations

import asyncio
import os
import sched
import sysconfig
import threading
import types
from typing import Any

_MAX = 80

# Where the standard library and installed packages live: a file there is shown relative to its
# directory ("threading.py", "tornado/ioloop.py"), as tracebacks name modules, not machines.
_LIBRARY_DIRS = sorted(
    {
        os.path.normcase(os.path.realpath(p)) + os.sep
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(key))
    },
    key=len,
    reverse=True,
)


def shown_path(filename: str) -> str:
    """A source file as a report shows it: relative to the standard library or site-packages,
    or to the working directory (the project's own files); anything else as it is."""
    if filename.startswith("<"):
        return filename
    path = os.path.normcase(os.path.realpath(filename))
    for directory in _LIBRARY_DIRS:
        if path.startswith(directory):
            return path[len(directory) :]
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith("..") else relative


def escape(text: str, limit: int = _MAX) -> str:
    """Printable, one line, bounded: object text can hold anything."""
    out = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    out = out.replace("\\\\", "\\")  # keep ordinary backslashes (paths) readable
    if len(out) > limit:
        out = out[: limit - 3] + "..."
    return out


# The getters of ``type`` itself: a metaclass cannot override them, and for C types they give
# the names from tp_name, where ``tp.__dict__["__qualname__"]`` would be the instances' descriptor.
_TYPE_MODULE = type.__dict__["__module__"]
_TYPE_QUALNAME = type.__dict__["__qualname__"]


def type_parts(tp: type) -> tuple[str, str]:
    """(module, qualname) of a class, read without running any of its code."""
    try:
        module = _TYPE_MODULE.__get__(tp, type)
    except Exception:
        module = ""
    try:
        qualname = _TYPE_QUALNAME.__get__(tp, type)
    except Exception:
        qualname = "?"
    return (module if isinstance(module, str) else ""), (
        qualname if isinstance(qualname, str) else "?"
    )


def type_name(tp: type) -> str:
    module, qualname = type_parts(tp)
    if module and module not in ("builtins", "__builtin__"):
        return f"{module}.{qualname}"
    return qualname


def safe_repr(obj: object, limit: int = _MAX) -> str:
    try:
        text = repr(obj)
    except Exception as exc:  # a raising __repr__ still gets a line
        text = f"<{type_name(type(obj))} (repr failed: {type(exc).__name__})>"
    if not isinstance(text, str):
        text = f"<{type_name(type(obj))}>"
    return escape(text, limit)


def safe_name(obj: object) -> str:
    name = _attr(obj, "__name__")
    return escape(name) if isinstance(name, str) else safe_repr(obj)


def _attr(obj: object, name: str) -> Any:
    """Read an attribute without running a lazy proxy's __getattr__."""
    try:
        return object.__getattribute__(obj, name)
    except Exception:
        return None


def callable_name(func: object) -> str:
    if isinstance(func, types.MethodType):
        owner = type(func.__self__)
        return f"{type_name(owner)}.{getattr(func.__func__, '__name__', '?')}"
    qualname = _attr(func, "__qualname__")
    module = _attr(func, "__module__")
    if isinstance(qualname, str):
        return f"{module}.{qualname}" if isinstance(module, str) else qualname
    return safe_repr(func)


def short(obj: object) -> str:
    """A noun phrase for one object on a retention path."""
    tp = type(obj)
    if isinstance(obj, types.ModuleType):
        return f"module {safe_name(obj)}"
    if isinstance(obj, type):
        return f"class {type_name(obj)}"
    if isinstance(obj, types.FrameType):
        code = obj.f_code
        return (
            f"frame of {code.co_name} ({escape(shown_path(code.co_filename), 200)}:{obj.f_lineno})"
        )
    if isinstance(obj, types.MethodType):
        return f"bound method {callable_name(obj)}"
    if isinstance(obj, types.FunctionType):
        return f"function {callable_name(obj)}"
    if isinstance(obj, (types.CoroutineType, types.GeneratorType)):
        return f"{tp.__name__} {escape(getattr(obj, '__qualname__', '?'))}"
    if isinstance(obj, threading.Thread):
        return f"{type_name(tp)} {safe_repr(_attr(obj, '_name'))}"
    if tp in (dict, list, set, tuple, frozenset):
        return f"{tp.__name__} of {len(obj)}"  # type: ignore[arg-type]
    if tp.__repr__ is object.__repr__:
        return type_name(tp)
    return f"{type_name(tp)} {safe_repr(obj, 60)}"


def _on_loop(obj: object) -> str:
    loop = _attr(obj, "_loop")
    if not isinstance(loop, asyncio.AbstractEventLoop):
        return ""
    state = "closed" if loop.is_closed() else "running" if loop.is_running() else "idle"
    return f" on {type(loop).__name__} at {id(loop):#x} ({state})"


def _closed(loop: object) -> bool:
    return isinstance(loop, asyncio.AbstractEventLoop) and loop.is_closed()


def _suspended_at(coro: object) -> str:
    frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
    if frame is None:
        return ""
    return f" (at {escape(shown_path(frame.f_code.co_filename), 200)}:{frame.f_lineno})"


def root(obj: object) -> str:
    """Describe a holder that is the reason for a leak: what it is, what it calls, when."""
    if isinstance(obj, threading.Timer):
        return (
            f"Timer {safe_repr(_attr(obj, '_name'))} (interval {_attr(obj, 'interval')}s) "
            f"calling {callable_name(_attr(obj, 'function'))}"
        )
    if isinstance(obj, threading.Thread):
        target = _attr(obj, "_target")
        what = f" running {callable_name(target)}" if target is not None else ""
        state = "alive" if obj.is_alive() else "not started"
        return f"Thread {safe_repr(_attr(obj, '_name'))} ({state}){what}"
    if isinstance(obj, asyncio.TimerHandle):
        func = callable_name(_attr(obj, "_callback"))
        return f"TimerHandle calling {func} at loop time {obj.when():.3f}{_on_loop(obj)}"
    if isinstance(obj, asyncio.Handle):
        return f"Handle calling {callable_name(_attr(obj, '_callback'))}{_on_loop(obj)}"
    if isinstance(obj, asyncio.Task):
        coro = obj.get_coro()
        where = _suspended_at(coro)
        name = escape(getattr(coro, "__qualname__", "?"))
        loop = _attr(obj, "_loop")
        stuck = ", so it never finishes" if _closed(loop) and not obj.done() else ""
        return f"Task {safe_repr(obj.get_name())} running {name}{where}{_on_loop(obj)}{stuck}"
    if isinstance(obj, sched.Event):
        return f"sched event at {obj.time} calling {callable_name(obj.action)}"
    return short(obj)
