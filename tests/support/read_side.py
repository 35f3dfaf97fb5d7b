"""Helpers for read-side tests and benchmarks: realistic event histories and table dumps.

Events are written straight to the store (no command service): each carries the
envelope a command would give it, ``from_state`` and ``to_state`` included.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from events import EventEnvelope, event_subject
from services.store import EventStore, JetStreamEventStore, OutgoingMessage

__all__ = [
    "EventLog",
    "append_all",
    "append_raw",
    "dump_tables",
    "publish_fast",
    "random_history",
    "run_lifecycle",
    "serialised",
    "setup_fleet",
    "table_digests",
]

_VOLATILE = {"checkpoints": ("updated_at", "stream_head"), "projection_errors": ("failed_at",),
             "read_model_info": ("value",)}


class EventLog:
    """Builds envelopes with consistent versions and states per aggregate."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(seconds=1)):
        self.clock = start or datetime(2025, 1, 1, tzinfo=UTC)
        self.step = step
        self.versions: dict[tuple[str, str], int] = {}
        self.states: dict[tuple[str, str], str | None] = {}
        self.envelopes: list[EventEnvelope] = []

    def emit(self, aggregate: str, aggregate_id: str, event_type: str, to_state: str | None,
             /, schema_version: int = 1, **data: Any) -> EventEnvelope:
        """Appends one event to the history and returns it."""
        key = (aggregate, aggregate_id)
        version = self.versions.get(key, 0) + 1
        self.versions[key] = version
        self.clock += self.step
        envelope = EventEnvelope(
            type=event_type, schema_version=schema_version, event_id=uuid.uuid4().hex,
            aggregate=aggregate, aggregate_id=aggregate_id, version=version,
            occurred_at=self.clock, command_id=uuid.uuid4().hex,
            from_state=self.states.get(key), to_state=to_state, data=data,
        )
        if to_state is not None:
            self.states[key] = to_state
        self.envelopes.append(envelope)
        return envelope

    def now(self) -> str:
        """The history's clock, as ISO text."""
        return self.clock.isoformat()


def setup_fleet(log: EventLog, worker_id: str = "w1", model: str = "gpt-test") -> None:
    """Registers a model with a price and a worker."""
    log.emit("model", model, "ModelRegistered", "active", model=model, provider="acme")
    log.emit("model", model, "ModelPriceSet", "active", model=model, provider="acme",
             input_usd_per_mtok=1.0, output_usd_per_mtok=2.0,
             effective_from="2024-01-01T00:00:00+00:00")
    log.emit("worker", worker_id, "WorkerRegistered", "idle", worker_id=worker_id,
             kinds=["llm"], capacity=4, at=log.now())


def run_lifecycle(log: EventLog, run_id: str, tasks: int = 3, usage_per_task: int = 1,
                  worker_id: str = "w1", model: str = "gpt-test", end: str = "succeeded"
                  ) -> None:
    """A whole run: created, started, tasks leased, started and succeeded with usage, ended."""
    log.emit("run", run_id, "RunCreated", "pending", run_id=run_id, name=f"run {run_id}",
             labels={"team": "a"}, budget={"max_tokens": 1_000_000, "max_cost_usd": 10.0})
    log.emit("run", run_id, "RunStarted", "running", run_id=run_id)
    for index in range(tasks):
        _task(log, run_id, f"{run_id}-t{index}", usage_per_task, worker_id, model)
    ending = {"succeeded": "RunSucceeded", "failed": "RunFailed"}[end]
    log.emit("run", run_id, ending, end, run_id=run_id)


def _task(log: EventLog, run_id: str, task_id: str, usage: int, worker_id: str,
          model: str) -> None:
    log.emit("task", task_id, "TaskSubmitted", "queued", task_id=task_id, run_id=run_id,
             kind="llm", priority=5, max_attempts=3, payload={"prompt": "hi"},
             submitted_at=log.now())
    log.emit("task", task_id, "TaskLeased", "leased", task_id=task_id, worker_id=worker_id,
             lease_epoch=1, lease_expires_at=log.now(), lease_ttl_s=30.0, attempt=1)
    log.emit("worker", worker_id, "WorkerTaskAssigned", "busy", worker_id=worker_id,
             task_id=task_id)
    log.emit("task", task_id, "TaskStarted", "running", task_id=task_id, worker_id=worker_id,
             lease_epoch=1)
    for _ in range(usage):
        log.emit("run", run_id, "UsageRecorded", "running", run_id=run_id, task_id=task_id,
                 worker_id=worker_id, model=model, provider="acme", tokens_in=100,
                 tokens_out=50, latency_ms=12.5, outcome="ok", input_usd_per_mtok=1.0,
                 output_usd_per_mtok=2.0, price_effective_from="2024-01-01T00:00:00+00:00",
                 cost_usd=0.0002)
    log.emit("task", task_id, "TaskSucceeded", "succeeded", task_id=task_id,
             worker_id=worker_id, lease_epoch=1, attempt=1, result={"ok": True})
    log.emit("worker", worker_id, "WorkerTaskReleased", "idle", worker_id=worker_id,
             task_id=task_id)


