"""``runlog health``: is runlog serving? Exit 0 ok, 1 degraded, 2 down (Nagios style)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from .context import RunlogCommand, state
from .output import emit_record, emit_rows, output_option

if TYPE_CHECKING:
    from services.health import HealthReport, Thresholds

__all__ = ["command", "probe"]

_STYLES = {"ok": "green", "degraded": "yellow", "down": "bold red"}


@click.command("health", cls=RunlogCommand)
@click.option("--max-lag", type=click.IntRange(min=0), default=1000,
              help="events a projection may be behind before it counts as degraded")
@output_option(formats=("table", "json"))
def command(max_lag: int, output: str) -> int:
    """Check NATS, the stream, the command service, the read side, lag, workers, breakers
    and budgets; exit 0 ok, 1 degraded, 2 down."""
    from services.health import Thresholds

    report = asyncio.run(probe(Thresholds(max_lag=max_lag)))
    if output == "json":
        emit_record(report.to_dict(), "json")
    else:
        _print(report)
    return report.exit_code


async def probe(thresholds: Thresholds) -> HealthReport:
    """Observes and judges the runlog of this data directory (or ``--server``)."""
    from services.errors import ServiceNotRunning
    from services.health import evaluate, observe

    from .connect import connect
    from .reads import rows

    settings = state().settings()
    try:
        async with connect(settings, "runlog-health") as nc:
            facts = await observe(nc, rows, stream=settings.stream)
    except ServiceNotRunning as error:
        facts = await observe(None, rows, stream=settings.stream, nats_error=str(error))
    return evaluate(facts, thresholds)


def _print(report: HealthReport) -> None:
    from rich.text import Text

    console = state().console()
    console.print(Text.assemble("runlog is ", (str(report.status).upper(),
                                               _STYLES[str(report.status)])))
    emit_rows(("check", "status", "detail"),
              [(c.name, str(c.status), c.detail) for c in report.checks], "table")
