"""The ``patches`` read model: one row per proposed code change, from proposal to commit."""

from __future__ import annotations

from projections.columns import Col, ColType

from .entity import EntityProjection, EntitySpec

__all__ = ["PATCHES", "patches_projection"]

PATCHES = EntitySpec(
    name="patches",
    aggregate="patch",
    key="patch_id",
    doc="One row per patch: its run and task, files, state and outcome.",
    columns=(
        Col("patch_id", ColType.TEXT, doc="the patch's id"),
        Col("run_id", ColType.TEXT, doc="the run it belongs to"),
        Col("task_id", ColType.TEXT, doc="the task that proposed it, if any"),
        Col("title", ColType.TEXT, doc="its title"),
        Col("files", ColType.TEXT_LIST, doc="files it touches"),
        Col("state", ColType.TEXT, doc="proposed, validating, validated, rejected, applying, "
                                       "applied, testing, verified, committed or rolled_back"),
        Col("reason", ColType.TEXT, doc="why it was rejected or rolled back"),
        Col("commit_sha", ColType.TEXT, doc="the commit it ended up in"),
        Col("applied_at", ColType.TIME, doc="when it was applied to the working tree"),
        Col("verified_at", ColType.TIME, doc="when its tests passed"),
        Col("ended_at", ColType.TIME, doc="when it was committed, rejected or rolled back"),
    ),
    copy={"run_id": "run_id", "task_id": "task_id", "title": "title", "files": "files",
          "reason": "reason", "commit": "commit_sha"},
    stamps={
        "PatchApplied": "applied_at",
        "PatchVerified": "verified_at",
        "PatchCommitted": "ended_at",
        "PatchRejected": "ended_at",
        "PatchRolledBack": "ended_at",
    },
)


def patches_projection() -> EntityProjection:
    """Returns the patches projection."""
    return EntityProjection(PATCHES)
