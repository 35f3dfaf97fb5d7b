"""Commands of the Patch aggregate."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from events.base import Command, Label, ShortText
from events.catalog.patch import FilePath
from events.ids import Id

__all__ = [
    "AcceptPatch",
    "ApplyPatch",
    "CommitPatch",
    "MarkPatchApplied",
    "ProposePatch",
    "RejectPatch",
    "RollBackPatch",
    "TestPatch",
    "ValidatePatch",
    "VerifyPatch",
]


class _PatchCommand(Command):
    aggregate: ClassVar[str] = "patch"
    id_field: ClassVar[str] = "patch_id"


class _ExistingPatch(_PatchCommand):
    patch_id: Id


class ProposePatch(_PatchCommand):
    """Propose a patch for a running run; ``patch_id`` is generated when omitted."""

    subject: ClassVar[str] = "patch.propose"
    patch_id: Id | None = None
    run_id: Id
    task_id: Id | None = None
    title: Label
    files: list[FilePath] = Field(default_factory=list, max_length=1000)


class ValidatePatch(_ExistingPatch):
    """Begin validating a proposed patch."""

    subject: ClassVar[str] = "patch.validate"


class AcceptPatch(_ExistingPatch):
    """Record that validation passed."""

    subject: ClassVar[str] = "patch.accept"


class RejectPatch(_ExistingPatch):
    """Refuse a patch that has not been applied."""

    subject: ClassVar[str] = "patch.reject"
    reason: ShortText = ""


class ApplyPatch(_ExistingPatch):
    """Begin applying a validated patch."""

    subject: ClassVar[str] = "patch.apply"


class MarkPatchApplied(_ExistingPatch):
    """Record that the patch is in the working tree."""

    subject: ClassVar[str] = "patch.applied"


class TestPatch(_ExistingPatch):
    """Begin testing an applied patch."""

    __test__ = False  # its name is not a pytest test class
    subject: ClassVar[str] = "patch.test"


class VerifyPatch(_ExistingPatch):
    """Record that the tests passed."""

    subject: ClassVar[str] = "patch.verify"


class CommitPatch(_ExistingPatch):
    """Commit a verified patch (``commit``: the resulting revision, if known)."""

    subject: ClassVar[str] = "patch.commit"
    commit: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class RollBackPatch(_ExistingPatch):
    """Take an applying, applied, testing or verified patch back out."""

    subject: ClassVar[str] = "patch.rollback"
    reason: ShortText = ""
