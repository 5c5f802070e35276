"""What is alive and new: open a window around a block of code, and choose which kind.

Two ways to tell new objects from old ones:

* ``frozen.FrozenWindow`` (the default where the interpreter allows it) freezes the old heap, so
  the end of the window looks only at what the block made: its cost follows the block, not the
  heap.
* ``fullheap.FullHeapWindow`` records the ids of every watched instance before and compares after:
  a walk over the heap at each end.

``no_frozen_window()`` says why the first cannot be had; the plugin prints it once, with the cost
of the second measured on the heap at hand.
"""

from __future__ import annotations

import sysconfig
import time

from . import frozen
from .fullheap import FullHeapWindow
from .heap import real_freeze, real_get_objects, real_unfreeze
from .permanent import permanent
from .watch import WatchFilter

Window = frozen.FrozenWindow | FullHeapWindow

_freeze_probe_result: bool | None = None


def _free_threaded() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _freeze_hides_old_objects() -> bool:
    """Probe once that this interpreter's gc.freeze() behaves as the frozen window assumes."""

    class _Probe:
        pass

    old = _Probe()
    others = permanent.others()
    real_freeze()
    try:
        new = _Probe()
        young = real_get_objects()
        ok = any(o is new for o in young) and not any(o is old for o in young)
        del young, new
    finally:
        real_unfreeze()
        permanent.unfrozen_by_window(others)
    return ok


def no_frozen_window() -> str | None:
    """Why a frozen window cannot be had right now, or None when it can."""
    global _freeze_probe_result
    if _free_threaded():
        # gc.freeze() there sets a bit on every object of the heap, with the world stopped: it
        # costs what the comparison costs, and no young generation is left to walk.
        return "the free-threaded build has no generations to freeze"
    if frozen.active():
        return "another check's frozen window is open in this process"
    if permanent.application_froze():
        return (
            "the application keeps objects frozen with gc.freeze(), "
            "which a frozen window would undo"
        )
    if _freeze_probe_result is None:
        _freeze_probe_result = _freeze_hides_old_objects()
    if not _freeze_probe_result:
        return "gc.freeze() does not hide old objects from gc.get_objects() here"
    return None


def open_window(watch: WatchFilter, *, mode: str = "auto") -> Window:
    """Start watching. ``mode``: ``"auto"`` (frozen where usable) or ``"full-heap"``."""
    with frozen.lock:
        why = "asked for" if mode == "full-heap" else no_frozen_window()
        if why is None:
            return frozen.FrozenWindow(watch, others=permanent.others())
    return FullHeapWindow(watch, reason=why)


def full_heap_cost(watch: WatchFilter) -> tuple[float, int]:
    """What one clean check costs without a frozen window, measured now: (seconds, objects)."""
    began = time.perf_counter()
    window = FullHeapWindow(watch)
    window.close().found.clear()
    return time.perf_counter() - began, window.objects_before
