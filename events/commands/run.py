"""Commands of the Run aggregate (and usage, which is recorded on its run)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from events.base import Command, Label, Limit, ShortText
from events.catalog.run import RunBudget
from events.ids import Id
from events.money import UsdAmount

from .model import EscapableModelName

__all__ = ["CancelRun", "ConfigureRun", "CreateRun", "FailRun", "RecordUsage", "StartRun",
           "SucceedRun"]


class _RunCommand(Command):
    aggregate: ClassVar[str] = "run"
    id_field: ClassVar[str] = "run_id"


class CreateRun(_RunCommand):
    """Create a run in ``pending``; ``run_id`` is generated when omitted."""

    subject: ClassVar[str] = "run.create"
    run_id: Id | None = None
    name: Label
    labels: dict[Label, Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=dict, max_length=64
    )
    budget: RunBudget | None = None
    budget_id: Id | None = None
    max_concurrency: Limit | None = None
    """At most this many of the run's tasks leased at once (``run.configure`` changes it)."""
    auto_end: bool = False
    """End the run by itself once every workstream and task of it is done."""
    cache_results: bool = False
    """Key every task of the run by a hash of its kind and payload for the result cache."""
    cache_ttl_s: float | None = Field(default=None, gt=0, le=366 * 86_400, allow_inf_nan=False)
    """How old a cached result its tasks accept (default one day)."""
    session_id: Id | None = None
    """The session the run belongs to (per-session budgets)."""


class ConfigureRun(_RunCommand):
    """Change a run's ``max_concurrency`` (null: no limit of its own)."""

    subject: ClassVar[str] = "run.configure"
    run_id: Id
    max_concurrency: Limit | None = None


class StartRun(_RunCommand):
    """Move a run from ``pending`` to ``running``."""

    subject: ClassVar[str] = "run.start"
    run_id: Id


class SucceedRun(_RunCommand):
    """Finish a running run successfully."""

    subject: ClassVar[str] = "run.succeed"
    run_id: Id


class FailRun(_RunCommand):
    """Finish a running run as failed."""

    subject: ClassVar[str] = "run.fail"
    run_id: Id
    reason: ShortText = ""


class CancelRun(_RunCommand):
    """Cancel a pending or running run."""

    subject: ClassVar[str] = "run.cancel"
    run_id: Id
    reason: ShortText = ""


class RecordUsage(_RunCommand):
    """Record one model call's tokens against its run, priced at the price in effect.

    The token counts are disjoint: ``tokens_in`` is the input billed at the input price,
    ``cached_tokens_in`` the input read from the provider's prompt cache,
    ``cache_write_tokens_in`` the input written to it (for an OpenAI-style report that
    includes cached tokens in the prompt count, send ``prompt - cached`` as ``tokens_in``).
    """

    subject: ClassVar[str] = "usage.record"
    run_id: Id
    task_id: Id | None = None
    worker_id: Id | None = None
    model: EscapableModelName
    tokens_in: int = Field(ge=0, le=100_000_000)
    tokens_out: int = Field(ge=0, le=100_000_000)
    latency_ms: float | None = Field(default=None, ge=0)
    outcome: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")] = "ok"
    cached_tokens_in: int = Field(default=0, ge=0, le=100_000_000)
    cache_write_tokens_in: int = Field(default=0, ge=0, le=100_000_000)
    provider_cost_usd: UsdAmount | None = None
    """What the provider billed for the call, kept beside the computed cost."""
    reservation_id: Id | None = None
    """Settles this reservation (of the same run) with the real usage."""
    session_id: Id | None = None
    """The session of the call; the run's session when omitted."""
