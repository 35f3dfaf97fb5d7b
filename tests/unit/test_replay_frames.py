"""The frames between a replay's reader and its applier process carry events unchanged."""

from __future__ import annotations

import io
import subprocess
import sys

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
    assert list(read_batches(io.BytesIO(END))) == []


@pytest.mark.parametrize("stream", [b"", b"X"])
def test_a_stream_that_ends_without_its_end_frame_is_an_error_after_its_whole_batches(
        stream: bytes) -> None:
    frame = encode_batch([RecordedEvent(1, "s", b"payload", {})], 1)
    read = read_batches(io.BytesIO(frame + stream))
    assert [r.seq for r in next(read)[0]] == [1]
    with pytest.raises(EOFError, match=r"before its end frame|unknown kind"):
        next(read)


def test_a_traceparent_outside_ascii_comes_through_as_it_went_in() -> None:
    # The header parser keeps any UTF-8 value; one such event once ended a replay early.
    odd = "00-\u00e9-x-01"
    wire = encode_batch([RecordedEvent(1, "s", b"{}", {"traceparent": odd})], 1) + END
    assert [dict(r.headers) for records, _ in read_batches(io.BytesIO(wire))
            for r in records] == [{"traceparent": odd}]


def test_a_child_process_keeps_stdout_for_its_reports_whatever_else_writes_to_fd_1() -> None:
    # DuckDB's progress bar, for one, is written by C code straight to file descriptor 1.
    script = ("import os; from projections.replay_applier import own_stdout; "
              "reports = own_stdout(); os.write(1, b'noise from C\\n'); print('a print'); "
              "reports.write('P 7\\n')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout == "P 7\n"
    assert "noise from C" in done.stderr
    assert "a print" in done.stderr
