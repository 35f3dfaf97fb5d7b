"""The Model state machine: a model's price history, each price with its effective date.

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
from events.catalog.model import ModelPriceSet, ModelRegistered
from events.commands.model import RegisterModel

from .context import Context, Price
from .machine import InvalidHistory, TransitionTable

__all__ = ["TABLE", "ModelState", "decide", "evolve", "price_at"]

TABLE = TransitionTable(
    aggregate="model",
    states=("active",),
    edges={
        (None, "ModelRegistered"): "active",
        ("active", "ModelPriceSet"): "active",
    },
)


@dataclass(frozen=True, slots=True)
class ModelState:
    """A model's provider and its prices, oldest ``effective_from`` first."""

    model: str
    provider: str
    state: str
    prices: tuple[Price, ...] = ()


def price_at(state: ModelState | None, when: datetime) -> Price | None:
    """The price in effect at ``when``: the latest with ``effective_from <= when``, if any."""
    if state is None:
        return None
    index = bisect.bisect_right([p.effective_from for p in state.prices], when)
    return state.prices[index - 1] if index else None


def decide(state: ModelState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events of ``model.register``: nothing when that exact price is known."""
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
    if state is None or not isinstance(event, ModelPriceSet):
        raise InvalidHistory(f"model: {event.type_name()} does not follow its history")
    # A price with an effective date already listed corrects that entry.
    kept = [p for p in state.prices if p.effective_from != event.effective_from]
    prices = sorted([*kept, _as_price(event)], key=lambda p: p.effective_from)
    return replace(state, provider=event.provider, prices=tuple(prices))
