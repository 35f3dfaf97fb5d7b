"""The ``gates`` read model: one row per test gate a run or patch must pass."""

from __future__ import annotations

from projections.columns import Col, ColType

from .entity import EntityProjection, EntitySpec

__all__ = ["GATES", "gates_projection"]

GATES = EntitySpec(
    name="gates",
    aggregate="gate",
    key="gate_id",
    doc="One row per test gate: what it guards, state and outcome.",
    columns=(
        Col("gate_id", ColType.TEXT, doc="the gate's id"),
        Col("run_id", ColType.TEXT, doc="the run it guards"),
        Col("patch_id", ColType.TEXT, doc="the patch it guards, if any"),
        Col("name", ColType.TEXT, doc="the check's name"),
        Col("state", ColType.TEXT, doc="pending, running, passed, failed or waived"),
        Col("reason", ColType.TEXT, doc="why it failed or was waived"),
        Col("waived_by", ColType.TEXT, doc="who waived it"),
        Col("started_at", ColType.TIME, doc="when its check began"),
        Col("ended_at", ColType.TIME, doc="when it passed, failed or was waived"),
    ),
    copy={"run_id": "run_id", "patch_id": "patch_id", "name": "name", "reason": "reason",
          "by": "waived_by"},
    stamps={
        "GateStarted": "started_at",
        "GatePassed": "ended_at",
        "GateFailed": "ended_at",
        "GateWaived": "ended_at",
    },
)


def gates_projection() -> EntityProjection:
    """Returns the gates projection."""
    return EntityProjection(GATES)
