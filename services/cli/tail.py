"""``runlog tail``: follow the event log from now, a sequence or a time, filtered.

Reads the stream itself (an ordered consumer through the event store's read API) and
decodes each event with the project's envelope codec, so old schema versions arrive
upcast. An event that cannot be decoded is shown raw, flagged, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

import click

from .context import RunlogCommand, state

if TYPE_CHECKING:
    from nats.aio.client import Client

    from services.store import JetStreamEventStore, RecordedEvent

__all__ = ["TailFilter", "command", "event_record"]

_STYLES = {"run": "cyan", "task": "green", "worker": "magenta", "breaker": "red",
           "budget": "yellow", "model": "blue"}


@dataclass(frozen=True, slots=True)
class TailFilter:
    """Which events to show."""

    aggregate: str | None = None
    aggregate_id: str | None = None
    types: frozenset[str] = frozenset()

    def subject(self, prefix: str = "runlog.evt") -> str:
        """The stream subject filter (aggregate and id are filtered by the server)."""
        if self.aggregate is None and self.aggregate_id is None:
            return f"{prefix}.>"
        return f"{prefix}.{self.aggregate or '*'}.{self.aggregate_id or '*'}"

    def accepts(self, record: dict[str, Any]) -> bool:
        """Whether a decoded event passes every filter."""
        return ((not self.types or record.get("type") in self.types)
                and self.aggregate in (None, record.get("aggregate"))
                and self.aggregate_id in (None, record.get("aggregate_id")))


@click.command("tail", cls=RunlogCommand)
@click.option("--from", "start", default="now", metavar="now|SEQ|TIME",
              help="where to start: now, a stream sequence, or an ISO 8601 time")
@click.option("--aggregate", default=None, metavar="TYPE", help="only events of this aggregate "
              "type (run, task, worker, ...)")
@click.option("--id", "aggregate_id", default=None, metavar="ID", help="only this aggregate id")
@click.option("--type", "types", multiple=True, metavar="EVENT",
              help="only this event type (e.g. TaskLeased); repeatable")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="stop after this many events")
@click.option("--no-follow", is_flag=True, help="stop at the stream's current end")
@click.option("-o", "--output", type=click.Choice(("pretty", "jsonl")), default="pretty",
              help="output format")
def command(start: str, aggregate: str | None, aggregate_id: str | None, types: tuple[str, ...],
            count: int | None, no_follow: bool, output: str) -> int:
    """Follow the event log (Ctrl-C stops it)."""
    from .reads import literal

    for value in (aggregate, aggregate_id, *types):
        if value is not None:
            literal(value)  # refuses wildcards and dots, which would widen the subject
    wanted = TailFilter(aggregate, aggregate_id, frozenset(types))
    return asyncio.run(_tail(start, wanted, count, no_follow, output))


async def _tail(start: str, wanted: TailFilter, count: int | None, no_follow: bool,
                output: str) -> int:
    from services.store import JetStreamEventStore, follow_log

    from .connect import connect

    settings = state().settings()
    async with connect(settings, "runlog-tail") as nc:
        store = JetStreamEventStore(nc, stream=settings.stream)
        head = await store.last_seq()
        first = await _first_seq(nc, store, start, head)
        if no_follow and first > head:
            return 0
        # Up to the end, every event is read and filtered here, so the feed surely reaches
        # the head; following, the server filters by subject.
        subjects = None if no_follow else wanted.subject(store.subject_prefix)
        events = follow_log(store, first, subjects, head if no_follow else None)
        async with contextlib.aclosing(events):
            await _print_events(events, wanted, count, output)
    return 0


async def _print_events(events: AsyncIterator[list[RecordedEvent]], wanted: TailFilter,
                        count: int | None, output: str) -> None:
    shown = 0
    async for batch in events:
        for event in batch:
            record = event_record(event)
            if not wanted.accepts(record):
                continue
            _show(record, output)
            shown += 1
            if count is not None and shown >= count:
                return


async def _first_seq(nc: Client, store: JetStreamEventStore, start: str, head: int) -> int:
    if start == "now":
        return head + 1
    if start.isdigit():
        return max(int(start), 1)
    from projections import parse_until

    moment = parse_until(start)
    return await _seq_at(nc, store.stream, moment.astimezone(UTC).isoformat(), head)


async def _seq_at(nc: Client, stream: str, when: str, head: int) -> int:
    """The first sequence at or after ``when`` (JetStream's direct get by start time)."""
    import nats.errors

    from services.errors import RunlogError

    try:
        msg = await nc.request(f"$JS.API.DIRECT.GET.{stream}",
                               json.dumps({"start_time": when}).encode(), timeout=5)
    except (nats.errors.Error, TimeoutError) as error:
        raise RunlogError(f"cannot find the events after {when}: {error}") from None
    headers = msg.headers or {}
    if "Nats-Sequence" not in headers:
        return head + 1  # nothing at or after that time yet: start at the end
    return int(headers["Nats-Sequence"])


def event_record(event: RecordedEvent) -> dict[str, Any]:
    """One stored event, decoded and upcast, with its stream sequence (or raw, flagged)."""
    try:
        envelope = event.envelope()
    except Exception as error:  # a bad event is shown, never fatal
        return {"seq": event.seq, "subject": event.subject, "undecodable": str(error),
                "raw": event.payload.decode(errors="replace")}
    traced = event.headers.get("traceparent")
    return {"seq": event.seq, **envelope.to_dict(),
            **({"traceparent": traced} if traced else {})}


_HEAD = frozenset({"seq", "type", "schema_version", "event_id", "aggregate", "aggregate_id",
                   "version", "occurred_at", "command_id", "from_state", "to_state",
                   "traceparent"})


def _show(record: dict[str, Any], output: str) -> None:
    if output == "jsonl":
        click.echo(json.dumps(record, ensure_ascii=False, default=str))
        return
    from rich.text import Text

    line = Text(f"{record['seq']:>8}  ", style="dim")
    if "undecodable" in record:
        line.append(f"undecodable event on {record['subject']}: {record['undecodable']}",
                    style="bold red")
    else:
        line.append(f"{str(record['occurred_at'])[11:23]}  ", style="dim")
        line.append(f"{record['aggregate']}/{record['aggregate_id']}",
                    style=_STYLES.get(record["aggregate"], ""))
        line.append(f"  {record['type']}", style="bold")
        if record.get("to_state") and record.get("from_state") != record.get("to_state"):
            line.append(f"  {record.get('from_state') or '∅'} → {record['to_state']}")
        fields = {k: v for k, v in record.items() if k not in _HEAD}
        if fields:
            line.append("  " + json.dumps(fields, ensure_ascii=False, default=str)[:200],
                        style="dim")
    state().console().print(line, soft_wrap=True)
