"""Helpers shared by the benchmarks: a private nats-server, timing and percentiles."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from services.embedded_nats import EmbeddedNats

__all__ = ["Timer", "percentile", "private_nats", "process_tree_cpu_s", "summary"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def private_nats() -> Iterator[str]:
    """A nats-server of the benchmark's own (never the system one on 4222)."""
    with tempfile.TemporaryDirectory() as data, EmbeddedNats(Path(data)) as server:
        yield server.url


class Timer:
    """Wall-clock time of a block."""

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def summary(samples_s: list[float]) -> str:
    """``p50/p99`` of latencies given in seconds, printed in milliseconds."""
    return (f"p50 {percentile(samples_s, 0.5) * 1e3:.2f} ms, "
            f"p99 {percentile(samples_s, 0.99) * 1e3:.2f} ms, "
            f"mean {statistics.fmean(samples_s) * 1e3:.2f} ms")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (from /proc)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
            pending += _children(current)
    return total
