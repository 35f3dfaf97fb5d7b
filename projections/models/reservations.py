"""The ``reservations`` read model: one row per reservation, from reserved to settled or released.

A reservation's own events (``BudgetReserved``, ``ReservationReleased``) and the
``UsageRecorded`` that settles it (a run's event naming it) fold into the same row, in
stream order; a settled reservation stays ``settled`` whatever comes after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import duckdb

from projections.columns import Col, ColType
from projections.decode import Event

from .base import Batch, ErrorSink
from .entity import EntityProjection, EntitySpec, Row

__all__ = ["RESERVATIONS", "ReservationProjection"]


def _released(row: Mapping[str, Any], event: Event) -> Row:
    return {"release_reason": ColType.TEXT.convert(event.data.get("reason", "released"))}


RESERVATIONS = EntitySpec(
    name="reservations",
    aggregate="reservation",
    key="reservation_id",
    doc="One row per budget reservation: what it holds on which scopes, and how it ended "
        "(settled by a usage, or released: given back, expired, task or lease ended, worker "
        "lost). Live reservations are those in state reserved.",
    columns=(
        Col("reservation_id", ColType.TEXT, doc="the reservation's id"),
        Col("state", ColType.TEXT, doc="reserved (live), settled or released"),
        Col("run_id", ColType.TEXT, doc="the run it was made for"),
        Col("task_id", ColType.TEXT, doc="its task, if any"),
        Col("worker_id", ColType.TEXT, doc="its worker, if any"),
        Col("session_id", ColType.TEXT, doc="the run's session, if any"),
        Col("model", ColType.TEXT, doc="the model named, if any"),
        Col("estimate_tokens", ColType.BIGINT, 0, "tokens it holds while live"),
        Col("estimate_cost_usd", ColType.MONEY, doc="USD it holds while live"),
        Col("scopes", ColType.TEXT_LIST, doc="the ledgers it counts on (run:, session:, day@, "
            "budget:<id>[@<day>])"),
        Col("expires_at", ColType.TIME, doc="when the reaper releases it unless it ended"),
        Col("release_reason", ColType.TEXT, doc="released, expired, task_ended, lease_expired "
            "or worker_lost"),
        Col("released_at", ColType.TIME, doc="when it was released"),
        Col("settled_at", ColType.TIME, doc="when the usage settling it was recorded"),
        Col("settled_tokens", ColType.BIGINT, doc="the real tokens of that usage"),
        Col("settled_cost_usd", ColType.MONEY, doc="its real cost"),
        Col("settled_seq", ColType.BIGINT, doc="stream sequence of that usage"),
    ),
    copy={"run_id": "run_id", "task_id": "task_id", "worker_id": "worker_id",
          "session_id": "session_id", "model": "model", "estimate_tokens": "estimate_tokens",
          "estimate_cost_usd": "estimate_cost_usd", "scopes": "scopes",
          "expires_at": "expires_at"},
    stamps={"ReservationReleased": "released_at"},
    hooks={"ReservationReleased": _released},
)


class ReservationProjection(EntityProjection):
    """Reservations, with the usage that settles each folded into its row."""

    def __init__(self) -> None:
        super().__init__(RESERVATIONS)

    def apply(self, con: duckdb.DuckDBPyConnection, batch: Batch, sink: ErrorSink) -> None:
        """Folds the batch's reservation events and settling usage, in stream order."""
        settling = [replace(e, aggregate_id=str(e.data["reservation_id"]))
                    for e in batch.of("run")
                    if e.type == "UsageRecorded" and e.data.get("reservation_id")]
        events = sorted([*batch.of("reservation"), *settling], key=lambda e: e.seq)
        if not events:
            return
        self.fold_and_write(con, events, sink)

    def evolve(self, row: Row | None, event: Event) -> Row:
        """A settling usage marks the row settled; later releases leave it settled."""
        if event.type == "UsageRecorded":
            return self._settled(row if row is not None else self._new_row(event), event)
        was_settled = row is not None and row.get("state") == "settled"
        row = super().evolve(row, event)
        if was_settled:
            row["state"] = "settled"
        return row

    @staticmethod
    def _settled(row: Row, event: Event) -> Row:
        data = event.data
        row.update({
            "state": "settled", "settled_at": event.occurred_at, "settled_seq": event.seq,
            "settled_tokens": int(data["tokens_in"]) + int(data["tokens_out"]),
            "settled_cost_usd": ColType.MONEY.convert(data["cost_usd"]),
            "updated_at": event.occurred_at})
        return row
