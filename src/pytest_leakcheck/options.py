"""How a check behaves: the settings of one ``LeakCheck``."""

from __future__ import annotations

from dataclasses import dataclass, field

from .retention import SearchLimits
from .settle import SETTLE_BUDGET


@dataclass
class Options:
    strict: bool = True
    settle: float = SETTLE_BUDGET
    max_traced_per_type: int = 3
    mode: str = "auto"
    limits: SearchLimits = field(default_factory=SearchLimits)
    max_growth: int | None = None  # bytes; traces the block with tracemalloc when set
    sizes: bool = True  # measure what each leaked group retains
    ignore_threads: tuple[str, ...] = ()  # name globs of threads a test may leave running
    trace: bool = False  # note where objects are created (a profile function: slower)
    graphs: bool = False  # draw each traced path with objgraph (a full collection per path)
    stop_pending: bool = True  # cancel what the block left pending, and say what that freed
    # Types whose survivors are counted, not walked, when the check is lenient and the block
    # left nothing running: the plugin fills it with types it already explained in the session.
    skip_tracing: frozenset[str] = frozenset()
    # False when the plugin's time budget for explaining lenient suspects is spent: then no
    # passive suspect is walked or sized (a block that left something running still is).
    explain_suspects: bool = True
    # What is left of that budget, in seconds: a walk of passive suspects stops there, and what
    # it had not reached is counted. None: no bound.
    explain_seconds: float | None = None