def random_history(rng: random.Random, runs: int = 10, max_tasks: int = 6) -> EventLog:
    """A valid history of random shape: runs and tasks interleaved, each on a random path.

    Tasks stay queued, are cancelled, retried, fail or succeed, with heartbeats and priced
    usage on the way; runs end (or not) at random moments, with tasks still in flight.
    """
    log = EventLog()
    workers = [f"w{n}" for n in range(3)]
    for worker_id in workers:
        setup_fleet(log, worker_id)
    walks: list[Iterator[None]] = []
    walks.extend(_run_walk(log, rng, f"r{n}", workers, max_tasks, walks) for n in range(runs))
    while walks:
        walk = rng.choice(walks)
        if next(walk, StopIteration) is StopIteration:
            walks.remove(walk)
    return log


def _run_walk(log: EventLog, rng: random.Random, run_id: str, workers: list[str],
              max_tasks: int, walks: list[Iterator[None]]) -> Iterator[None]:
    log.emit("run", run_id, "RunCreated", "pending", run_id=run_id, name=f"run {run_id}",
             labels={"team": rng.choice("abc")}, budget={"max_cost_usd": 10.0})
    yield
    log.emit("run", run_id, "RunStarted", "running", run_id=run_id)
    yield
    walks.extend(_task_walk(log, rng, run_id, f"{run_id}-t{n}", rng.choice(workers))
                 for n in range(rng.randint(0, max_tasks)))
    for _ in range(rng.randint(0, 6)):
        yield  # the run's tasks move on meanwhile
    ending = rng.choice(["RunSucceeded", "RunFailed", "RunCancelled", None])
    if ending is not None:
        log.emit("run", run_id, ending, ending.removeprefix("Run").lower(), run_id=run_id)


def _task_walk(log: EventLog, rng: random.Random, run_id: str, task_id: str,
               worker_id: str) -> Iterator[None]:
    log.emit("task", task_id, "TaskSubmitted", "queued", task_id=task_id, run_id=run_id,
             kind="llm", priority=rng.randint(0, 9), max_attempts=3, payload={},
             submitted_at=log.now())
    yield
    for attempt in range(1, 4):
        if rng.random() < 0.15:
            if rng.random() < 0.5:
                log.emit("task", task_id, "TaskCancelled", "cancelled", task_id=task_id)
            return  # or it stays queued
        yield from _attempt(log, rng, run_id, task_id, worker_id, attempt)
        end = rng.random()
        if end < 0.1:
            return  # still leased or running
        if end < 0.55:
            log.emit("task", task_id, "TaskSucceeded", "succeeded", task_id=task_id,
                     worker_id=worker_id, lease_epoch=attempt, attempt=attempt, result={})
            _release(log, worker_id, task_id)
            return
        if end < 0.8 and attempt < 3:
            log.emit("task", task_id, "TaskRetryScheduled", "retry_wait", task_id=task_id,
                     worker_id=worker_id, attempt=attempt, error_class="rate_limit",
                     retry_at=log.now())
            _release(log, worker_id, task_id)
            yield
            log.emit("task", task_id, "TaskRequeued", "queued", task_id=task_id)
            yield
            continue
        log.emit("task", task_id, "TaskFailed", "failed", task_id=task_id, worker_id=worker_id,
                 attempt=attempt, error_class="auth")
        _release(log, worker_id, task_id)
        return


def _release(log: EventLog, worker_id: str, task_id: str) -> None:
    log.emit("worker", worker_id, "WorkerTaskReleased", "idle", worker_id=worker_id,
             task_id=task_id)


