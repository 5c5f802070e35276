"""The session's time budget for explaining suspects, under ``--leakcheck``.

A lenient check only lists suspects, so walking and sizing them is worth a share of the session's
time, not more: a large suite whose every test leaves the same cached object would otherwise pay
heap walks thousands of times. Leaks are always explained; a type explained once is only counted
afterwards.
"""

from __future__ import annotations

import time
from collections import Counter

from .findings import Findings

# A passive suspect type is walked this many times per session; after that its survivors are
# counted only (see ``checker.Options.skip_tracing``).
EXPLAIN_EACH_TYPE = 1

# The shortest walk an allowed check gets (the session's share may be less, early on).
MIN_WALK_SECONDS = 0.05


class ExplainBudget:
    def __init__(self, percent: float) -> None:
        self.percent = percent
        self.began = time.perf_counter()
        self.spent = 0.0  # seconds walking and sizing survivors of tests that left nothing running
        self.walks = 0  # lenient checks that walked or sized something
        self.explained: Counter[str] = Counter()  # suspects walked, by type

    def skip_types(self) -> frozenset[str]:
        """Suspect types already explained often enough this session."""
        return frozenset(name for name, n in self.explained.items() if n >= EXPLAIN_EACH_TYPE)

    def allows_more(self) -> bool:
        """Whether the next lenient check may walk its suspects.

        The next explanation is expected to cost what the earlier ones did on average: checked
        before it runs, the budget is not overrun by the one that crosses it.
        """
        share = self.percent / 100
        typical = self.spent / self.walks if self.walks else 0.0
        allowed = share * (time.perf_counter() - self.began)
        return share > 0 and self.spent + typical <= allowed

    def remaining(self) -> float | None:
        """Seconds the next lenient check may spend walking its suspects (None: no bound, at a
        budget of 100%)."""
        if self.percent >= 100:
            return None
        allowed = self.percent / 100 * (time.perf_counter() - self.began)
        # At least a short walk: early in a session the share is a few milliseconds, and a small
        # suite would get nothing explained.
        return max(MIN_WALK_SECONDS, allowed - self.spent)

    def record(self, findings: Findings, *, lenient: bool) -> None:
        self.explained.update(g.type for g in findings.suspects if g.walked and g.path)
        if lenient:
            self.spent += findings.passive_seconds
            self.walks += findings.passive_seconds > 0.001
