"""Every row of a result reaches the client: streamed over NATS in acknowledged parts, or read
from the file."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from projections import (
    QueryError,
    QueryInterrupted,
    ReadSide,
    StreamSummary,
    stream_sql_async,
)
from services.store import JetStreamEventStore
from tests.support.read_side import EventLog, append_all

pytestmark = pytest.mark.nats

WIDE = ("SELECT n, 'row ' || n AS label, n * 0.5 AS half, [n, n + 1] AS pair, "
        "{'k': n} AS obj FROM range(25000) r(n)")


async def stream(fmt: str, sql: str = WIDE, **options: Any) -> tuple[str, StreamSummary]:
    """Streams a query into text; returns the text and the summary."""
    out = io.StringIO()
    summary = await stream_sql_async(sql, out, fmt, **options)
    return out.getvalue(), summary


async def test_every_row_comes_through_the_owner_and_from_the_file(
    nats_url: str, store: JetStreamEventStore, db_path: Path, history: EventLog,
    sql_prefix: str
) -> None:
    async with ReadSide(store, db_path, subject_prefix=sql_prefix) as read_side:
        await read_side.wait_for_seq(await append_all(store, history.envelopes))
        owner: dict[str, Any] = {"db_path": db_path, "nats_url": nats_url,
                                 "subject_prefix": sql_prefix, "timeout_s": 60.0}
        text, summary = await stream("csv", **owner)
        assert len(text.encode()) > 1024 * 1024  # more than one NATS message
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["n", "label", "half", "pair", "obj"]
        assert [int(row[0]) for row in rows[1:]] == list(range(25_000))
        assert rows[-1][1:] == ["row 24999", "12499.5", "[24999, 25000]", '{"k": 24999}']
        assert summary == StreamSummary(25_000, False, summary.position)
        lines, _ = await stream("jsonl", **owner)
        assert json.loads(lines.splitlines()[7]) == {
            "n": 7, "label": "row 7", "half": 3.5, "pair": [7, 8], "obj": {"k": 7}}
        assert len(lines.splitlines()) == 25_000
        document, _ = await stream("json", "SELECT run_id FROM runs ORDER BY 1", **owner)
        assert json.loads(document) == [{"run_id": "r1"}, {"run_id": "r2"}, {"run_id": "r3"}]
        cut, summary = await stream("csv", limit=1000, **owner)
        assert len(cut.splitlines()) == 1001
        assert summary.truncated
        exact, summary = await stream("csv", "FROM range(5)", limit=5, **owner)
        assert (len(exact.splitlines()), summary.truncated) == (6, False)
        empty, summary = await stream("json", "SELECT * FROM runs WHERE false", **owner)
        assert (json.loads(empty), summary.rows) == ([], 0)
    local, summary = await stream("csv", db_path=db_path, timeout_s=60.0)
    assert local == text
    assert summary.rows == 25_000


class Tripwire(io.StringIO):
    """Output that does something (once) when the first rows are written to it."""

    def __init__(self, trip: Callable[[], object]) -> None:
        super().__init__()
        self.trip: Callable[[], object] | None = trip

    def write(self, text: str) -> int:
        trip, self.trip = (self.trip, None) if self.getvalue() else (None, self.trip)
        if trip is not None:
            trip()
        return super().write(text)


async def test_a_stream_stopped_midway_says_so_and_how_far_it_got(
    nats_url: str, store: JetStreamEventStore, db_path: Path, sql_prefix: str
) -> None:
    async with ReadSide(store, db_path, subject_prefix=sql_prefix) as read_side:
        out = Tripwire(lambda: read_side.sql.interrupt_all("stopped by the test"))
        with pytest.raises(QueryInterrupted, match=r"stopped by the test \(after \d+ rows: "
                                                   "the output is incomplete"):
            await stream_sql_async(WIDE, out, "csv", db_path=db_path, nats_url=nats_url,
                                   subject_prefix=sql_prefix, timeout_s=60)
        with pytest.raises(QueryError, match="does not fit in one NATS message"):
            await stream("csv", "SELECT repeat('x', 2000000) AS big", db_path=db_path,
                         nats_url=nats_url, subject_prefix=sql_prefix)
    marker = db_path.with_name(db_path.name + ".writer-waiting")
    out = Tripwire(lambda: marker.write_text(str(os.getppid())))  # a writer waits: give way
    with pytest.raises(QueryInterrupted, match=r"is starting and needs runlog.duckdb.*\(after"):
        await stream_sql_async("FROM range(5000000)", out, "csv", db_path=db_path, timeout_s=60)
