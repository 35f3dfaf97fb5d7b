"""Shared builders for the domain tests: a fixed clock, sample events and states."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from events.base import Command, DomainEvent
from events.catalog import EVENT_TYPES
from services.domain import MACHINES, Context
from services.domain.context import Facts
from services.domain.run import RunState
from services.domain.task import TaskState
from services.domain.workstream import WorkstreamState

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)

SAMPLE_FIELDS: dict[str, Any] = {
    "run_id": "r1",
    "workstream_id": "ws1",
    "task_id": "t1",
    "worker_id": "w1",
    "breaker_id": "b1",
    "patch_id": "p1",
    "gate_id": "g1",
    "budget_id": "bud1",
    "name": "sample",
    "title": "sample",
    "kind": "llm.chat",
    "priority": 5,
    "max_attempts": 3,
    "submitted_at": NOW,
    "lease_epoch": 1,
    "lease_expires_at": LATER,
    "lease_ttl_s": 30.0,
    "attempt": 1,
    "error_class": "timeout",
    "retry_at": LATER,
    "not_before": LATER,
    "capacity": 2,
    "at": NOW,
    "failure_threshold": 3,
    "cooldown_s": 10.0,
    "consecutive_failures": 1,
    "until": LATER,
    "probe_deadline": LATER,
    "by": "alice",
    "model": "gpt-x.1",
    "provider": "acme",
    "input_usd_per_mtok": 1.0,
    "output_usd_per_mtok": 2.0,
    "effective_from": NOW,
    "tokens": 10,
    "cost_usd": 0.5,
    "tokens_in": 1,
    "tokens_out": 1,
    "price_effective_from": NOW.isoformat(),
    "cache_key": "llm.chat:k1",
    "source_task_id": "t0",
    "tokens_saved": 100,
    "cost_saved_usd": 0.01,
    "recommendation_id": "rec1",
    "estimate_tokens": 1000,
    "reason": "sample",
    "threshold": 80,
    "reservation_id": "res1",
    "estimate_cost_usd": "0.01",
    "expires_at": LATER,
}


def ctx(now: datetime = NOW, related: object = None, held: Iterable[str] = ()) -> Context:
    """A decision context at ``now``, with ``related`` facts (see ``facts_of``)."""
    return Context(now=now, facts=facts_of(related, held))


def facts_of(related: object = None, held: Iterable[str] = ()) -> Facts:
    """Facts from a shorthand: a run, ``Facts`` as is, or dependencies by id."""
    held_tasks = frozenset(held)
    if isinstance(related, Facts):
        return replace(related, held=held_tasks or related.held)
    if isinstance(related, RunState):
        return Facts(run=related, held=held_tasks)
    if isinstance(related, Mapping):
        tasks = {k: v for k, v in related.items() if v is None or isinstance(v, TaskState)}
        streams = {k: v for k, v in related.items()
                   if v is None or isinstance(v, WorkstreamState)}
        return Facts(tasks=tasks, workstreams=streams, held=held_tasks)
    return Facts(held=held_tasks)


def sample_event(type_name: str) -> DomainEvent:
    """An instance of any event type, with plausible required fields."""
    cls = EVENT_TYPES[type_name]
    fields = {name: SAMPLE_FIELDS[name] for name, info in cls.model_fields.items()
              if info.is_required()}
    return cls(**fields)


def creation_event(aggregate: str) -> str:
    """The event type that creates an aggregate of this machine."""
    table = MACHINES[aggregate].table
    return next(event for (source, event) in table.edges if source is None)


def sample_state(aggregate: str, state_name: str) -> Any:
    """An aggregate state in ``state_name``, otherwise as the creation event left it."""
    machine = MACHINES[aggregate]
    created = machine.evolve(None, sample_event(creation_event(aggregate)))
    return replace(created, state=state_name)


def fold(aggregate: str, events: Iterable[DomainEvent], state: Any = None) -> Any:
    """Applies events in order with the machine's ``evolve``."""
    evolve = MACHINES[aggregate].evolve
    for event in events:
        state = evolve(state, event)
    return state


def play(aggregate: str, commands: Iterable[Command], context: Context | None = None,
         state: Any = None) -> Any:
    """Decides and applies each command in turn; returns the final state."""
    machine = MACHINES[aggregate]
    for command in commands:
        state = fold(aggregate, machine.decide(state, command, context or ctx()), state)
    return state


def running_run(run_id: str = "r1", **changes: Any) -> RunState:
    """A run in ``running``."""
    return replace(RunState(run_id=run_id, state="running"), **changes)


def types(events: Iterable[DomainEvent]) -> list[str]:
    """The type names of events, in order."""
    return [event.type_name() for event in events]
