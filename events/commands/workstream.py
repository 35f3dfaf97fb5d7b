"""Commands of the Workstream aggregate."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.base import Command, Label, ShortText
from events.ids import Id

__all__ = [
    "BlockWorkstream",
    "CancelWorkstream",
    "CreateWorkstream",
    "FailWorkstream",
    "MarkWorkstreamReady",
    "PauseWorkstream",
    "ResumeWorkstream",
    "SkipWorkstream",
    "StartWorkstream",
    "SucceedWorkstream",
    "UnblockWorkstream",
]


class _WorkstreamCommand(Command):
    aggregate: ClassVar[str] = "workstream"
    id_field: ClassVar[str] = "workstream_id"


class _ExistingWorkstream(_WorkstreamCommand):
    workstream_id: Id


class CreateWorkstream(_WorkstreamCommand):
    """Create a workstream of a run in ``pending``; the id is generated when omitted."""

    subject: ClassVar[str] = "workstream.create"
    workstream_id: Id | None = None
    run_id: Id
    name: Label
    depends_on: list[Id] = Field(default_factory=list, max_length=64)


class MarkWorkstreamReady(_ExistingWorkstream):
    """Mark a pending workstream ready (its dependencies must be done)."""

    subject: ClassVar[str] = "workstream.ready"


class StartWorkstream(_ExistingWorkstream):
    """Start a ready workstream."""

    subject: ClassVar[str] = "workstream.start"


class PauseWorkstream(_ExistingWorkstream):
    """Pause a running workstream."""

    subject: ClassVar[str] = "workstream.pause"


class ResumeWorkstream(_ExistingWorkstream):
    """Resume a paused workstream."""

    subject: ClassVar[str] = "workstream.resume"


class BlockWorkstream(_ExistingWorkstream):
    """Block a ready or running workstream on something outside it."""

    subject: ClassVar[str] = "workstream.block"
    reason: ShortText = ""


class UnblockWorkstream(_ExistingWorkstream):
    """Lift a block; the workstream goes back to ``ready``."""

    subject: ClassVar[str] = "workstream.unblock"


class SucceedWorkstream(_ExistingWorkstream):
    """Finish a running workstream successfully."""

    subject: ClassVar[str] = "workstream.succeed"


class FailWorkstream(_ExistingWorkstream):
    """Finish a running, paused or blocked workstream as failed."""

    subject: ClassVar[str] = "workstream.fail"
    reason: ShortText = ""


class CancelWorkstream(_ExistingWorkstream):
    """Cancel a workstream that has not finished."""

    subject: ClassVar[str] = "workstream.cancel"
    reason: ShortText = ""


class SkipWorkstream(_ExistingWorkstream):
    """Skip a workstream that has not started running."""

    subject: ClassVar[str] = "workstream.skip"
    reason: ShortText = ""
