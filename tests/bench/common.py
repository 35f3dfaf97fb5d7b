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

__all__ = ["CpuMeter", "Timer", "percentile", "private_nats", "private_nats_server",
           "process_rss_bytes", "process_tree", "process_tree_cpu_s", "split_tree_cpu_s",
           "summary", "thread_cpu_s", "tree_rss_bytes"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def private_nats() -> Iterator[str]:
    """A nats-server of the benchmark's own (never the system one on 4222)."""
    with private_nats_server() as server:
        yield server.url


@contextlib.contextmanager
def private_nats_server(sync: str = "default") -> Iterator[EmbeddedNats]:
    """The same, as the server itself (for its pid), with ``RUNLOG_NATS_SYNC``'s choice."""
    with tempfile.TemporaryDirectory() as data, EmbeddedNats(Path(data), sync=sync) as server:
        yield server


class CpuMeter:
    """CPU seconds spent by this process and by another one (the nats-server) in a block."""

    def __init__(self, other_pid: int) -> None:
        self._other = other_pid

    def __enter__(self) -> CpuMeter:
        self._own, self._theirs = time.process_time(), process_tree_cpu_s(self._other)
        return self

    def __exit__(self, *exc: object) -> None:
        self.own_s = time.process_time() - self._own
        self.theirs_s = process_tree_cpu_s(self._other) - self._theirs

    def per_op_us(self, ops: int) -> str:
        """``client X µs/op, server Y µs/op``."""
        return (f"CPU {self.own_s / ops * 1e6:.0f} µs/op here, "
                f"{self.theirs_s / ops * 1e6:.0f} µs/op in nats-server")


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
    return sum(split_tree_cpu_s(pid))


def process_tree(pid: int) -> list[int]:
    """A process and its live descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending += _children(current)
    return found


def split_tree_cpu_s(pid: int, apart: str = "nats-server") -> tuple[float, float]:
    """CPU seconds of a process tree: (everything but ``apart``, the ``apart`` processes).

    Reads ``/proc`` for every live descendant, so a child process the service starts
    (its read side, for one) counts with the service; the embedded ``nats-server``
    (by command name) is counted on its own.
    """
    service = other = 0.0
    for current in process_tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{current}/stat").read_text()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
            if name == apart:
                other += seconds
            else:
                service += seconds
    return service, other


def tree_rss_bytes(pid: int) -> int:
    """Resident set size of a process and its live descendants, summed."""
    return sum(process_rss_bytes(pid))


def process_rss_bytes(pid: int) -> list[int]:
    """Resident set size of a process and of each live descendant."""
    sizes = []
    for current in process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            sizes.append(int(Path(f"/proc/{current}/statm").read_text().split()[1]) * _PAGE_SIZE)
    return sizes


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of a process tree by where they were spent.

    Keys: ``main thread`` and ``other threads`` of ``pid`` itself, and the same for
    each descendant, prefixed by its command name (``nats-server``, ``python``, ...).
    """
    spent: dict[str, float] = {}
    for current in process_tree(pid):
        prefix = "" if current == pid else _command_name(current) + " "
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                where = f"{prefix}{'main thread' if int(task.name) == current else 'other threads'}"
                seconds = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
                spent[where] = spent.get(where, 0.0) + seconds
    return spent


def _command_name(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return "?"
