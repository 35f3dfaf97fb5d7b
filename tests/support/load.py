"""Concurrent command clients for fault tests: every outcome kept, then checked on the log.

Each client sends ``run.create`` with its own command ids, one request at a time, as an
agent would. A reply is the service's word: ``ok`` (with its ``seq``) must then be on the
log exactly once; ``unavailable`` (or NATS saying no one serves the subject) is a clean
refusal; a request that gets no reply at all is *lost*, which the service never allows.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

__all__ = ["LoadReport", "drive_load", "log_msg_ids"]

_SUBJECT = "runlog.cmd.run.create"


@dataclass
class LoadReport:
    """What the clients saw."""

    acknowledged: dict[str, int] = field(default_factory=dict)
    """command id -> the ``seq`` its ``ok`` reply named."""
    codes: Counter[str] = field(default_factory=Counter)
    """Every reply's outcome: ``ok``, an error code, or ``no_responders``."""
    lost: list[str] = field(default_factory=list)
    """Command ids whose request got no reply at all (timeouts, connection loss)."""
    retried: int = 0

    @property
    def replies(self) -> int:
        """How many requests got an answer."""
        return sum(self.codes.values())

    def check_against_log(self, on_log: dict[str, list[int]]) -> None:
        """Every acknowledged command is on the log exactly once, at the sequence it was told."""
        missing = [cid for cid in self.acknowledged if cid not in on_log]
        assert not missing, f"{len(missing)} acknowledged commands not on the log: {missing[:5]}"
        twice = {cid: seqs for cid, seqs in on_log.items() if len(seqs) > 1}
        assert not twice, f"commands written more than once: {list(twice.items())[:5]}"
        wrong = {cid: (seq, on_log[cid]) for cid, seq in self.acknowledged.items()
                 if on_log[cid] != [seq]}
        assert not wrong, f"replies naming another sequence than the log: {list(wrong.items())[:5]}"


def _outcome(reply: dict[str, object]) -> str:
    if reply.get("ok") is True:
        return "ok"
    error = reply.get("error")
    return str(error.get("code")) if isinstance(error, dict) else "malformed"


async def _client(nc: Client, name: str, report: LoadReport, running: Callable[[], bool],
                  stop_when_refused: bool, timeout_s: float, retry: bool) -> None:
    n = 0
    while running():
        command_id = f"{name}-{n}"
        body = json.dumps({"run_id": command_id, "name": "load", "command_id": command_id})
        try:
            msg = await nc.request(_SUBJECT, body.encode(), timeout=timeout_s)
        except nats.errors.NoRespondersError:
            report.codes["no_responders"] += 1
            if stop_when_refused:
                return
            await asyncio.sleep(0.05)
            continue
        except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError,
                nats.errors.ConnectionReconnectingError, nats.errors.OutboundBufferLimitError):
            if not retry:
                report.lost.append(command_id)
                return
            report.retried += 1  # the same command id again: the log answers idempotently
            await asyncio.sleep(0.05)
            continue
        reply = json.loads(msg.data)
        outcome = _outcome(reply)
        report.codes[outcome] += 1
        if outcome == "ok":
            report.acknowledged[command_id] = int(reply["seq"])
        elif outcome == "unavailable" and stop_when_refused:
            return
        elif outcome in {"unavailable", "conflict"}:
            await asyncio.sleep(0.05)
            continue  # a transient answer: retry the same command id
        n += 1


async def drive_load(urls: list[str], clients: int, running: Callable[[], bool], *,
                     stop_when_refused: bool = True, timeout_s: float = 10.0,
                     retry: bool = False, report: LoadReport | None = None) -> LoadReport:
    """Runs ``clients`` concurrent clients, one connection each, while ``running()`` holds.

    ``retry``: a request without a reply is resent with the same command id (what a client
    does across a NATS restart) instead of being counted lost. ``report`` is filled as the
    replies come, for a caller that watches the progress.
    """
    report = report if report is not None else LoadReport()

    async def quiet(error: Exception) -> None:
        """Reconnect noise is expected here."""

    connections = [await nats.connect(urls, name=f"load-{i}", error_cb=quiet,
                                      max_reconnect_attempts=-1, reconnect_time_wait=0.2)
                   for i in range(clients)]
    prefix = f"l{int(time.time() * 1000) % 10**9}"
    try:
        await asyncio.gather(*(_client(nc, f"{prefix}-{i}", report, running, stop_when_refused,
                                       timeout_s, retry)
                               for i, nc in enumerate(connections)))
    finally:
        for nc in connections:
            await nc.close()
    return report


async def _last_seq(js: JetStreamContext, stream: str, deadline: float) -> int:
    """The stream's last sequence, asked again while a cluster elects its leader."""
    while True:
        try:
            return int((await js.stream_info(stream)).state.last_seq)
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _ordered(js: JetStreamContext, subjects: str, stream: str, deadline: float
                   ) -> JetStreamContext.PushSubscription:
    """An ordered consumer on the stream; its creation is retried while a cluster elects a
    leader (the request times out, or the stream answers that it is unavailable)."""
    while True:
        try:
            return await js.subscribe(subjects, stream=stream, ordered_consumer=True,
                                      pending_msgs_limit=500_000)
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def log_msg_ids(nc: Client, stream: str, subjects: str = "runlog.evt.run.>",
                      timeout_s: float = 30.0) -> dict[str, list[int]]:
    """command id -> the sequences of its first event (``Nats-Msg-Id`` ``<command id>:0``)."""
    js = nc.jetstream()
    last = await _last_seq(js, stream, time.monotonic() + timeout_s)
    found: dict[str, list[int]] = {}
    if not last:
        return found
    sub = await _ordered(js, subjects, stream, time.monotonic() + timeout_s)
    deadline = time.monotonic() + timeout_s
    try:
        seq = 0
        while seq < last and time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                try:
                    if (await sub.consumer_info()).num_pending == 0:
                        break
                except nats.errors.TimeoutError:
                    pass  # an election in progress: read on until the deadline
                continue
            seq = msg.metadata.sequence.stream
            msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
            command_id, _, index = msg_id.rpartition(":")
            if index == "0":
                found.setdefault(command_id, []).append(seq)
    finally:
        await sub.unsubscribe()
    return found
