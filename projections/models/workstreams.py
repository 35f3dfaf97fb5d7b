"""The ``workstreams`` read model: one row per named slice of a run's work."""

from __future__ import annotations

from projections.columns import Col, ColType

from .entity import EntityProjection, EntitySpec

__all__ = ["WORKSTREAMS", "workstreams_projection"]

WORKSTREAMS = EntitySpec(
    name="workstreams",
    aggregate="workstream",
    key="workstream_id",
    doc="One row per workstream: its run, dependencies, state and timestamps.",
    columns=(
        Col("workstream_id", ColType.TEXT, doc="the workstream's id"),
        Col("run_id", ColType.TEXT, doc="the run it belongs to"),
        Col("name", ColType.TEXT, doc="its name"),
        Col("depends_on", ColType.TEXT_LIST, doc="workstreams it waits for"),
        Col("state", ColType.TEXT, doc="pending, ready, running, paused, blocked, succeeded, "
                                       "failed, cancelled or skipped"),
        Col("reason", ColType.TEXT, doc="why it was blocked, failed, cancelled or skipped"),
        Col("started_at", ColType.TIME, doc="when it last started"),
        Col("ended_at", ColType.TIME, doc="when it finished or was skipped"),
    ),
    copy={"run_id": "run_id", "name": "name", "depends_on": "depends_on", "reason": "reason"},
    stamps={
        "WorkstreamStarted": "started_at",
        "WorkstreamSucceeded": "ended_at",
        "WorkstreamFailed": "ended_at",
        "WorkstreamCancelled": "ended_at",
        "WorkstreamSkipped": "ended_at",
    },
)


def workstreams_projection() -> EntityProjection:
    """Returns the workstreams projection."""
    return EntityProjection(WORKSTREAMS)
