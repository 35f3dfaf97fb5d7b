"""``runlog demo``: everything started in a fresh directory, a simulated multi-agent
workload driven through the command subjects, then what the read models say."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .context import RunlogCommand, state
from .output import Section, emit_sections, output_option, say

if TYPE_CHECKING:
    from services.demo import DemoReport
    from services.settings import Settings

__all__ = ["REPORT_QUERIES", "command"]

REPORT_QUERIES: tuple[tuple[str, str], ...] = (
    ("Runs by state",
     "SELECT state, count(*) AS runs, sum(tokens_in + tokens_out) AS tokens, "
     "round(sum(cost_usd), 4) AS cost_usd FROM runs GROUP BY state ORDER BY runs DESC"),
    ("Cost by model",
     "SELECT model, provider, count(*) AS calls, sum(tokens_in) AS tokens_in, "
     "sum(tokens_out) AS tokens_out, round(sum(cost_usd), 4) AS cost_usd FROM usage "
     "GROUP BY model, provider ORDER BY cost_usd DESC"),
    ("Cached input by model",
     "SELECT model, sum(cached_tokens_in) AS cached_tokens_in, round(sum(cost_usd), 4) AS "
     "cost_usd FROM quota_daily GROUP BY model ORDER BY cost_usd DESC LIMIT 5"),
    ("Budget forecast",
     "SELECT budget_id, round(spent_cost_usd, 4) AS spent_usd, round(cost_left_usd, 4) AS "
     "left_usd, round(burn_usd_per_hour_last_hour, 4) AS usd_last_hour, "
     "projected_exhaustion_at, exhausted_by FROM budget_forecast "
     "ORDER BY projected_exhaustion_at NULLS LAST LIMIT 5"),
    ("Costliest runs",
     "SELECT run_id, state, tokens_in + tokens_out AS tokens, round(cost_usd, 4) AS cost_usd "
     "FROM runs ORDER BY cost_usd DESC LIMIT 5"),
    ("Tasks by state",
     "SELECT state, count(*) AS tasks, sum(attempts) AS attempts FROM tasks "
     "GROUP BY state ORDER BY tasks DESC"),
    ("Latest transitions",
     "SELECT seq, aggregate, aggregate_id, event_type, from_state, to_state FROM transitions "
     "ORDER BY seq DESC LIMIT 8"),
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """The workload's shape."""

    runs: int
    workers: int
    seed: int


@click.command("demo", cls=RunlogCommand)
@click.option("--runs", type=click.IntRange(min=1, max=1000), default=12,
              help="pipeline runs to drive")
@click.option("--workers", type=click.IntRange(min=1, max=200), default=6,
              help="simulated agents")
@click.option("--seed", type=int, default=7, help="seed of the simulation")
@output_option(formats=("table", "json", "jsonl"))
def command(runs: int, workers: int, seed: int, output: str) -> int:
    """Run a simulated agent workload in <data dir>/demo (wiped first) and show the results."""
    from services.bootstrap import nats_server
    from services.lockfile import DataDirLock

    settings = state().settings()
    demo_dir = settings.data_dir / "demo"
    with DataDirLock(demo_dir):
        for stale in demo_dir.iterdir():
            if stale.name != "runlog.lock":
                _remove(stale)
        # Always embedded: a demo must never write into a real deployment's stream.
        demo = settings.model_copy(update={"data_dir": demo_dir, "nats_url": None})
        with nats_server(demo) as url:
            sections = asyncio.run(_demo(url, demo, DemoOptions(runs, workers, seed)))
    emit_sections(sections, output)
    say(f"\nThe demo's data stays in {demo_dir}; query it with:\n"
        f"  runlog sql --data-dir {demo_dir} \"SELECT * FROM runs\"")
    return 0


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


async def _demo(url: str, settings: Settings, options: DemoOptions) -> list[Section]:
    from services.bootstrap import connect_nats, serve
    from services.demo import run_workload
    from services.sdk import Client

    started = time.monotonic()
    async with serve(settings, url) as instance:
        say(f"[demo] runlog is up (NATS {url}); driving {options.runs} runs with "
            f"{options.workers} agents")
        nc = await connect_nats(url, "runlog-demo", settings=settings)
        try:
            report = await run_workload(Client(nc), options.runs, options.workers,
                                        options.seed)
        finally:
            await nc.close()
        read_side = instance.read_side
        assert read_side is not None, "serve() runs the projectors by default"
        await read_side.wait_for_seq(report.last_seq, timeout_s=30)
        say(f"[demo] {report.commands} commands, {report.last_seq} events, projections "
            f"caught up in {time.monotonic() - started:.1f}s")
        sections = [_outcomes(report)]
        for title, sql in REPORT_QUERIES:
            result = await read_side.query(sql)
            sections.append((title, result.columns, result.rows))
    say(f"[demo] stopped cleanly after {time.monotonic() - started:.1f}s")
    return sections


def _outcomes(report: DemoReport) -> Section:
    """What the simulated agents saw, from the replies."""
    counted = sorted(report.outcomes.items(), key=lambda kv: -kv[1])
    return ("What the agents saw", ("count", "outcome"), [(n, name) for name, n in counted])
