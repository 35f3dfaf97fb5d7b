"""The wire between a replay's reader and its applier process: batches of raw events.

A frame is ``B`` + ``<count, body length, stream head>`` + the body; each event in the
body is ``<seq, subject length, traceparent length, payload length>`` + those bytes, the
payload exactly as the log holds it (the applier decodes it). ``E`` ends the stream.
The applier answers with text lines: ``P <position>`` after each batch, ``S <position>``
when a time bound stopped it, ``D <position>`` when it is done.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from services.store import RecordedEvent

__all__ = ["END", "encode_batch", "read_batches"]

_BATCH = struct.Struct("<IIq")
_EVENT = struct.Struct("<qHHI")
END = b"E"
_EMPTY: dict[str, str] = {}


def encode_batch(records: Sequence[RecordedEvent], head: int) -> bytes:
    """One frame holding ``records`` (and the stream head they were read under)."""
    parts: list[bytes] = []
    pack = _EVENT.pack
    for record in records:
        subject = record.subject.encode()
        trace = record.headers.get("traceparent", "").encode()
        parts += (pack(record.seq, len(subject), len(trace), len(record.payload)), subject,
                  trace, record.payload)
    body = b"".join(parts)
    return b"B" + _BATCH.pack(len(records), len(body), head) + body


def read_batches(stream: BinaryIO) -> Iterator[tuple[list[RecordedEvent], int]]:
    """Yields ``(records, head)`` per frame until ``E``; raises ``EOFError`` when the
    stream ends before it (the reader stopped: what came so far is not the whole log)."""
    while (kind := stream.read(1)) == b"B":
        count, size, head = _BATCH.unpack(_exactly(stream, _BATCH.size))
        yield _events(memoryview(_exactly(stream, size)), count), head
    if kind != END:
        raise EOFError("the replay's reader stopped before its end frame" if not kind else
                       f"the replay's reader sent a frame of unknown kind {kind!r}")


def _events(body: memoryview, count: int) -> list[RecordedEvent]:
    records = []
    offset = 0
    unpack = _EVENT.unpack_from
    width = _EVENT.size
    for _ in range(count):
        seq, subject_len, trace_len, payload_len = unpack(body, offset)
        offset += width
        subject = str(body[offset:offset + subject_len], "utf-8")
        offset += subject_len
        trace = str(body[offset:offset + trace_len], "utf-8") if trace_len else ""
        offset += trace_len
        payload = bytes(body[offset:offset + payload_len])
        offset += payload_len
        records.append(RecordedEvent(seq, subject, payload,
                                     {"traceparent": trace} if trace else _EMPTY))
    return records


def _exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the replay's reader stopped in the middle of a batch")
    return data
