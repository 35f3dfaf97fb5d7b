"""Freshness: how long an event takes from being stored on the log to being visible in SQL.

Measured where it happens, per event: when a batch commits, each of its events' age is
the commit time minus the time the server stored it (from the message's ack subject).
A reply to a command is sent after its events are stored, so this bounds the time from
the reply to the row being visible from above. Kept as a cumulative histogram with
fixed bounds fine enough to read p50 and p99 from (``quantile``), so that a process
can send it to another as a few numbers and ``/metrics`` can serve it as a Prometheus
histogram (``runlog_projector_freshness_seconds``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["FRESHNESS_BOUNDS_S", "FreshnessHistogram"]

FRESHNESS_BOUNDS_S = (
    0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06,
    0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0,
)
"""Upper bounds of the buckets (seconds); 5 ms wide around the 50 ms a live read side aims at."""


@dataclass
class FreshnessHistogram:
    """Counts of event ages by bucket (the last one unbounded), their sum and count."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(FRESHNESS_BOUNDS_S) + 1))
    sum_s: float = 0.0

    @property
    def count(self) -> int:
        """Events observed."""
        return sum(self.counts)

    def observe(self, ages_s: Iterable[float]) -> None:
        """Counts each age (seconds) in its bucket."""
        counts, bounds = self.counts, FRESHNESS_BOUNDS_S
        total = 0.0
        for age in ages_s:
            counts[bisect.bisect_left(bounds, age)] += 1
            total += age
        self.sum_s += total

    def observe_stored(self, stored_ns: Sequence[int], visible_ns: int) -> None:
        """Counts the events stored at these times (ns; 0: unknown) as visible at ``visible_ns``."""
        self.observe((visible_ns - ns) / 1e9 for ns in stored_ns if ns)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, events at or under it) per bucket, ending with (inf, count)."""
        running, out = 0, []
        for bound, n in zip((*FRESHNESS_BOUNDS_S, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (seconds), interpolated inside its bucket as Prometheus's
        ``histogram_quantile`` does; None with no events."""
        total = self.count
        if total == 0:
            return None
        rank, lower, below = q * total, 0.0, 0
        for bound, at_or_under in self.cumulative():
            if at_or_under >= rank:
                if bound == float("inf"):
                    return lower  # past the last bound: its lower edge is all that is known
                inside = at_or_under - below
                return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = bound, at_or_under
        return lower

    def minus(self, earlier: FreshnessHistogram) -> FreshnessHistogram:
        """What was observed since ``earlier`` (a snapshot of the same histogram)."""
        return FreshnessHistogram([a - b for a, b in zip(self.counts, earlier.counts, strict=True)],
                                  self.sum_s - earlier.sum_s)

    def to_dict(self) -> dict[str, object]:
        """The counts and sum, as JSON."""
        return {"counts": list(self.counts), "sum_s": self.sum_s}

    @classmethod
    def from_dict(cls, value: Mapping[str, object] | None) -> FreshnessHistogram:
        """Reads ``to_dict``'s form back; anything else is an empty histogram."""
        counts = value.get("counts") if isinstance(value, Mapping) else None
        total = value.get("sum_s") if isinstance(value, Mapping) else None
        if (not isinstance(counts, list) or len(counts) != len(FRESHNESS_BOUNDS_S) + 1
                or not all(isinstance(n, int) for n in counts)):
            return cls()
        return cls(list(counts), float(total) if isinstance(total, (int, float)) else 0.0)
