"""The same command mix on an ``eventsourcing`` Application persisted to SQLite in a file.

What a Python user would pick instead of runlog: aggregates, optimistic
concurrency and a notification log, with no network hop at all.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

PRICES = {"gpt-4o": (2.5, 10.0), "claude-sonnet-4": (3.0, 15.0),
          "gemini-2.5-flash": (0.3, 2.5), "gpt-4.1-mini": (0.4, 1.6)}


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


def lifecycle(app: Runs, n: int) -> int:
    run_id = app.create(f"run {n}")
    app.act(run_id, "start")
    for i, model in enumerate(PRICES):
        app.act(run_id, "usage", model=model, tokens_in=1200 + i, tokens_out=300 + i)
    app.act(run_id, "succeed")
    return 7


def measure(runs: int, threads: int) -> float:
    """Commands per second of ``runs`` lifecycles over ``threads`` threads."""
    with tempfile.TemporaryDirectory() as folder:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
               "SQLITE_DBNAME": os.path.join(folder, "runs.sqlite"), "SQLITE_LOCK_TIMEOUT": "30"}
        app = Runs(env=env)
        per_thread = runs // threads
        counts = [0] * threads

        def worker(index: int) -> None:
            counts[index] = sum(lifecycle(app, index * per_thread + n) for n in range(per_thread))

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        started = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - started
        app.close()
        return sum(counts) / elapsed
