"""The Model state machine: a model's price history, each price with its effective date,
and its routing data (tier, fallback chain, breaker thresholds; ``model.configure``).

Usage is priced at the price in effect when it happened (``price_at``), and the
price and cost are frozen into ``UsageRecorded``: a later price never re-prices
history, and a price registered with a past ``effective_from`` applies to usage
recorded from then on.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from datetime import datetime

from events.base import Command, DomainEvent
from events.catalog.model import ModelConfigured, ModelPriceSet, ModelQuotaSet, ModelRegistered
from events.commands.model import ConfigureModel, RegisterModel, SetModelQuota
from events.errors import ErrorCode

from .context import Context, Price
from .machine import DomainError, InvalidHistory, TransitionTable

__all__ = ["TABLE", "ModelState", "decide", "evolve", "price_at"]

TABLE = TransitionTable(
    aggregate="model",
    states=("active",),
    edges={
        (None, "ModelRegistered"): "active",
        ("active", "ModelPriceSet"): "active",
        ("active", "ModelConfigured"): "active",
        ("active", "ModelQuotaSet"): "active",
    },
)


@dataclass(frozen=True, slots=True)
class ModelState:
    """A model's provider and its prices, oldest ``effective_from`` first."""

    model: str
    provider: str
    state: str
    prices: tuple[Price, ...] = ()
    tier: str | None = None
    fallbacks: tuple[str, ...] = ()
    """Models to fall back to, in order, when a call to this one fails."""
    failure_threshold: int | None = None
    cooldown_s: float | None = None
    quota: ModelQuotaSet | None = None
    """Its daily quota, if one was set."""


def price_at(state: ModelState | None, when: datetime) -> Price | None:
    """The price in effect at ``when``: the latest with ``effective_from <= when``, if any."""
    if state is None:
        return None
    index = bisect.bisect_right([p.effective_from for p in state.prices], when)
    return state.prices[index - 1] if index else None


def decide(state: ModelState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events of ``model.register`` (nothing when that exact price is known),
    ``model.configure`` and ``model.set_quota`` (nothing when nothing changes)."""
    if isinstance(command, ConfigureModel):
        return _configure(state, command)
    if isinstance(command, SetModelQuota):
        return _set_quota(state, command)
    if not isinstance(command, RegisterModel):
        raise TypeError(f"not a model command: {type(command).__name__}")
    price = ModelPriceSet(
        model=command.model, provider=command.provider,
        input_usd_per_mtok=command.input_usd_per_mtok,
        output_usd_per_mtok=command.output_usd_per_mtok,
        effective_from=command.effective_from or ctx.now,
        cached_input_usd_per_mtok=command.cached_input_usd_per_mtok,
        cache_write_usd_per_mtok=command.cache_write_usd_per_mtok,
    )
    if state is None:
        return [ModelRegistered(model=command.model, provider=command.provider), price]
    return [] if _as_price(price) in state.prices else [price]


def _configure(state: ModelState | None, command: ConfigureModel) -> list[DomainEvent]:
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"model {command.model} is not registered; "
                          "register its price with model.register first",
                          {"model": command.model})
    if command.model in command.fallbacks:
        raise DomainError(ErrorCode.VALIDATION_FAILED,
                          f"model {command.model} cannot fall back to itself")
    fallbacks = list(dict.fromkeys(command.fallbacks))
    wanted = (command.tier, tuple(fallbacks), command.failure_threshold, command.cooldown_s)
    if wanted == (state.tier, state.fallbacks, state.failure_threshold, state.cooldown_s):
        return []
    return [ModelConfigured(model=command.model, tier=command.tier, fallbacks=fallbacks,
                            failure_threshold=command.failure_threshold,
                            cooldown_s=command.cooldown_s)]


def _set_quota(state: ModelState | None, command: SetModelQuota) -> list[DomainEvent]:
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"model {command.model} is not registered; "
                          "register its price with model.register", {"model": command.model})
    quota = ModelQuotaSet(model=command.model, max_tokens_per_day=command.max_tokens_per_day,
                          max_requests_per_day=command.max_requests_per_day,
                          max_cost_usd_per_day=command.max_cost_usd_per_day)
    current = state.quota or ModelQuotaSet(model=command.model)  # none: every bound null
    return [] if current == quota else [quota]


def _as_price(event: ModelPriceSet) -> Price:
    return Price(provider=event.provider, input_usd_per_mtok=event.input_usd_per_mtok,
                 output_usd_per_mtok=event.output_usd_per_mtok,
                 effective_from=event.effective_from,
                 cached_input_usd_per_mtok=event.cached_input_usd_per_mtok,
                 cache_write_usd_per_mtok=event.cache_write_usd_per_mtok)


def evolve(state: ModelState | None, event: DomainEvent) -> ModelState:
    """Returns the model's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, ModelRegistered):
        return ModelState(model=event.model, provider=event.provider, state=target)
    if state is not None and isinstance(event, ModelConfigured):
        return replace(state, tier=event.tier, fallbacks=tuple(event.fallbacks),
                       failure_threshold=event.failure_threshold, cooldown_s=event.cooldown_s)
    if state is not None and isinstance(event, ModelQuotaSet):
        return replace(state, quota=event)
    if state is None or not isinstance(event, ModelPriceSet):
        raise InvalidHistory(f"model: {event.type_name()} does not follow its history")
    # A price with an effective date already listed corrects that entry.
    kept = [p for p in state.prices if p.effective_from != event.effective_from]
    prices = sorted([*kept, _as_price(event)], key=lambda p: p.effective_from)
    return replace(state, provider=event.provider, prices=tuple(prices))
