"""Repeated cycles: tell a cache that fills once from a registry that grows on every cycle.

As CPython's own refleak hunting (``regrtest -R 3:3``) does: run the body some warm-up times, then
some counted times, sample after each run, and call it a leak only when every counted run grew.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

# Heap growth below this per run is noise: free lists, dict resizes, interned names.
HEAP_NOISE_BYTES = 4096

_SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Sample:
    objects: int
    by_type: Counter[str]
    traced_bytes: int | None


@dataclass
class Series:
    """Samples taken before the first run and after each run."""

    runs: int
    warmup: int
    samples: list[Sample] = field(default_factory=list)

    def counted(self) -> list[tuple[Sample, Sample]]:
        """(before, after) pairs of the counted runs."""
        pairs = list(zip(self.samples, self.samples[1:], strict=False))
        return pairs[self.warmup :]

    @property
    def complete(self) -> bool:
        return len(self.samples) == self.runs + self.warmup + 1

    def type_deltas(self) -> dict[str, list[int]]:
        names = sorted({name for s in self.samples for name in s.by_type})
        return {
            name: [after.by_type[name] - before.by_type[name] for before, after in self.counted()]
            for name in names
        }

    def heap_deltas(self) -> list[int] | None:
        pairs = self.counted()
        if not pairs or any(s.traced_bytes is None for s in self.samples):
            return None
        return [(a.traced_bytes or 0) - (b.traced_bytes or 0) for b, a in pairs]

    def growing_types(self) -> dict[str, list[int]]:
        """Types whose count grew in every counted run."""
        return {
            name: deltas
            for name, deltas in self.type_deltas().items()
            if deltas and all(d > 0 for d in deltas)
        }

    def heap_grows(self) -> bool:
        deltas = self.heap_deltas()
        return bool(deltas) and all(d > HEAP_NOISE_BYTES for d in deltas or ())

    def data(self) -> dict[str, object]:
        return {
            "runs": self.runs,
            "warmup": self.warmup,
            "objects": [s.objects for s in self.samples],
            "traced_bytes": [s.traced_bytes for s in self.samples]
            if all(s.traced_bytes is not None for s in self.samples)
            else None,
            "per_run": self.type_deltas(),
            "heap_per_run": self.heap_deltas(),
            "growing": sorted(self.growing_types()),
            "heap_grows": self.heap_grows(),
        }


def sparkline(values: Sequence[float]) -> str:
    """A one-line picture of a series: ``▁▃▅█``."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return _SPARKS[0] * len(values)
    scale = (len(_SPARKS) - 1) / (high - low)
    return "".join(_SPARKS[round((v - low) * scale)] for v in values)
