"""``runlog status [--once]``: a live view of runs, queues, work, workers, breakers, budgets, lag.

Each refresh is one SQL statement on the read models (every section as a list of
rows, so one round trip) plus the stream head from NATS for the projector lag.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from .context import RunlogCommand, state
from .output import emit_record, output_option

if TYPE_CHECKING:
    from nats.aio.client import Client
    from rich.console import RenderableType

__all__ = ["SNAPSHOT_SQL", "Snapshot", "command", "take_snapshot"]

_SECTIONS: tuple[tuple[str, str], ...] = (
    ("runs", "SELECT state, count(*) AS runs FROM runs GROUP BY state ORDER BY runs DESC"),
    ("queues", "SELECT kind, count(*) FILTER (WHERE state = 'queued') AS queued, "
     "count(*) FILTER (WHERE state IN ('leased', 'running')) AS running, "
     "count(*) FILTER (WHERE state = 'retry_wait') AS retry_wait FROM tasks "
     "WHERE state IN ('queued', 'leased', 'running', 'retry_wait') GROUP BY kind ORDER BY kind"),
    ("running", "SELECT task_id, run_id, kind, state, worker_id, attempts, "
     "CAST(epoch(now() - coalesce(started_at, leased_at)) AS BIGINT) AS for_s FROM tasks "
     "WHERE state IN ('leased', 'running') ORDER BY coalesce(started_at, leased_at) LIMIT 10"),
    ("workers", "SELECT worker_id, state, active_tasks, capacity, "
     "CAST(epoch(now() - last_heartbeat_at) AS BIGINT) AS silent_s FROM workers "
     "WHERE state <> 'offline' ORDER BY worker_id LIMIT 20"),
    ("breakers", "SELECT breaker_id, state, consecutive_failures, open_until FROM breakers "
     "WHERE state <> 'closed' ORDER BY breaker_id"),
    ("budgets", "SELECT budget_id, state, spent_tokens, max_tokens, round(spent_cost_usd, 4) "
     "AS spent_usd, max_cost_usd AS max_usd FROM budgets WHERE state <> 'closed' "
     "ORDER BY budget_id LIMIT 10"),
    ("projections", "SELECT projection, last_seq FROM checkpoints ORDER BY projection"),
    ("service", "SELECT status, detail FROM health WHERE component = 'service'"),
)
SNAPSHOT_SQL = "SELECT " + ", ".join(
    f"(SELECT coalesce(list(to_json(s)), []) FROM ({sql}) AS s) AS {name}"
    for name, sql in _SECTIONS)
"""Every section in one row: one JSON document per section row."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the read models and the stream said at one moment."""

    sections: dict[str, list[dict[str, Any]]]
    stream_head: int | None
    problem: str | None = None
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def lag(self) -> int | None:
        """Events the slowest projection is behind the stream head."""
        seqs = [int(p["last_seq"] or 0) for p in self.sections.get("projections", [])]
        if self.stream_head is None or not seqs:
            return None
        return max(self.stream_head - min(seqs), 0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"taken_at": self.taken_at.isoformat(), "stream_head": self.stream_head,
                "projector_lag": self.lag, "problem": self.problem, **self.sections}


@click.command("status", cls=RunlogCommand)
@click.option("--once", is_flag=True,
              help="print the view once and exit (1 when runlog up could not be read)")
@click.option("--interval", type=click.FloatRange(min=0.2, max=3600), default=1.0,
              help="seconds between refreshes")
@output_option(formats=("table", "json"))
def command(once: bool, interval: float, output: str) -> int:
    """A live view of runs, queue depth, running tasks, workers, breakers, budgets and lag."""
    if output == "json" and not once:
        raise click.UsageError("-o json needs --once")
    return asyncio.run(_status(once, interval, output))


async def _status(once: bool, interval: float, output: str) -> int:
    async with _stream_connection() as nc:
        if once:
            snapshot = await take_snapshot(nc)
            if output == "json":
                emit_record(snapshot.to_dict(), "json")
            else:
                state().console().print(render(snapshot))
            return 1 if snapshot.problem else 0  # as health is, a failure for a script
        await _watch(nc, interval)
    return 0


async def _watch(nc: Client | None, interval: float) -> None:
    from rich.live import Live

    with Live(render(await take_snapshot(nc)), console=state().console(),
              auto_refresh=False, screen=False) as live:
        while True:
            await asyncio.sleep(interval)
            live.update(render(await take_snapshot(nc)), refresh=True)


@contextlib.asynccontextmanager
async def _stream_connection() -> AsyncIterator[Client | None]:
    """A NATS connection for the stream head, or None when nothing serves (the view says so)."""
    from services.errors import ServiceNotRunning

    from .connect import connect

    try:
        async with connect(state().settings(), "runlog-status") as nc:
            yield nc
    except ServiceNotRunning:
        yield None


async def take_snapshot(nc: Client | None) -> Snapshot:
    """Reads every section at once; a failure is reported in the snapshot, not raised."""
    import json

    from services.errors import RunlogError

    from .reads import query

    head = await _stream_head(nc)
    try:
        result = await query(SNAPSHOT_SQL, limit=1)
    except RunlogError as error:
        return Snapshot({}, head, str(error))
    row = dict(zip(result.columns, result.rows[0], strict=True))
    sections = {name: [json.loads(r) if isinstance(r, str) else r for r in row[name] or []]
                for name, _ in _SECTIONS}
    service = sections.get("service") or [{"status": "down", "detail": "unknown"}]
    problem = None if service[0]["status"] == "ok" else str(service[0]["detail"])
    return Snapshot(sections, head, problem)


async def _stream_head(nc: Client | None) -> int | None:
    if nc is None or not nc.is_connected:
        return None
    import nats.errors

    try:
        info = await nc.jetstream(timeout=2).stream_info(state().settings().stream)
    except (nats.errors.Error, TimeoutError):
        return None
    return int(info.state.last_seq)


def render(snapshot: Snapshot) -> RenderableType:
    """The view: a header line, then one small table per section."""
    from rich.console import Group
    from rich.text import Text

    header = Text.assemble(("runlog status", "bold"), f"  {snapshot.taken_at:%H:%M:%S} UTC  ")
    if snapshot.problem:
        header.append(f"runlog up is not running here: {snapshot.problem}", "bold red")
    else:
        lag = snapshot.lag
        header.append(f"stream at seq {snapshot.stream_head}, projector lag {lag}",
                      "green" if not lag else "yellow")
    shown = [(title, snapshot.sections.get(name, []))
             for name, title in (("runs", "Runs by state"), ("queues", "Queue depth by kind"),
                                 ("workers", "Workers"), ("breakers", "Open breakers"),
                                 ("budgets", "Budgets used"), ("running", "Running tasks"))]
    empty = [title for title, rows in shown if not rows]
    parts: list[RenderableType] = [header]
    parts += [_section(title, rows) for title, rows in shown if rows]
    if empty:
        parts.append(Text(f"none: {', '.join(empty).lower()}", style="dim"))
    return Group(*parts)


def _section(title: str, rows: list[dict[str, Any]]) -> RenderableType:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, min_width=len(title))
    for name in rows[0]:
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=34)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    return table
