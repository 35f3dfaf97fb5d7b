"""Events of the Workstream aggregate: a named slice of a run's work, with dependencies."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.base import DomainEvent, Label, ShortText
from events.ids import Id

__all__ = [
    "WorkstreamBlocked",
    "WorkstreamCancelled",
    "WorkstreamCreated",
    "WorkstreamFailed",
    "WorkstreamMarkedReady",
    "WorkstreamPaused",
    "WorkstreamResumed",
    "WorkstreamSkipped",
    "WorkstreamStarted",
    "WorkstreamSucceeded",
    "WorkstreamUnblocked",
]


class _WorkstreamEvent(DomainEvent):
    aggregate: ClassVar[str] = "workstream"

    workstream_id: Id


class WorkstreamCreated(_WorkstreamEvent):
    """A workstream was created in ``pending`` for a run."""

    run_id: Id
    name: Label
    depends_on: list[Id] = Field(default_factory=list)


class WorkstreamMarkedReady(_WorkstreamEvent):
    """Its dependencies are done: the workstream may start."""


class WorkstreamStarted(_WorkstreamEvent):
    """The workstream began executing."""


class WorkstreamPaused(_WorkstreamEvent):
    """The workstream was paused; it takes no new work until resumed."""


class WorkstreamResumed(_WorkstreamEvent):
    """A paused workstream runs again."""


class WorkstreamBlocked(_WorkstreamEvent):
    """The workstream waits on something outside it (a review, a quota, a person)."""

    reason: ShortText = ""


class WorkstreamUnblocked(_WorkstreamEvent):
    """The block was lifted; the workstream is ``ready`` and must be started again."""


class WorkstreamSucceeded(_WorkstreamEvent):
    """The workstream finished successfully."""


class WorkstreamFailed(_WorkstreamEvent):
    """The workstream finished unsuccessfully."""

    reason: ShortText = ""


class WorkstreamCancelled(_WorkstreamEvent):
    """The workstream was cancelled before it finished."""

    reason: ShortText = ""


class WorkstreamSkipped(_WorkstreamEvent):
    """The workstream was skipped before it ran; dependants treat it as done."""

    reason: ShortText = ""
