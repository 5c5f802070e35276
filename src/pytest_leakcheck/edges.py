"""How a holder refers to what it holds: the labels on a retention path's edges."""

from __future__ import annotations

import gc
import types

from . import describe
from .frames import frame_locals


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
        for name, value in frame_locals(parent).items():
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
            for name, value in frame_locals(frame).items():
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


def with_namespaces(chain: list[object]) -> list[object]:
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


def is_namespace_of(owner: object, candidate: object) -> bool:
    if isinstance(owner, type):
        # A class shows its dict only through a mappingproxy; the real dict is its referent.
        return type(candidate) is dict and candidate.keys() == owner.__dict__.keys()
    return _instance_dict(owner) is candidate
