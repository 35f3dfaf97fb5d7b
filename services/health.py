"""runlog's health, judged in one place for every probe (``runlog health``, ``/healthz``).

Two halves, so each caller brings its own connections: ``observe`` gathers the facts
(NATS, the stream, whether the command service answers, and the read models' own
``health`` view, checkpoints and budgets) and never raises; ``evaluate`` is pure and
turns them into checks, each ``ok``, ``degraded`` or ``down``. The report's status is
the worst check; its exit code is 0, 1 or 2 (Nagios style).

Importing this module connects to nothing and starts nothing.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = [
    "PROBE_SUBJECT",
    "Check",
    "HealthReport",
    "Observation",
    "Query",
    "Status",
    "Thresholds",
    "evaluate",
    "observe",
]

Rows = Sequence[dict[str, Any]]
Query = Callable[[str], Awaitable[Rows]]
"""Runs one read-only SQL statement on the read models and returns its rows as objects."""

PROBE_SUBJECT = "runlog.cmd.health.ping"
"""Answered ``unknown_command`` by any live command service; writes nothing."""

ATTENTION_SQL = "SELECT component, name, status, value, detail FROM health"
CHECKPOINTS_SQL = "SELECT projection, last_seq FROM checkpoints ORDER BY projection"
# Budgets with no period only: a daily budget's row counts all its days together, so once
# one day reached the bound it would read exhausted on every later day.
BUDGETS_SQL = ("SELECT budget_id, name, spent_tokens, max_tokens, spent_cost_usd, max_cost_usd "
               "FROM budgets WHERE state = 'exhausted' AND period IS NULL ORDER BY budget_id")


class Status(enum.StrEnum):
    """How a check (or the whole report) stands."""

    OK = "ok"
    """Nothing needs attention."""
    DEGRADED = "degraded"
    """Serving, but something needs attention (lag, lost workers, open breakers, ...)."""
    DOWN = "down"
    """Not serving: NATS, the stream, the command service or the read side is gone."""

    @property
    def exit_code(self) -> int:
        """0 ok, 1 degraded, 2 down."""
        return (Status.OK, Status.DEGRADED, Status.DOWN).index(self)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where a check turns degraded."""

    max_lag: int = 1000
    """Events a projection may be behind the stream head."""


