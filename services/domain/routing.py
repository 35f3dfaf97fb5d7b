"""Routing: the cheapest healthy model whose estimated cost fits, recorded for the audit.

``model.recommend`` goes through its candidates cheapest first. A candidate is chosen
when it has a price in effect, its price is within ``max_usd_per_mtok``, the breakers of
the model and of its provider let a call through now (closed, or open/half-open with the
probe free) and ``estimate_tokens`` at its price fits the budget the run has left
(``services/domain/headroom.py``). Every candidate is listed in ``considered`` with the
reason it was or was not chosen; the decision is one ``ModelRecommended`` event on a
routing aggregate of its own (one subject per decision, nothing else contends for it).

Each estimated token is priced at the higher of the model's input and output price: an
upper bound, so a recommendation never fits a budget the call could overrun.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from events.base import Command, DomainEvent
from events.catalog.routing import ConsideredModel, ModelRecommended
from events.commands.routing import RecommendModel
from events.errors import ErrorCode
from events.money import exact_usd, usd_text

from .breaker import BreakerState, health
from .context import Context, Price
from .headroom import BudgetLeft
from .machine import DomainError, InvalidHistory, TransitionTable

__all__ = [
    "TABLE",
    "Candidate",
    "ModelCatalog",
    "RoutingFacts",
    "RoutingState",
    "candidate_models",
    "decide",
    "evolve",
    "recommend",
]

TABLE = TransitionTable(
    aggregate="routing",
    states=("decided",),
    edges={(None, "ModelRecommended"): "decided"},
    terminal=frozenset({"decided"}),
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model routing may choose, with what decides it: price, breakers, fallbacks."""

    model: str
    provider: str | None
    price: Price | None
    fallbacks: tuple[str, ...] = ()
    breakers: tuple[BreakerState | None, ...] = ()
    """The model's breaker and its provider's (None: never opened)."""

    @property
    def usd_per_mtok(self) -> Decimal | None:
        """What one estimated million tokens cost: the higher of its two prices."""
        price = self.price
        return None if price is None else max(price.input_usd_per_mtok,
                                              price.output_usd_per_mtok)


@dataclass(frozen=True, slots=True)
class RoutingFacts:
    """What a recommendation is decided on."""

    candidates: tuple[Candidate, ...]
    left: BudgetLeft


@dataclass(frozen=True, slots=True)
class RoutingState:
    """A recorded decision."""

    recommendation_id: str
    state: str
    decision: ModelRecommended


class ModelCatalog:
    """Every registered model and its tier, folded from the log (routing's candidate list)."""

    def __init__(self) -> None:
        self._tiers: dict[str, str | None] = {}

    def registered(self, model: str) -> None:
        """A model was registered."""
        self._tiers.setdefault(model, None)

    def configured(self, model: str, tier: str | None) -> None:
        """A model's tier was set."""
        self._tiers[model] = tier

    def tiers(self) -> Mapping[str, str | None]:
        """Model -> tier (None: none set)."""
        return self._tiers


def candidate_models(command: RecommendModel, tiers: Mapping[str, str | None]) -> list[str]:
    """The models a recommendation chooses from: the list, the tier's, or every model."""
    names: Iterable[str] = command.models or sorted(tiers)
    if command.tier is None:
        return list(names)
    return [name for name in names if tiers.get(name) == command.tier]


def recommend(command: RecommendModel, facts: RoutingFacts, now: datetime) -> ModelRecommended:
    """The decision: the first candidate, cheapest first, that passes every check."""
    if command.recommendation_id is None:
        raise ValueError("the service assigns a recommendation_id before deciding")
    ranked = sorted(facts.candidates, key=_rank)
    considered: list[ConsideredModel] = []
    chosen: Candidate | None = None
    for candidate in ranked:
        refusal, cost = _refusal(candidate, command, facts.left, now)
        pick = refusal is None and chosen is None
        chosen = candidate if pick else chosen
        considered.append(ConsideredModel(
            model=candidate.model, provider=candidate.provider,
            usd_per_mtok=candidate.usd_per_mtok, estimate_cost_usd=cost, chosen=pick,
            reason=_why(refusal, pick)))
    return ModelRecommended(
        recommendation_id=command.recommendation_id, run_id=command.run_id, tier=command.tier,
        models=list(command.models), max_usd_per_mtok=command.max_usd_per_mtok,
        estimate_tokens=command.estimate_tokens,
        model=chosen.model if chosen else None, reason=_reason(chosen, considered),
        considered=considered, fallbacks=list(chosen.fallbacks) if chosen else [],
        budget_left_tokens=facts.left.tokens, budget_left_usd=facts.left.cost_usd)


def _rank(candidate: Candidate) -> tuple[bool, Decimal, str]:
    price = candidate.usd_per_mtok
    return price is None, price or Decimal(0), candidate.model


def _refusal(candidate: Candidate, command: RecommendModel, left: BudgetLeft, now: datetime
             ) -> tuple[str | None, Decimal | None]:
    """Why a candidate cannot be chosen (None: it can), and its estimated cost."""
    price = candidate.usd_per_mtok
    if price is None:
        return "no price in effect", None
    cost = exact_usd(command.estimate_tokens * price / 1_000_000)
    if command.max_usd_per_mtok is not None and price > command.max_usd_per_mtok:
        return (f"price {usd_text(price)} USD/Mtok is over max_usd_per_mtok "
                f"{usd_text(command.max_usd_per_mtok)}"), cost
    for breaker in candidate.breakers:
        healthy, why = health(breaker, now)
        if not healthy:
            return f"{breaker.breaker_id if breaker else 'breaker'}: {why}", cost
    if not left.fits(command.estimate_tokens, cost):
        return (f"estimated {command.estimate_tokens} tokens / {usd_text(cost)} USD do not fit the "
                f"budget left ({_left(left)}, {left.binding})"), cost
    return None, cost


def _why(refusal: str | None, picked: bool) -> str:
    if refusal is not None:
        return refusal
    return "chosen: the cheapest that fits" if picked else "fits, but a cheaper one was chosen"


def _left(left: BudgetLeft) -> str:
    cost = usd_text(left.cost_usd) if left.cost_usd is not None else None
    return f"{left.tokens} tokens, {cost} USD"


def _reason(chosen: Candidate | None, considered: list[ConsideredModel]) -> str:
    if chosen is None:
        if not considered:
            return "no candidate model: none registered matches the tier or list"
        return f"no candidate fits: {len(considered)} considered, each refused"
    refused = next(i for i, c in enumerate(considered) if c.chosen)
    cheaper = f"; {refused} cheaper candidate(s) refused" if refused else ""
    return f"{chosen.model}: the cheapest healthy model within price and budget{cheaper}"


def decide(state: RoutingState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Records one recommendation, decided on ``ctx.facts.routing``."""
    if not isinstance(command, RecommendModel):
        raise TypeError(f"not a routing command: {type(command).__name__}")
    if state is not None:
        raise DomainError(ErrorCode.ALREADY_EXISTS,
                          f"recommendation {state.recommendation_id} already exists")
    facts = ctx.facts.routing
    if facts is None:
        raise ValueError("the service loads the candidates before deciding")
    return [recommend(command, facts, ctx.now)]


def evolve(state: RoutingState | None, event: DomainEvent) -> RoutingState:
    """Returns the recorded decision (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if not isinstance(event, ModelRecommended):
        raise InvalidHistory(f"routing: {event.type_name()} is not a decision")
    return RoutingState(event.recommendation_id, target, event)
