"""Events of the Patch aggregate: a code change an agent proposes, from proposal to commit."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from events.base import DomainEvent, Label, ShortText
from events.ids import Id

__all__ = [
    "FilePath",
    "PatchApplied",
    "PatchApplyStarted",
    "PatchCommitted",
    "PatchProposed",
    "PatchRejected",
    "PatchRolledBack",
    "PatchTestStarted",
    "PatchValidated",
    "PatchValidationStarted",
    "PatchVerified",
]

FilePath = Annotated[str, StringConstraints(min_length=1, max_length=1024, strict=True)]


class _PatchEvent(DomainEvent):
    aggregate: ClassVar[str] = "patch"

    patch_id: Id


class PatchProposed(_PatchEvent):
    """A patch touching ``files`` was proposed for a run."""

    run_id: Id
    task_id: Id | None = None
    title: Label
    files: list[FilePath] = Field(default_factory=list)


class PatchValidationStarted(_PatchEvent):
    """Static checks (format, lint, policy) began."""


class PatchValidated(_PatchEvent):
    """The checks passed: the patch may be applied."""


class PatchRejected(_PatchEvent):
    """The patch was refused before it was applied."""

    reason: ShortText = ""


class PatchApplyStarted(_PatchEvent):
    """The patch is being applied to the working tree."""


class PatchApplied(_PatchEvent):
    """The patch is in the working tree."""


class PatchTestStarted(_PatchEvent):
    """The test gates of the applied patch began."""


class PatchVerified(_PatchEvent):
    """The tests passed."""


class PatchCommitted(_PatchEvent):
    """The verified patch was committed."""

    commit: Annotated[str, StringConstraints(max_length=128)] | None = None


class PatchRolledBack(_PatchEvent):
    """The patch was taken out of the working tree."""

    reason: ShortText = ""
