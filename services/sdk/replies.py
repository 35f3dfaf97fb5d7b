"""Typed replies: the success envelope, the fields some commands add to it, query results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "REPLY_TYPES",
    "AcquireReply",
    "ClaimReply",
    "ClaimedTask",
    "QueryResult",
    "RecommendReply",
    "Reply",
]


class _Wire(BaseModel):
    # Fields a newer service adds are kept (``model_extra``), never an error.
    model_config = ConfigDict(extra="allow", frozen=True)


class Reply(_Wire):
    """A command's success reply; ``seq`` is the position to wait for to read the write."""

    id: str
    """The aggregate the command targeted (a generated id when the command omitted it)."""
    version: int
    """The aggregate's version after the command."""
    seq: int
    """The stream sequence of the last event written (or of the aggregate, if none was)."""
    events: tuple[str, ...]
    """The types of the events written; empty when the command changed nothing."""


class ClaimedTask(_Wire):
    """What a worker needs to run the task it was leased."""

    task_id: str
    run_id: str
    kind: str
    priority: int
    payload: dict[str, Any]
    lease_epoch: int
    """The lease's fence: every start, heartbeat, succeed and fail carries it."""
    attempt: int
    max_attempts: int
    lease_expires_at: datetime
    model: str | None = None
    """The model to call: the task's own, or the fallback its last failure chose."""
    instruction: dict[str, Any] | None = None
    """What this attempt does differently (``model``, ``truncate``), after a retry."""


class ClaimReply(Reply):
    """``task.claim``'s reply: the leased task, or None when no task was claimable."""

    task: ClaimedTask | None


class AcquireReply(Reply):
    """``breaker.acquire``'s reply: whether the guarded call may go through."""

    allowed: bool
    state: str
    """The breaker's state: ``closed``, ``open`` or ``half_open``."""


class RecommendReply(Reply):
    """``model.recommend``'s reply: the model to call (None: none fits) and why."""

    recommendation_id: str
    model: str | None
    reason: str
    considered: tuple[dict[str, Any], ...]
    """Every candidate, cheapest first, with whether it was chosen and why (not)."""
    fallbacks: tuple[str, ...]
    budget_left: dict[str, Any]


REPLY_TYPES: dict[str, type[Reply]] = {"task.claim": ClaimReply,
                                       "breaker.acquire": AcquireReply,
                                       "model.recommend": RecommendReply}
"""The commands whose replies carry more than the envelope, by subject."""


class QueryResult(_Wire):
    """Rows of one read-only query on the read models."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool
    """True when more rows exist than the query's ``limit``: raise the limit to see them."""
    position: int | None
    """The stream sequence the read models had applied when the rows were read."""

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as dictionaries keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]
