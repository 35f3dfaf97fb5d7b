"""docs/schema.md matches the code, and every table it documents exists with its columns."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from projections import ReadModelDb
from projections.docs import render_schema
from projections.runtime import Projector
from services.store import JetStreamEventStore
from tests.support.read_side import EventLog, append_all

DOC = Path(__file__).resolve().parents[3] / "docs" / "schema.md"
CONTRACT = {
    "runs": {"run_id", "name", "state", "created_at", "started_at", "ended_at", "tokens_in",
             "tokens_out", "cost_usd"},
    "tasks": {"task_id", "run_id", "kind", "state", "priority", "attempts", "worker_id"},
    "workers": {"worker_id", "state", "last_heartbeat_at"},
    "usage": {"seq", "occurred_at", "run_id", "task_id", "model", "provider", "tokens_in",
              "tokens_out", "cost_usd", "outcome"},
    "transitions": {"seq", "occurred_at", "aggregate", "aggregate_id", "event_type",
                    "from_state", "to_state", "trace_id"},
    "checkpoints": {"projection", "last_seq"},
}


def documented() -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    current = ""
    for line in DOC.read_text().splitlines():
        if heading := re.match(r"^## `(\w+)`", line):
            current = heading.group(1)
            tables[current] = set()
        elif current and (column := re.match(r"^\| `(\w+)` \|", line)):
            tables[current].add(column.group(1))
    return tables


def test_the_document_is_generated_from_the_code() -> None:
    assert DOC.read_text() == render_schema(), "run: python -m projections.docs > docs/schema.md"


def test_every_documented_table_exists_with_its_columns(tmp_path: Path) -> None:
    ReadModelDb.open_writer(tmp_path / "r.duckdb").close()
    con = duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True)
    try:
        for table, columns in documented().items():
            found = {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}
            assert columns == found, table
    finally:
        con.close()
    for table, columns in CONTRACT.items():
        assert columns <= documented()[table], table


@pytest.mark.nats
async def test_every_aggregate_fills_its_table(store: JetStreamEventStore, tmp_path: Path
                                               ) -> None:
    log = EventLog()
    log.emit("budget", "b1", "BudgetCreated", "active", budget_id="b1", name="team",
             max_cost_usd=5.0, max_tokens=None)
    log.emit("run", "rb", "RunCreated", "pending", run_id="rb", name="on b1", budget_id="b1")
    log.emit("run", "rb", "RunStarted", "running", run_id="rb")
    # As older versions wrote it: the usage without budget_id, and a BudgetCharged beside it
    # (counted once: a budget's spending is its runs' usage).
    log.emit("run", "rb", "UsageRecorded", "running", run_id="rb", model="m", provider="acme",
             tokens_in=100, tokens_out=50, input_usd_per_mtok=1.0, output_usd_per_mtok=1.0,
             price_effective_from="2025-01-01T00:00:00+00:00", cost_usd=0.5)
    log.emit("budget", "b1", "BudgetCharged", "active", budget_id="b1", run_id="rb",
             tokens=150, cost_usd=0.5)
    log.emit("budget", "b1", "BudgetRaised", "active", budget_id="b1", max_cost_usd=None,
             max_tokens=1000)
    log.emit("workstream", "ws1", "WorkstreamCreated", "pending", workstream_id="ws1",
             run_id="r1", name="backend", depends_on=[])
    log.emit("workstream", "ws1", "WorkstreamMarkedReady", "ready", workstream_id="ws1")
    log.emit("workstream", "ws1", "WorkstreamStarted", "running", workstream_id="ws1")
    log.emit("breaker", "acme", "BreakerConfigured", "closed", breaker_id="acme",
             failure_threshold=2, cooldown_s=30.0)
    log.emit("breaker", "acme", "BreakerOpened", "open", breaker_id="acme",
             until="2030-01-01T00:00:00+00:00", consecutive_failures=2, error_class="timeout")
    log.emit("patch", "p1", "PatchProposed", "proposed", patch_id="p1", run_id="r1",
             title="fix", files=["a.py"])
    log.emit("patch", "p1", "PatchRejected", "rejected", patch_id="p1", reason="lint")
    log.emit("gate", "g1", "GateCreated", "pending", gate_id="g1", run_id="r1", name="tests")
    log.emit("gate", "g1", "GateWaived", "waived", gate_id="g1", reason="flaky", by="ana")
    log.emit("worker", "w1", "WorkerRegistered", "idle", worker_id="w1", kinds=["llm"],
             capacity=2, at="2020-01-01T00:00:00+00:00")
    log.emit("model", "m", "ModelPriceSet", "active", model="m", provider="acme",
             input_usd_per_mtok=2.0, output_usd_per_mtok=4.0,
             effective_from="2025-06-01T00:00:00+00:00")
    log.emit("model", "m", "ModelPriceSet", "active", model="m", provider="acme",
             input_usd_per_mtok=1.0, output_usd_per_mtok=3.0,
             effective_from="2025-01-01T00:00:00+00:00")  # an older entry: history only
    await append_all(store, log.envelopes)
    db = ReadModelDb.open_writer(tmp_path / "r.duckdb")
    await Projector(store, db).catch_up()
    q = db.con.execute
    assert q("SELECT state, max_cost_usd, max_tokens, spent_tokens, spent_cost_usd FROM budgets"
             ).fetchall() == [("active", None, 1000, 150, 0.5)]
    assert q("SELECT state, run_id FROM workstreams").fetchall() == [("running", "r1")]
    assert q("SELECT state, consecutive_failures, opens, last_error_class FROM breakers"
             ).fetchall() == [("open", 2, 1, "timeout")]
    assert q("SELECT state, files, reason FROM patches").fetchall() == [
        ("rejected", ["a.py"], "lint")]
    assert q("SELECT state, waived_by FROM gates").fetchall() == [("waived", "ana")]
    assert q("SELECT input_usd_per_mtok, price_entries FROM models").fetchall() == [(2.0, 2)]
    assert q("SELECT count(*) FROM model_prices").fetchall() == [(2,)]
    assert q("SELECT count(*) FROM model_price_periods WHERE effective_to IS NULL"
             ).fetchall() == [(1,)]
    assert q("SELECT component, name, status FROM health WHERE component NOT IN "
             "('projection', 'service') ORDER BY 1").fetchall() == [
                 ("breaker", "acme", "open"), ("worker", "w1", "stale")]
    assert q("SELECT status, detail FROM health WHERE component = 'service'").fetchall() == [
        ("down", "down: no runlog up has served this file")]
    assert q("SELECT count(*) FROM projection_errors").fetchall() == [(0,)]
    db.close()
