"""Which types are watched: the project's own classes, plus types the user names."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import site
import sys
from dataclasses import dataclass, field

from . import describe

# The checker's own objects are never findings, even when the project is this one.
_OWN_PACKAGE = __name__.rpartition(".")[0]

_THIRD_PARTY_DIRS = frozenset({"site-packages", "dist-packages"})


@functools.cache
def _installation_dirs() -> tuple[str, ...]:
    """Directories that hold installed code rather than the project's own."""
    dirs = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    # Some embedded and old virtualenv builds lack getsitepackages().
    with contextlib.suppress(AttributeError):
        dirs.update(site.getsitepackages())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if isinstance(user_site, str):
        dirs.add(user_site)
    return tuple(sorted(os.path.normcase(os.path.realpath(d)) for d in dirs if d))


_PROJECT_MODULES: dict[str | None, dict[str, bool]] = {}

# Answers for static (C-defined, never freed) types, shared by the filters of one selection:
# caching them across checks keeps nothing alive that would otherwise die.
_STATIC_ANSWERS: dict[tuple[str | None, frozenset[type], tuple[str, ...]], dict[type, bool]] = {}
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE


@functools.cache
def _real_dir(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


@dataclass
class WatchFilter:
    """Answers "is this type watched?" fast enough to be asked for every young object.

    ``rootdir`` selects the project's own classes (``None`` watches none by default); ``types``
    and ``patterns`` add named types (``module.QualName`` globs). Answers are cached by module name
    (a string) and, within one check, by type: caching classes across checks would keep classes
    that a test defined alive. Static types (C-defined, never freed) are cached for good.
    """

    rootdir: str | None
    types: frozenset[type] = frozenset()
    patterns: tuple[str, ...] = ()
    _module_cache: dict[str, bool] = field(default_factory=dict, repr=False)  # set below
    _static_cache: dict[type, bool] = field(default_factory=dict, repr=False)  # set below
    _installed: tuple[str, ...] = field(default_factory=_installation_dirs, repr=False)

    def __post_init__(self) -> None:
        if self.rootdir is not None:
            self.rootdir = _real_dir(self.rootdir)
        # Shared by every filter of the same rootdir: the plugin makes one per test, and the
        # answer for a module never changes within a process.
        self._module_cache = _PROJECT_MODULES.setdefault(self.rootdir, {})
        key = (self.rootdir, self.types, self.patterns)
        self._static_cache = _STATIC_ANSWERS.setdefault(key, {})

    def new_cache(self) -> dict[type, bool]:
        return {}

    def is_watched(self, tp: type, cache: dict[type, bool]) -> bool:
        try:
            return self._static_cache[tp]
        except KeyError:
            pass
        try:
            return cache[tp]
        except KeyError:
            pass
        answer = self._decide(tp)
        if tp.__flags__ & _HEAPTYPE:
            cache[tp] = answer
        else:
            self._static_cache[tp] = answer
        return answer

    def is_named(self, tp: type) -> bool:
        """True when the user named this type (marker argument or ini setting)."""
        if tp in self.types:
            return True
        if not self.patterns:
            return False
        name = qualified_name(tp)
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def is_project_module(self, module: str) -> bool:
        if self.rootdir is None or module.split(".")[0] == _OWN_PACKAGE:
            return False
        try:
            return self._module_cache[module]
        except KeyError:
            answer = self._module_cache[module] = self._module_is_project(module)
            return answer

    def _decide(self, tp: type) -> bool:
        module = _module_name(tp)
        if module == _OWN_PACKAGE or module.startswith(_OWN_PACKAGE + "."):
            return False
        if self.is_named(tp):
            return True
        if self.rootdir is None:
            return False
        try:
            return self._module_cache[module]
        except KeyError:
            pass
        answer = self._module_is_project(module)
        self._module_cache[module] = answer
        return answer

    def _module_is_project(self, module: str) -> bool:
        mod = sys.modules.get(module)
        filename = getattr(mod, "__file__", None) if mod is not None else None
        if not isinstance(filename, str) or self.rootdir is None:
            return False
        path = os.path.normcase(os.path.realpath(filename))
        if not _is_within(path, self.rootdir):
            return False
        if _THIRD_PARTY_DIRS.intersection(path.split(os.sep)):
            return False
        # A virtual environment inside the project (".venv") is installed code, not the project.
        return not any(
            _is_within(path, d) and not _is_within(self.rootdir, d) for d in self._installed
        )


def _module_name(tp: type) -> str:
    return describe.type_parts(tp)[0]


def qualified_name(tp: type) -> str:
    return describe.type_name(tp)


def project_classes(watch: WatchFilter) -> list[type]:
    """The classes that the project's modules imported so far define (and the classes nested in
    them): whose ``__init__`` the plugin can watch from the start."""
    found: dict[int, type] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not watch.is_project_module(name):
            continue
        pending = [v for v in vars(module).values() if isinstance(v, type)]
        while pending:
            cls = pending.pop()
            if getattr(cls, "__module__", None) != name or id(cls) in found:
                continue
            found[id(cls)] = cls
            pending.extend(v for v in vars(cls).values() if isinstance(v, type))
    return list(found.values())
