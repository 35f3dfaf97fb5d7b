"""``runlog trace TRACE_ID``: the events and transitions one trace wrote, in log order."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import click

from services.errors import RunlogError

from .context import RunlogCommand, state
from .output import emit_rows, output_option

__all__ = ["TRACE_SQL", "command"]

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
TRACE_SQL = ("SELECT seq, occurred_at, aggregate, aggregate_id, event_type, from_state, "
             "to_state, command_id, span_id FROM transitions WHERE trace_id = '{trace_id}' "
             "ORDER BY seq")


@click.command("trace", cls=RunlogCommand)
@click.argument("trace_id")
@click.option("--events", "with_events", is_flag=True,
              help="also read each event from the log and show its own fields")
@output_option()
def command(trace_id: str, with_events: bool, output: str) -> int:
    """List the events and transitions of one trace (TRACE_ID: 32 hex digits)."""
    trace_id = trace_id.lower()
    if not _TRACE_ID.match(trace_id):
        raise click.BadParameter(f"{trace_id!r} is not a W3C trace id (32 hex digits)",
                                 param_hint="TRACE_ID")
    columns, rows = asyncio.run(_trace(trace_id, with_events))
    if not rows:
        raise RunlogError(f"no event of trace {trace_id} is in the read models (transitions)")
    emit_rows(columns, rows, output, note=f"({len(rows)} events of trace {trace_id})")
    return 0


async def _trace(trace_id: str, with_events: bool) -> tuple[list[str], list[list[Any]]]:
    from .reads import query

    result = await query(TRACE_SQL.format(trace_id=trace_id))
    if not with_events or not result.rows:
        return result.columns, result.rows
    fields = await _event_fields([int(row[0]) for row in result.rows])
    return ([*result.columns, "fields"],
            [[*row, fields.get(int(row[0]))] for row in result.rows])


async def _event_fields(seqs: list[int]) -> dict[int, Any]:
    """Each event's own fields (decoded and upcast), read from the log by sequence."""
    from events import ENVELOPE_FIELDS, EventEnvelope

    from .connect import connect

    settings = state().settings()
    found: dict[int, Any] = {}
    async with connect(settings, "runlog-trace") as nc:
        for seq in seqs:
            msg = await nc.request(f"$JS.API.DIRECT.GET.{settings.stream}",
                                   json.dumps({"seq": seq}).encode(), timeout=5)
            try:
                record = EventEnvelope.from_json(msg.data).to_dict()
            except Exception as error:  # shown, never fatal
                found[seq] = {"undecodable": str(error)}
                continue
            found[seq] = {k: v for k, v in record.items() if k not in ENVELOPE_FIELDS}
    return found