@dataclass(frozen=True, slots=True)
class Check:
    """One judged aspect of health."""

    name: str
    status: Status
    detail: str
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"name": self.name, "status": str(self.status), "detail": self.detail,
                "value": self.value}


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every check, and the worst of them."""

    checks: tuple[Check, ...]
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def status(self) -> Status:
        """The worst status of any check."""
        return max((c.status for c in self.checks), key=lambda s: s.exit_code,
                   default=Status.OK)

    @property
    def exit_code(self) -> int:
        """0 ok, 1 degraded, 2 down."""
        return self.status.exit_code

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"status": str(self.status), "exit_code": self.exit_code,
                "checked_at": self.checked_at.isoformat(),
                "checks": [c.to_dict() for c in self.checks]}


@dataclass(frozen=True, slots=True)
class Observation:
    """The facts a report is judged from; an ``*_error`` says why a fact is missing."""

    nats_error: str | None = None
    stream: str = "RUNLOG"
    stream_last_seq: int | None = None
    stream_error: str | None = None
    commands_error: str | None = None
    read_models_error: str | None = None
    attention: Rows = ()
    """Rows of the ``health`` view."""
    checkpoints: Rows = ()
    exhausted_budgets: Rows = ()


async def observe(nc: Client | None, query: Query, *, stream: str = "RUNLOG",
                  nats_error: str | None = None, timeout_s: float = 2.0) -> Observation:
    """Gathers the facts; ``nc`` None means NATS could not be reached (``nats_error`` says why)."""
    facts: dict[str, Any] = {"stream": stream}
    if nc is not None and not nc.is_connected:
        # Reconnecting (or closed): asking the stream and the service would only wait out
        # their timeouts, one after the other, past any probe's patience.
        nc, nats_error = None, nats_error or "the connection to NATS is lost (reconnecting)"
    if nc is None:
        facts["nats_error"] = nats_error or "NATS is not reachable"
        facts |= await _read_model_facts(query)
        return Observation(**facts)
    # Each waits on its own answer: together they take the longest one, not the sum.
    stream_facts, commands_error, read_models = await asyncio.gather(
        _stream_facts(nc, stream, timeout_s), _probe_commands(nc, timeout_s),
        _read_model_facts(query))
    return Observation(**facts, **stream_facts, commands_error=commands_error, **read_models)


async def _stream_facts(nc: Client, stream: str, timeout_s: float) -> dict[str, Any]:
    import nats.errors
    import nats.js.errors

    try:
        info = await nc.jetstream(timeout=timeout_s).stream_info(stream)
    except nats.js.errors.NotFoundError:
        return {"stream_error": f"stream {stream} does not exist"}
    except (nats.errors.Error, TimeoutError) as error:
        return {"stream_error": f"stream {stream}: {str(error) or type(error).__name__}"}
    return {"stream_last_seq": int(info.state.last_seq)}


async def _probe_commands(nc: Client, timeout_s: float) -> str | None:
    import nats.errors

    try:
        await nc.request(PROBE_SUBJECT, b"{}", timeout=timeout_s)
    except nats.errors.NoRespondersError:
        return "no command service answers on runlog.cmd.>"
    except (nats.errors.TimeoutError, TimeoutError):
        return f"the command service did not answer within {timeout_s:g} s"
    except nats.errors.Error as error:
        return f"command probe failed: {error}"
    return None


async def _read_model_facts(query: Query) -> dict[str, Any]:
    try:
        attention, checkpoints, budgets = await asyncio.gather(
            query(ATTENTION_SQL), query(CHECKPOINTS_SQL), query(BUDGETS_SQL))
    except Exception as error:  # whatever the reader raised, health reports it, never raises
        return {"read_models_error": str(error).splitlines()[0] if str(error)
                else type(error).__name__}
    return {"attention": attention, "checkpoints": checkpoints, "exhausted_budgets": budgets}


def evaluate(facts: Observation, thresholds: Thresholds | None = None) -> HealthReport:
    """Judges the facts: every check, pure and deterministic (no clock, no I/O)."""
    limits = thresholds or Thresholds()
    return HealthReport(tuple(check for check in (
        _nats(facts), _stream(facts), _commands(facts), _read_side(facts),
        _projections(facts, limits), _component(facts, "worker", "workers"),
        _component(facts, "breaker", "breakers"), _budgets(facts),
        _component(facts, "projection_errors", "projection_errors")) if check is not None))


def _nats(facts: Observation) -> Check:
    if facts.nats_error:
        return Check("nats", Status.DOWN, facts.nats_error)
    return Check("nats", Status.OK, "reachable")


def _stream(facts: Observation) -> Check | None:
    if facts.nats_error:
        return None
    if facts.stream_error or facts.stream_last_seq is None:
        return Check("stream", Status.DOWN, facts.stream_error or "no stream information")
    return Check("stream", Status.OK, f"{facts.stream} at seq {facts.stream_last_seq}",
                 float(facts.stream_last_seq))


def _commands(facts: Observation) -> Check | None:
    if facts.nats_error:
        return None
    if facts.commands_error:
        return Check("commands", Status.DOWN, facts.commands_error)
    return Check("commands", Status.OK, "the command service answers")


def _read_side(facts: Observation) -> Check:
    if facts.read_models_error:
        return Check("read_side", Status.DOWN, f"read models: {facts.read_models_error}")
    rows = [r for r in facts.attention if r.get("component") == "service"]
    if not rows:
        return Check("read_side", Status.DOWN, "the read models record no running service")
    row = rows[0]
    status = Status.OK if row.get("status") == "ok" else Status.DOWN
    return Check("read_side", status, str(row.get("detail")), _number(row.get("value")))


def _projections(facts: Observation, limits: Thresholds) -> Check | None:
    if facts.read_models_error or not facts.checkpoints or facts.stream_last_seq is None:
        return None  # nothing to measure lag against; the checks above say why
    lags = {str(r["projection"]): facts.stream_last_seq - int(r["last_seq"] or 0)
            for r in facts.checkpoints}
    worst = max(lags, key=lambda name: lags[name])
    behind = max(lags[worst], 0)
    status = Status.DEGRADED if behind > limits.max_lag else Status.OK
    detail = (f"{len(lags)} projections, at most {behind} events behind ({worst})" if behind
              else f"{len(lags)} projections at the stream head")
    return Check("projections", status, detail, float(behind))


_NEEDS_ATTENTION = {"stale", "lost", "open", "errors"}


def _component(facts: Observation, component: str, name: str) -> Check | None:
    if facts.read_models_error:
        return None
    rows = [r for r in facts.attention if r.get("component") == component]
    bad = [r for r in rows if r.get("status") in _NEEDS_ATTENTION]
    if not rows:
        return Check(name, Status.OK, "nothing to report", 0.0)
    detail = "; ".join(f"{r.get('name')} {r.get('status')}: {r.get('detail')}" for r in rows[:5])
    detail += f"; and {len(rows) - 5} more" if len(rows) > 5 else ""
    return Check(name, Status.DEGRADED if bad else Status.OK, detail, float(len(bad)))


def _budgets(facts: Observation) -> Check | None:
    if facts.read_models_error:
        return None
    names = [str(r.get("budget_id")) for r in facts.exhausted_budgets]
    if not names:
        return Check("budgets", Status.OK, "no budget exhausted", 0.0)
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return Check("budgets", Status.DEGRADED, f"exhausted: {', '.join(names[:5])}{more}",
                 float(len(names)))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
