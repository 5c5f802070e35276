"""What a check notes while the block runs: the state before it, and what it registered.

Threads, interval timers and signal handlers as they were before the block (to tell what it
changed), its ``atexit`` registrations (their table lives in C), the resident memory, and, when
asked for, tracemalloc and where objects were created.
"""

from __future__ import annotations

import threading

from . import provenance, running
from .findings import Pending
from .kinds import RootInfo
from .memory import Tracing, rss
from .settle import thread_idents
from .sites import InitMonitor, SiteRecorder, where
from .watch import WatchFilter


class Recording:
    def __init__(self, watch: WatchFilter, monitor: InitMonitor | None = None) -> None:
        self.watch = watch
        self.monitor = monitor  # where the project's instances are made (3.12+), when on
        self.threads_before: frozenset[int] = frozenset()
        self.thread_keys_before: frozenset[running.ThreadKey] = frozenset()
        self.rss_before: int | None = None
        self.process = running.ProcessState({}, {})  # taken in start()
        self.atexit = running.AtexitRecorder()
        self.tracing: Tracing | None = None
        self.sites: SiteRecorder | None = None

    def start(self, *, trace_memory: bool) -> None:
        """Before the window opens (``trace_sites`` starts after it, see ``start_sites``)."""
        self.threads_before = thread_idents()
        self.thread_keys_before = frozenset(map(running.thread_key, threading.enumerate()))
        self.rss_before = rss()
        self.process = running.ProcessState()
        self.atexit.start()
        if self.monitor is not None:
            self.monitor.begin()
        if trace_memory:
            self.trace_memory()

    def trace_memory(self) -> None:
        if self.tracing is None:
            self.tracing = Tracing.start()

    def start_sites(self) -> None:
        recorder = SiteRecorder(self._wanted_site)
        self.sites = recorder if recorder.start() else None

    def stop(self) -> None:
        """Stop recording registrations and creation sites (what was noted is kept)."""
        if self.sites is not None:
            self.sites.stop()
        if self.monitor is not None:
            self.monitor.end()
        self.atexit.stop()

    def stop_tracing(self) -> int | None:
        """The bytes allocated and kept since tracing began, and tracing stopped."""
        tracing, self.tracing = self.tracing, None
        return tracing.stop() if tracing is not None else None

    def traced_now(self) -> int | None:
        return self.tracing.current() if self.tracing is not None else None

    def clear(self) -> None:
        self.atexit.clear()
        if self.sites is not None:
            self.sites.clear()
            self.sites = None
        if self.monitor is not None:
            self.monitor.clear()

    @property
    def traced_sites(self) -> bool:
        return self.sites is not None or self.monitor is not None

    def site_of(self, obj: object) -> str | None:
        """Where ``obj`` was made: for a timer, thread, handle, task or event, noted when it was
        started (``provenance``); for an instance, noted by the monitor or the trace."""
        site = provenance.site_of(obj)
        if site is not None:
            return where(site)
        for recorder in (self.sites, self.monitor):
            found = recorder.site_of(obj) if recorder is not None else None
            if found is not None:
                return found
        return None

    def first_site_of(self, tp: type) -> str | None:
        return self.monitor.first_of(tp) if self.monitor is not None else None

    def changes(self) -> list[Pending]:
        """Interval timers armed, signal handlers changed and exit hooks registered."""
        found = self.process.changes()
        found.extend(self.atexit.added(self._is_project_callable))
        return found

    def disarm(self) -> tuple[str, ...]:
        return tuple(self.process.restore_itimers())

    def roots(self) -> dict[int, RootInfo]:
        """Holders kept in C that the block registered: exit hooks."""
        return self.atexit.roots()

    def _is_project_callable(self, func: object) -> bool:
        """A callable of the project's code (or bound to a watched object); libraries that
        register an exit hook the first time they are used (pytest's tmp_path does) are not
        the test's doing."""
        owner = getattr(func, "__self__", None)
        if owner is not None and self.watch.is_watched(type(owner), {}):
            return True
        module = getattr(func, "__module__", None)
        return isinstance(module, str) and self.watch.is_project_module(module)

    def _wanted_site(self, tp: type) -> bool:
        return self.watch.is_watched(tp, {}) or running.is_root_type(tp)
