"""``usage.record``: priced at the model's price in effect, charged to the run and its budget."""

from __future__ import annotations

from events.base import Command
from events.commands.run import RecordUsage
from events.errors import ErrorCode
from events.ids import model_aggregate_id
from services.domain import Context, DomainError, budget, model, run

from ..changes import Change
from .session import Decision, Session, load_target, seen_before

__all__ = ["record_usage"]


async def record_usage(session: Session, command: Command) -> Decision:
    """Appends UsageRecorded (and any budget crossing) to the run and its shared budget at once."""
    assert isinstance(command, RecordUsage)
    loaded_run = await load_target(session, command)
    if loaded_run.commands.get(command.command_id or ""):
        budget_id = getattr(loaded_run.state, "budget_id", None)
        loaded_budget = await session.load_written_by(
            "budget", budget_id, command.command_id or "") if budget_id else None
        return seen_before(loaded_run, command, loaded_budget)  # type: ignore[return-value]
    model_state = (await session.load("model", model_aggregate_id(command.model))).state
    price = model.price_at(model_state, session.now)
    if price is None:
        raise DomainError(ErrorCode.NOT_FOUND,
                          f"model {command.model} has no price in effect; register it with "
                          "model.register", {"model": command.model})
    ctx = Context(now=session.now, price=price)
    run_events = run.decide(loaded_run.state, command, ctx)
    changes = [Change(loaded_run, run_events)]
    budget_id = getattr(loaded_run.state, "budget_id", None)
    if budget_id:
        loaded_budget = await session.load("budget", budget_id)
        usage = run_events[0]
        charge = budget.charge(loaded_budget.state, command.run_id,
                               command.tokens_in + command.tokens_out,
                               usage.cost_usd, ctx)  # type: ignore[attr-defined]
        changes.append(Change(loaded_budget, charge))
    return Decision(changes)
