"""The same command mix on an ``eventsourcing`` Application, persisted to SQLite or PostgreSQL.

What a Python user would pick instead of runlog: aggregates, optimistic
concurrency and a notification log, called in-process (no network hop to a service).

Run as a script it prints one JSON line (commands/s, CPU µs/command of this process
over the measured window, p50/p99 per command):
``python tests/bench/es_baseline.py --backend postgres --runs 400 --threads 8``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

PRICES = {"gpt-4o": (2.5, 10.0), "claude-sonnet-4": (3.0, 15.0),
          "gemini-2.5-flash": (0.3, 2.5), "gpt-4.1-mini": (0.4, 1.6)}
POSTGRES_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
"""The local benchmark peer: trust auth, database ``test``."""


class Run(Aggregate):
    """A run with the rules runlog's Run enforces for this mix."""

    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name
        self.state = "pending"
        self.cost_usd = 0.0

    @event("Started")
    def start(self) -> None:
        if self.state != "pending":
            raise ValueError("start needs pending")
        self.state = "running"

    @event("UsageRecorded")
    def record_usage(self, model: str, tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        self.cost_usd += cost_usd

    @event("Succeeded")
    def succeed(self) -> None:
        if self.state != "running":
            raise ValueError("succeed needs running")
        self.state = "succeeded"


class Runs(Application[UUID]):
    """The application service: one method per command."""

    def create(self, name: str) -> UUID:
        run = Run(name)
        self.save(run)
        return run.id

    def act(self, run_id: UUID, action: str, **kwargs: Any) -> None:
        run: Run = self.repository.get(run_id)
        if action == "usage":
            price_in, price_out = PRICES[kwargs["model"]]
            cost = (kwargs["tokens_in"] * price_in + kwargs["tokens_out"] * price_out) / 1e6
            run.record_usage(cost_usd=cost, **kwargs)
        else:
            getattr(run, action)()
        self.save(run)


def lifecycle(app: Runs, n: int, latencies: list[float]) -> int:
    """create, start, 4 x usage (priced), succeed: 7 commands, each one timed."""
    started = time.perf_counter()
    run_id = app.create(f"run {n}")
    latencies.append(time.perf_counter() - started)
    steps: list[tuple[str, dict[str, Any]]] = [("start", {})]
    steps += [("usage", {"model": model, "tokens_in": 1200 + i, "tokens_out": 300 + i})
              for i, model in enumerate(PRICES)]
    steps.append(("succeed", {}))
    for action, kwargs in steps:
        started = time.perf_counter()
        app.act(run_id, action, **kwargs)
        latencies.append(time.perf_counter() - started)
    return 7


@contextlib.contextmanager
def sqlite_env() -> Iterator[dict[str, str]]:
    """A fresh SQLite file."""
    with tempfile.TemporaryDirectory() as folder:
        yield {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
               "SQLITE_DBNAME": os.path.join(folder, "runs.sqlite"), "SQLITE_LOCK_TIMEOUT": "30"}


@contextlib.contextmanager
def postgres_env(threads: int, dsn: str = POSTGRES_DSN) -> Iterator[dict[str, str]]:
    """A fresh schema in the local PostgreSQL, dropped afterwards."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            params = dict(item.split("=", 1) for item in dsn.split())
            yield {"PERSISTENCE_MODULE": "eventsourcing.postgres",
                   "POSTGRES_DBNAME": params["dbname"], "POSTGRES_HOST": params["host"],
                   "POSTGRES_PORT": params["port"], "POSTGRES_USER": params["user"],
                   "POSTGRES_PASSWORD": params.get("password", ""),
                   "POSTGRES_SCHEMA": schema, "POSTGRES_POOL_SIZE": str(threads),
                   "POSTGRES_MAX_OVERFLOW": str(threads)}
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def postgres_available(dsn: str = POSTGRES_DSN) -> str | None:
    """None when the PostgreSQL peer answers, else why not (one line)."""
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as error:  # any failure means: no peer to compare with
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


def measure_detailed(runs: int, threads: int, backend: str = "sqlite") -> dict[str, float]:
    """Commands/s, CPU µs/command of this process and p50/p99 of ``runs`` lifecycles."""
    environment = sqlite_env() if backend == "sqlite" else postgres_env(threads)
    with environment as env:
        app = Runs(env=env)
        per_thread = max(1, runs // threads)
        counts = [0] * threads
        latencies: list[list[float]] = [[] for _ in range(threads)]

        def worker(index: int) -> None:
            counts[index] = sum(lifecycle(app, index * per_thread + n, latencies[index])
                                for n in range(per_thread))

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        cpu_started, started = time.process_time(), time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        app.close()
    commands = sum(counts)
    ordered = sorted(sample for samples in latencies for sample in samples)
    return {"commands": commands, "commands_per_s": commands / elapsed,
            "cpu_us_per_command": cpu_s / commands * 1e6,
            "p50_ms": ordered[len(ordered) // 2] * 1e3,
            "p99_ms": ordered[int(len(ordered) * 0.99)] * 1e3, "failures": 0}


def measure(runs: int, threads: int) -> float:
    """Commands per second of ``runs`` lifecycles over ``threads`` threads (SQLite)."""
    return measure_detailed(runs, threads)["commands_per_s"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", type=int, default=200, help="lifecycles (7 commands each)")
    parser.add_argument("--threads", type=int, default=8)
    options = parser.parse_args()
    print(json.dumps(measure_detailed(options.runs, options.threads, options.backend)))
