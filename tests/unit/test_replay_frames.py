"""The frames between a replay's reader and its applier process carry events unchanged."""

from __future__ import annotations

import io

import pytest

from projections.replay_frames import END, encode_batch, read_batches
from services.store import RecordedEvent

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_batches_come_out_as_they_went_in_with_the_trace_header_alone() -> None:
    first = [RecordedEvent(1, "runlog.evt.run.r1", b'{"type":"RunCreated"}',
                           {"traceparent": TRACEPARENT, "Nats-Msg-Id": "c1:0"}),
             RecordedEvent(2, "runlog.evt.run.r\u00e9", b"", {})]
    second = [RecordedEvent(7, "runlog.evt.task.t1", b"x" * 70_000, {})]
    wire = io.BytesIO(encode_batch(first, 9) + encode_batch(second, 12) + END + b"ignored")
    batches = list(read_batches(wire))
    assert [head for _, head in batches] == [9, 12]
    got = [record for records, _ in batches for record in records]
    assert [(r.seq, r.subject, r.payload) for r in got] == [
        (r.seq, r.subject, r.payload) for r in first + second]
    assert [dict(r.headers) for r in got] == [{"traceparent": TRACEPARENT}, {}, {}]


def test_a_stream_cut_inside_a_batch_is_an_error_not_a_short_batch() -> None:
    frame = encode_batch([RecordedEvent(1, "s", b"payload", {})], 1)
    with pytest.raises(EOFError):
        list(read_batches(io.BytesIO(frame[:-3])))
    assert list(read_batches(io.BytesIO(b""))) == []
