"""Every running query's watch is checked by one shared thread: deadlines, cancels, yields."""

from __future__ import annotations

import threading
import time

import pytest

from projections.errors import QueryInterrupted, QueryTimeout
from projections.query import QueryWatch


class FakeCursor:
    """Counts the interrupts a watch sends it."""

    def __init__(self) -> None:
        self.interrupts = 0
        self.interrupted = threading.Event()

    def interrupt(self) -> None:
        self.interrupts += 1
        self.interrupted.set()


def _watchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "runlog-sql-watch"]


def test_a_watch_past_its_deadline_interrupts_its_cursor_and_reports_a_timeout() -> None:
    cursor = FakeCursor()
    watch = QueryWatch(0.05, poll_s=0.01)
    watch.attach(cursor)  # type: ignore[arg-type]
    try:
        assert cursor.interrupted.wait(2)
        with pytest.raises(QueryTimeout):
            watch.raise_if_fired()
    finally:
        watch.detach()


def test_many_watches_share_one_thread_and_each_fires_at_its_own_deadline() -> None:
    soon, late = FakeCursor(), FakeCursor()
    watches = [QueryWatch(0.05, poll_s=0.01), QueryWatch(30, poll_s=0.01)]
    watches[0].attach(soon)  # type: ignore[arg-type]
    watches[1].attach(late)  # type: ignore[arg-type]
    extra = [QueryWatch(30) for _ in range(8)]
    for watch in extra:
        watch.attach(FakeCursor())  # type: ignore[arg-type]
    try:
        assert soon.interrupted.wait(2)
        time.sleep(0.05)
        assert late.interrupts == 0
        assert len(_watchers()) == 1
    finally:
        for watch in [*watches, *extra]:
            watch.detach()


def test_a_detached_watch_never_interrupts_its_cursor_again() -> None:
    cursor = FakeCursor()
    watch = QueryWatch(30, poll_s=0.005)
    watch.attach(cursor)  # type: ignore[arg-type]
    watch.cancel("the service is stopping")
    assert cursor.interrupted.wait(2)
    watch.detach()
    after_detach = cursor.interrupts
    time.sleep(0.05)  # ten polls: a fired watch is interrupted again at each while attached
    assert cursor.interrupts == after_detach
    with pytest.raises(QueryInterrupted, match="stopping"):
        watch.raise_if_fired()


def test_yield_to_is_polled_and_its_reason_stops_the_query() -> None:
    cursor = FakeCursor()
    asked = threading.Event()

    def yield_to() -> str | None:
        asked.set()
        return "a writer waits for the file"

    watch = QueryWatch(30, yield_to=yield_to, poll_s=0.01)
    watch.attach(cursor)  # type: ignore[arg-type]
    try:
        assert cursor.interrupted.wait(2)
        assert asked.is_set()
        with pytest.raises(QueryInterrupted, match="writer waits"):
            watch.raise_if_fired()
    finally:
        watch.detach()
