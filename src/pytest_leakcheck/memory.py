"""Cheap memory figures around a block: resident memory, and tracemalloc when it is asked for."""

from __future__ import annotations

import os
import tracemalloc
from dataclasses import dataclass


@dataclass
class Tracing:
    """tracemalloc around the block, for the bytes it allocated and kept.

    Started only when a test asks for a heap limit or for cycles: tracing slows allocation.
    If the tested code already traces, its tracing is used and left running.
    """

    base: int
    owned: bool

    @classmethod
    def start(cls) -> Tracing:
        owned = not tracemalloc.is_tracing()
        if owned:
            tracemalloc.start(1)
        return cls(base=tracemalloc.get_traced_memory()[0], owned=owned)

    def current(self) -> int:
        return tracemalloc.get_traced_memory()[0] - self.base if tracemalloc.is_tracing() else 0

    def stop(self) -> int:
        growth = self.current()
        if self.owned:
            tracemalloc.stop()
        return growth


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss() -> int | None:
    """Resident memory from /proc (O(1), unlike anything that counts the heap); None elsewhere."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        return None
    try:
        return int(os.read(fd, 200).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)