def _attempt(log: EventLog, rng: random.Random, run_id: str, task_id: str, worker_id: str,
             attempt: int) -> Iterator[None]:
    log.emit("task", task_id, "TaskLeased", "leased", task_id=task_id, worker_id=worker_id,
             lease_epoch=attempt, lease_expires_at=log.now(), lease_ttl_s=30.0, attempt=attempt)
    log.emit("worker", worker_id, "WorkerTaskAssigned", "busy", worker_id=worker_id,
             task_id=task_id)
    yield
    state = "running" if rng.random() < 0.8 else "leased"
    if state == "running":
        log.emit("task", task_id, "TaskStarted", "running", task_id=task_id,
                 worker_id=worker_id, lease_epoch=attempt)
        yield
    for _ in range(rng.randint(0, 2)):
        log.emit("task", task_id, "TaskHeartbeatReceived", state, task_id=task_id,
                 worker_id=worker_id, lease_epoch=attempt, lease_expires_at=log.now())
        yield
    for _ in range(rng.randint(0, 2)):
        tokens_in, tokens_out = rng.randint(1, 5000), rng.randint(1, 2000)
        log.emit("run", run_id, "UsageRecorded", log.states.get(("run", run_id)),
                 run_id=run_id, task_id=task_id, worker_id=worker_id, model="gpt-test",
                 provider="acme", tokens_in=tokens_in, tokens_out=tokens_out,
                 latency_ms=rng.uniform(1, 900), outcome="ok", input_usd_per_mtok=1.0,
                 output_usd_per_mtok=2.0, price_effective_from="2024-01-01T00:00:00+00:00",
                 cost_usd=(tokens_in + 2 * tokens_out) / 1e6)
        yield


def _message(store: EventStore, envelope: EventEnvelope, payload: bytes | None = None,
             headers: dict[str, str] | None = None) -> OutgoingMessage:
    subject = event_subject(envelope.aggregate, envelope.aggregate_id, store.subject_prefix)
    return OutgoingMessage(subject, payload if payload is not None else envelope.to_json(),
                           f"{envelope.command_id}:0", headers or {})


async def append_all(store: EventStore, envelopes: Iterable[EventEnvelope],
                     headers: dict[str, str] | None = None) -> int:
    """Appends events one by one (acked); returns the last stream sequence."""
    last = 0
    for envelope in envelopes:
        last = (await store.append([_message(store, envelope, headers=headers)])
                ).last_seq
    return last


async def append_raw(store: JetStreamEventStore, envelope: EventEnvelope, payload: bytes) -> int:
    """Appends a hand-made body on an event's subject (a poison event), under a fresh msg id."""
    subject = event_subject(envelope.aggregate, envelope.aggregate_id, store.subject_prefix)
    message = OutgoingMessage(subject, payload, uuid.uuid4().hex)
    return (await store.append([message])).last_seq


async def publish_fast(store: JetStreamEventStore,
                       messages: Sequence[tuple[str, bytes]]) -> None:
    """Publishes pre-serialised events pipelined (``publish_async``), then waits for every ack."""
    js = store.js
    for subject, payload in messages:
        await js.publish_async(subject, payload)
    await js.publish_async_completed()


def serialised(store: JetStreamEventStore, envelopes: Iterable[EventEnvelope]
               ) -> list[tuple[str, bytes]]:
    """Returns ``(subject, body)`` pairs ready for ``publish_fast``."""
    return [(event_subject(e.aggregate, e.aggregate_id, store.subject_prefix), e.to_json())
            for e in envelopes]


def dump_tables(path: Path, tables: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Reads every row of these tables (volatile bookkeeping left out), in a stable order."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {name: _dump(con, name) for name in tables}
    finally:
        con.close()


def _dump(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
    columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
    kept = [c for c in columns if c not in _VOLATILE.get(table, ())]
    # Cast to text: equal values compare equal whatever their Python type (and no pytz needed).
    select = ", ".join(f"CAST({c} AS VARCHAR)" for c in kept)
    rows = con.execute(f"SELECT {select} FROM {table}").fetchall()
    return sorted(rows, key=lambda row: tuple("" if v is None else str(v) for v in row))


def table_digests(path: Path) -> dict[str, tuple[int, int]]:
    """Every base table's row count and order-independent sum of row hashes (bookkeeping left out).

    Values are hashed as stored, so a MAP whose entries come in another order, or a float
    summed in another order, hashes differently: equal digests mean equal rows.
    """
    con = duckdb.connect(str(path), read_only=True)
    try:
        # Bookkeeping of the file, not what the log holds: how it was built (live or replay)
        # and whether a service beats into it.
        tables = [row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND table_name "
            "NOT IN ('read_model_info', 'service_liveness') ORDER BY 1").fetchall()]
        return {name: _digest(con, name) for name in tables}
    finally:
        con.close()


def _digest(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int]:
    columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
    kept = ", ".join(f'"{c}"' for c in columns if c not in _VOLATILE.get(table, ()))
    row = con.execute(f"SELECT count(*), coalesce(sum(CAST(hash({kept}) AS HUGEINT)), 0) "
                      f"FROM {table}").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
