"""``runlog demo``: everything started in a fresh directory, a simulated multi-agent
workload driven through the command subjects, then what the read models say."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from services.bootstrap import connect_nats, nats_server, serve
from services.demo import DemoReport, run_workload
from services.demo.client import CommandClient
from services.lockfile import DataDirLock
from services.settings import Settings

__all__ = ["REPORT_QUERIES", "add_parser", "run"]

REPORT_QUERIES: tuple[tuple[str, str], ...] = (
    ("Runs by state",
     "SELECT state, count(*) AS runs, sum(tokens_in + tokens_out) AS tokens, "
     "round(sum(cost_usd), 4) AS cost_usd FROM runs GROUP BY state ORDER BY runs DESC"),
    ("Cost by model",
     "SELECT model, provider, count(*) AS calls, sum(tokens_in) AS tokens_in, "
     "sum(tokens_out) AS tokens_out, round(sum(cost_usd), 4) AS cost_usd FROM usage "
     "GROUP BY model, provider ORDER BY cost_usd DESC"),
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


def add_parser(verbs: Any) -> None:
    """Registers the verb."""
    parser = verbs.add_parser("demo", help="run a simulated agent workload and show the results")
    parser.add_argument("--runs", type=int, default=12, help="pipeline runs to drive")
    parser.add_argument("--workers", type=int, default=6, help="simulated agents")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulation")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Runs the demo on an embedded NATS in ``<data_dir>/demo`` (wiped first)."""
    demo_dir = settings.data_dir / "demo"
    with DataDirLock(demo_dir):
        for stale in demo_dir.iterdir():
            if stale.name != "runlog.lock":
                _remove(stale)
        # Always embedded: a demo must never write into a real deployment's stream.
        demo = settings.model_copy(update={"data_dir": demo_dir, "nats_url": None})
        with nats_server(demo) as url:
            asyncio.run(_demo(url, demo, args))
    print(f"\nThe demo's data stays in {demo_dir}; query it with:\n"
          f"  RUNLOG_DATA_DIR={demo_dir} runlog sql \"SELECT * FROM runs\"")
    return 0


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


async def _demo(url: str, settings: Settings, args: argparse.Namespace) -> None:
    started = time.monotonic()
    async with serve(settings, url) as instance:
        say(f"runlog is up (NATS {url}); driving {args.runs} runs with {args.workers} agents")
        nc = await connect_nats(url, "runlog-demo")
        try:
            report = await run_workload(CommandClient(nc), args.runs, args.workers, args.seed)
        finally:
            await nc.close()
        read_side = instance.read_side
        assert read_side is not None, "serve() runs the projectors by default"
        await read_side.wait_for_seq(report.last_seq, timeout_s=30)
        say(f"{report.commands} commands, {report.last_seq} events, projections caught up "
            f"in {time.monotonic() - started:.1f}s")
        show_outcomes(report)
        for title, sql in REPORT_QUERIES:
            print(f"\n{title}\n{await read_side.render(sql)}")
    say(f"stopped cleanly after {time.monotonic() - started:.1f}s")


def show_outcomes(report: DemoReport) -> None:
    """What the simulated agents saw, from the replies."""
    print("\nWhat the agents saw")
    for outcome, count in sorted(report.outcomes.items(), key=lambda kv: -kv[1]):
        print(f"  {count:5d}  {outcome}")


def say(message: str) -> None:
    """A progress line."""
    print(f"[demo] {message}", file=sys.stderr, flush=True)
