"""The reading half of a replay: events off the log, in order, into the applier process.

``started_applier`` starts ``projections.replay_applier`` on the file being built and
``build_in_two_processes`` feeds it batches read from the store's ordered feed. The two
halves hold different GILs, so taking events off NATS never waits for DuckDB or the
projections' folding, and the reverse; the pipe between them (1 MiB where the system
allows) holds the reader back when the applier is slower, and JetStream flow control
then holds the server back.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from services.store.port import EventFeed, EventStore

from .errors import ProjectionError
from .feed import STALL_S, contiguous_run, next_batch_within, open_feed
from .replay_frames import END, encode_batch
from .runtime import Progress

__all__ = ["build_in_two_processes", "started_applier"]

log = logging.getLogger(__name__)

_BATCH = 2_500
"""Events per frame: big enough to amortise a write, small enough to keep both busy and
the applier's queue of frames small. Against 5,000, in alternation: on 1M events the
whole replay peaked at 470-472 MB against 486-493 (58-62 s against 61-64); on 200k
events 395-405 MB against 411-416, at 14.7-18.2k events/s against 17.7-18.3k (a cost
within the noise of this machine, and the price of staying under 500 MB on 1M)."""
_LINGER_S = 0.002
"""A frame waits this long to fill: fewer, bigger writes."""
_MAX_PENDING = 200_000
_F_SETPIPE_SZ = 1031
_PIPE_BYTES = 1 << 20


@contextlib.asynccontextmanager
async def started_applier(building: Path, until: datetime | None = None,
                          until_seq: int | None = None) -> AsyncIterator[Process]:
    """The applier process building ``building`` (it records the bounds in the file's
    info), killed on the way out unless it has exited by then.

    Started before anything is read: its start-up (the imports, about half a second) then
    overlaps whatever the reader does first, the sample of idle CPUs included.
    """
    applier = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "projections.replay_applier", str(building),
        until.isoformat() if until is not None else "",
        str(until_seq) if until_seq is not None else "",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        yield applier
    finally:
        await _end(applier)  # cancelled, not chosen, or the reader failed


async def _end(applier: Process) -> None:
    """Kills the applier unless it has exited, and reaps it."""
    if applier.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            applier.kill()
    await applier.wait()


async def build_in_two_processes(store: EventStore, applier: Process, target: int,
                                 progress: Progress | None = None) -> int:
    """Feeds ``applier`` (``started_applier``) every event up to ``target``; returns the
    position it built to."""
    stdin, stdout, stderr = applier.stdin, applier.stdout, applier.stderr
    if stdin is None or stdout is None or stderr is None:
        raise ProjectionError("the replay's applier has no pipes")
    _widen_pipe(stdin)
    sending = asyncio.create_task(_send(store, stdin, target))
    last_words = asyncio.create_task(_tail(stderr))
    try:
        position, stopped = await _follow(stdout, target, progress)
        await applier.wait()
    finally:
        sending.cancel()
        # A reading error is raised from here, whatever its type (a ConnectionError from
        # the log included); only the applier's end of the pipe closing is not one.
        with contextlib.suppress(asyncio.CancelledError, _ApplierGone):
            await sending
        await _end(applier)  # done; or cancelled, or the reader failed: nothing to finish
    said = await last_words
    if applier.returncode != 0 or position is None:
        raise ProjectionError(f"the replay's applier exited with code {applier.returncode}: "
                              f"{said or 'no message'}")
    if position != target and not stopped:
        raise ProjectionError(f"the replay's applier ended at seq {position} of {target} "
                              "with no time bound to stop it")
    return position


async def _tail(stream: asyncio.StreamReader) -> str:
    """Reads a process's stderr to its end (so it never blocks on it); its last line."""
    last = ""
    while line := await stream.readline():
        last = line.decode(errors="replace").strip() or last
    return last


def _widen_pipe(writer: asyncio.StreamWriter) -> None:
    # A deeper pipe lets the reader run a few batches ahead of the applier.
    transport = writer.transport
    fd = transport.get_extra_info("pipe").fileno()
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)


async def _follow(lines: asyncio.StreamReader, target: int, progress: Progress | None
                  ) -> tuple[int | None, bool]:
    """Reads the applier's reports until it is done: the position it reached (None if it
    never said it was done), and whether a time bound stopped it there."""
    stopped = False
    while line := await lines.readline():
        kind, _, value = line.decode(errors="replace").partition(" ")
        if kind not in ("P", "S", "D") or not value.strip().isdigit():
            continue  # not a report
        position = int(value)
        if kind == "D":
            return position, stopped
        stopped = stopped or kind == "S"
        if progress is not None:
            progress(position, target)
    return None, stopped


async def _send(store: EventStore, sink: asyncio.StreamWriter, target: int) -> None:
    """Writes every event up to ``target``, in order, then the end frame.

    On any failure the pipe is closed without the end frame: the applier commits what it
    has and exits, and the failure is raised here.
    """
    expected = 1
    try:
        while expected <= target:
            feed = await open_feed(store, expected, _MAX_PENDING)
            try:
                expected = await _send_from(feed, sink, expected, target)
            finally:
                await feed.close()
        await _write(sink, END)
    finally:
        sink.close()


class _ApplierGone(Exception):
    """The applier closed its end of the pipe: it stopped at a time bound, or it died
    (which its exit code tells)."""


async def _write(sink: asyncio.StreamWriter, data: bytes) -> None:
    try:
        sink.write(data)
        await sink.drain()
    except (BrokenPipeError, ConnectionResetError) as gone:
        raise _ApplierGone from gone


async def _send_from(feed: EventFeed, sink: asyncio.StreamWriter, expected: int,
                     target: int) -> int:
    """Sends from one subscription until done or a gap; returns the next sequence wanted.

    Only a gap at the very start of a subscription is real (deleted messages); any other
    one means the feed lost events, and they are read again from a new subscription, as
    after a stall.
    """
    fresh = True
    while expected <= target:
        records = await next_batch_within(feed, _BATCH, _LINGER_S, STALL_S)
        if records is None:
            log.warning("no event for %.0f s with seq %d still to read: reading again from "
                        "there", STALL_S, expected)
            return expected
        wanted, expected, gap = contiguous_run(records, expected, fresh, target)
        fresh = False
        if wanted:
            await _write(sink, encode_batch(wanted, target))
        if gap:
            break
        if records[-1].seq >= target:
            return target + 1
    return expected
