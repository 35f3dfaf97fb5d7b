"""Every row of a result, however many: streamed over NATS in acknowledged parts, or from the file.

The protocol (``runlog.sql.query`` with ``"stream": true``): the requester publishes the
request with its own inbox as reply subject. The service answers with parts, each under
the server's max payload (1 MB by default), ``{"ok": true, "part": n, "rows": [...]}``
(the first one also with ``columns`` and ``types``), each sent with a reply subject the
requester publishes an empty acknowledgement to once it has taken the part; the next part
is sent only then. The last message is the ordinary reply, ``{"ok": true, "result":
{"done": true, "rows": N, "truncated", "position", "columns", "types"}}``, or ``{"ok":
false, "error": ...}`` if the query failed on the way. Without ``limit`` every row is
sent; with one, ``truncated`` says whether more rows existed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client

from .database import ReadModelDb
from .errors import CODES, ProjectionError, QueryError, QueryInterrupted, QueryUnavailable
from .output import RowWriter
from .query import QueryWatch, RowStream, running_query
from .responder import ChunkStream

__all__ = ["StreamSummary", "Taken", "receive_stream", "stream_job", "write_local"]

_ENVELOPE_BYTES = 256
"""Room kept in each part for everything but the rows."""


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """What a streamed result came to."""

    rows: int
    truncated: bool
    """More rows existed than ``limit`` let through."""
    position: int | None


class Taken:
    """Counts rows through, stopping at ``limit`` (None: every row) and noting a cut."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.rows = 0
        self.truncated = False

    def take(self, chunks: Iterator[list[list[Any]]]) -> Iterator[list[list[Any]]]:
        """Yields the chunks, the last one shortened to the limit."""
        for chunk in chunks:
            if self.limit is not None and self.rows + len(chunk) > self.limit:
                chunk = chunk[: self.limit - self.rows]
                self.truncated = True
            self.rows += len(chunk)
            if chunk:
                yield chunk
            if self.truncated:
                return


def stream_job(db: Callable[[], ReadModelDb], sql: str, limit: int | None,
               stream: ChunkStream, position: Callable[[], int] | None = None
               ) -> Callable[[QueryWatch], dict[str, Any]]:
    """The work of one streamed query, for a query worker: sends the parts, returns the end."""
    def job(watch: QueryWatch) -> dict[str, Any]:
        taken = Taken(limit)
        with running_query(db(), sql, watch, position) as rows:
            packer = _Packer(stream, watch, rows)
            for chunk in taken.take(rows.chunks()):
                packer.add(chunk)
            packer.flush()
        return {"done": True, "rows": taken.rows, "truncated": taken.truncated,
                "position": rows.position, "columns": rows.columns, "types": rows.types}
    return job


class _Packer:
    """Gathers encoded rows into parts that fit the payload limit, and sends each."""

    def __init__(self, stream: ChunkStream, watch: QueryWatch, rows: RowStream) -> None:
        self.stream = stream
        self.watch = watch
        self.rows = rows
        self.parts = 0
        self._encoded: list[bytes] = []
        self._size = 0

    def add(self, chunk: list[list[Any]]) -> None:
        """Queues rows, sending a part whenever the next rows would not fit in it."""
        encoded = json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()[1:-1]
        if self._size + len(encoded) + 1 <= self._room():
            if encoded:
                self._encoded.append(encoded)
                self._size += len(encoded) + 1
        elif len(chunk) > 1:  # encoding whole chunks is fast; halve the ones too big
            half = len(chunk) // 2
            self.add(chunk[:half])
            self.add(chunk[half:])
        elif self._encoded:
            self.flush()
            self.add(chunk)
        else:
            raise QueryError(f"a row of {len(encoded)} bytes does not fit in one NATS message "
                             f"({self.stream.max_bytes} bytes): select fewer or smaller columns")

    def flush(self) -> None:
        if not self._encoded:
            return
        self.parts += 1
        data = b"".join([self._head(), b",".join(self._encoded), b"]}"])
        self._encoded, self._size = [], 0
        try:
            self.stream.send_from_thread(data, self.watch.remaining_s, lambda: self.watch.fired)
        except QueryInterrupted:
            self.watch.raise_if_fired()  # the query's own reason (timeout, stop), if it has one
            raise

    def _head(self) -> bytes:
        head: dict[str, Any] = {"ok": True, "part": self.parts}
        if self.parts == 1:
            head |= {"columns": self.rows.columns, "types": self.rows.types}
        return json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode()[:-1] + \
            b',"rows":['

    def _room(self) -> int:
        columns = len(json.dumps([self.rows.columns, self.rows.types])) if self.parts == 0 else 0
        return self.stream.max_bytes - _ENVELOPE_BYTES - columns


def write_local(db: ReadModelDb, sql: str, watch: QueryWatch, writer: RowWriter,
                limit: int | None) -> StreamSummary:
    """Streams a query on an open file straight into ``writer``."""
    taken = Taken(limit)
    with _saying_how_far(writer), running_query(db, sql, watch) as rows:
        writer.begin(rows.columns)
        for chunk in taken.take(rows.chunks()):
            writer.write(chunk)
        writer.end()
    return StreamSummary(taken.rows, taken.truncated, rows.position)


@contextlib.contextmanager
def _saying_how_far(writer: RowWriter) -> Iterator[None]:
    """A failure after some rows were written says the output is incomplete."""
    try:
        yield
    except ProjectionError as error:
        if writer.count:
            raise type(error)(f"{error} (after {writer.count} rows: the output is incomplete)"
                              ) from None
        raise


async def receive_stream(nc: Client, subject: str, request: dict[str, Any], writer: RowWriter,
                         timeout_s: float) -> StreamSummary:
    """Asks for a streamed result and writes every part as it comes (the client side)."""
    inbox = nc.new_inbox()
    parts = await nc.subscribe(inbox)
    deadline = time.monotonic() + timeout_s
    try:
        with _saying_how_far(writer):
            await nc.publish(subject, json.dumps({**request, "stream": True}).encode(),
                             reply=inbox)
            while True:
                reply = await _next_part(parts, subject, deadline, timeout_s)
                end = reply.get("result")
                if reply.get("part") == 1 or (end is not None and not writer.begun):
                    writer.begin((end or reply)["columns"])
                if end is not None:
                    writer.end()
                    return StreamSummary(int(end["rows"]), bool(end["truncated"]),
                                         end.get("position"))
                writer.write(reply["rows"])
                await nc.publish(reply["_ack"], b"")
    finally:
        await parts.unsubscribe()


async def _next_part(parts: Any, subject: str, deadline: float, timeout_s: float
                     ) -> dict[str, Any]:
    try:
        msg = await parts.next_msg(timeout=max(deadline - time.monotonic(), 0.001))
    except TimeoutError:
        raise QueryUnavailable(f"no answer on {subject} within {timeout_s:g} s") from None
    if (msg.headers or {}).get("Status") == "503":
        raise QueryUnavailable(f"no running runlog answers on {subject}")
    try:
        reply: dict[str, Any] = json.loads(msg.data)
    except ValueError:
        raise ProjectionError("the running runlog sent an unreadable part") from None
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise CODES.get(error.get("code", ""), ProjectionError)(
            str(error.get("message", "the running runlog refused the request")))
    return reply | {"_ack": msg.reply}
