"""Model prices and routing, shared budgets, circuit breakers and the result cache."""

from __future__ import annotations

from events.catalog.breaker import BreakerHalfOpened
from events.catalog.cache import CacheInvalidated
from events.catalog.routing import ModelRecommended
from events.commands.breaker import (
    AcquireBreaker,
    ConfigureBreaker,
    ForceCloseBreaker,
    ForceOpenBreaker,
    RecordBreakerOutcome,
    ResetBreaker,
)
from events.commands.budget import CloseBudget, CreateBudget, RaiseBudget, RecordBudgetThreshold
from events.commands.cache import InvalidateCache
from events.commands.model import ConfigureModel, RegisterModel, SetModelQuota
from events.commands.queue import ConfigureQueue
from events.commands.routing import RecommendModel
from events.ids import model_aggregate_id
from services.domain import breaker, budget, cache, model, queue, routing
from services.domain.breaker_feed import model_breaker_id, provider_breaker_id
from services.domain.context import Facts
from services.domain.headroom import BudgetLeft, budget_left
from services.domain.routing import Candidate, RoutingFacts

from ..repositories import CommandRecord
from ..routes import AnyRoute, Outcome, ReplyFields, Route, target_of
from ..unit_of_work import Committed, UnitOfWork
from .common import load_run, on_target
from .reservations import payer_of

__all__ = ["ROUTES"]


async def acquire_breaker(uow: UnitOfWork, command: AcquireBreaker) -> Outcome:
    """Decides whether the caller may call the guarded provider; the reply says ``allowed``."""
    repo = uow.repos.breakers
    loaded = await uow.get(repo, command.breaker_id)
    before = loaded.state
    events = breaker.decide(before, command, uow.context())
    uow.record(repo, loaded, events)
    allowed = breaker.acquire_allowed(before, events, uow.context())

    async def extra(committed: Committed | None) -> ReplyFields:
        del committed
        state = repo.cached(command.breaker_id)
        name = state.state.state if state is not None and state.state is not None else "closed"
        return {"allowed": allowed, "state": name}

    return Outcome(loaded, extra)


async def replay_acquire(uow: UnitOfWork, command: AcquireBreaker, record: CommandRecord
                         ) -> ReplyFields:
    """A retried acquire that wrote ``BreakerHalfOpened`` was the one probe let through."""
    loaded = await uow.get(uow.repos.breakers, command.breaker_id)
    state = loaded.state.state if loaded.state is not None else "closed"
    return {"allowed": BreakerHalfOpened.type_name() in record.event_types, "state": state}


async def recommend_model(uow: UnitOfWork, command: RecommendModel) -> Outcome:
    """Chooses a model on the candidates' prices and breakers and the run's budget left."""
    repo = uow.repos.routing
    loaded = await uow.get(repo, target_of(command))
    names = routing.candidate_models(command, uow.repos.catalog.tiers())
    candidates = tuple([await _candidate(uow, name) for name in names])
    facts = RoutingFacts(candidates, await _budget_left(uow, command.run_id))
    events = routing.decide(loaded.state, command, uow.context(Facts(routing=facts)))
    uow.record(repo, loaded, events)
    decision = events[0]

    async def extra(committed: Committed | None) -> ReplyFields:
        del committed
        return _decision_view(decision) if isinstance(decision, ModelRecommended) else {}

    return Outcome(loaded, extra)


async def _candidate(uow: UnitOfWork, name: str) -> Candidate:
    state = (await uow.get(uow.repos.models, model_aggregate_id(name))).state
    price = model.price_at(state, uow.now)
    provider = price.provider if price else (state.provider if state else None)
    ids = [model_breaker_id(name)] + ([provider_breaker_id(provider)] if provider else [])
    breakers = tuple([(await uow.get(uow.repos.breakers, b)).state for b in ids])
    return Candidate(name, provider, price, state.fallbacks if state else (), breakers)


async def _budget_left(uow: UnitOfWork, run_id: str | None) -> BudgetLeft:
    """What the run may still spend, on the bounds ``budget.reserve`` admits it against."""
    run = await load_run(uow, run_id) if run_id else None
    ledgers = uow.repos.ledgers
    bounds = ledgers.bounds(payer_of(run), uow.repos.budget_defaults, uow.now) if run else ()
    return budget_left(bounds, ledgers.ledger)


def _decision_view(decision: ModelRecommended) -> ReplyFields:
    return {"recommendation_id": decision.recommendation_id, "model": decision.model,
            "reason": decision.reason,
            "considered": [c.model_dump(mode="json") for c in decision.considered],
            "fallbacks": list(decision.fallbacks),
            "budget_left": {"tokens": decision.budget_left_tokens,
                            "cost_usd": decision.budget_left_usd}}


async def replay_recommend(uow: UnitOfWork, command: RecommendModel, record: CommandRecord
                           ) -> ReplyFields:
    """A retried recommendation answers with the decision it recorded."""
    del record
    state = (await uow.get(uow.repos.routing, target_of(command))).state
    return _decision_view(state.decision) if state is not None else {}


async def invalidate_cache(uow: UnitOfWork, command: InvalidateCache) -> Outcome:
    """Drops cached results; this replica's next submissions miss them at once."""
    repo = uow.repos.cache
    loaded = await uow.get(repo, target_of(command))
    # Counted before the commit: the log follower may fold the event in first.
    dropped = len(uow.repos.results.matching(command.cache_key, command.prefix, uow.now))
    facts = Facts(cached_matches=dropped)
    uow.record(repo, loaded, cache.decide(loaded.state, command, uow.context(facts)))

    async def forget(unit: UnitOfWork, committed: Committed) -> None:
        del committed
        unit.repos.results.invalidate(command.cache_key, command.prefix, unit.now)

    async def extra(committed: Committed | None) -> ReplyFields:
        del committed
        return {"invalidated": dropped}

    uow.after_commit.append(forget)
    return Outcome(loaded, extra)


async def replay_invalidate(uow: UnitOfWork, command: InvalidateCache, record: CommandRecord
                            ) -> ReplyFields:
    """A retried invalidation answers with the count it recorded."""
    for recorded in await uow.store.read_subject(uow.repos.cache.subject(target_of(command)),
                                                 record.seq):
        event = uow.codec.typed(uow.codec.decode(recorded.payload, recorded.seq))
        if isinstance(event, CacheInvalidated) and recorded.seq == record.seq:
            return {"invalidated": event.dropped}
    return {"invalidated": 0}


_on_breaker = on_target(lambda repos: repos.breakers, breaker.decide)
_on_budget = on_target(lambda repos: repos.budgets, budget.decide)
_on_model = on_target(lambda repos: repos.models, model.decide)

ROUTES: tuple[AnyRoute, ...] = (
    Route(RegisterModel, _on_model),
    Route(ConfigureModel, _on_model),
    Route(RecommendModel, recommend_model, replay=replay_recommend),
    Route(InvalidateCache, invalidate_cache, replay=replay_invalidate),
    Route(SetModelQuota, _on_model),
    Route(ConfigureQueue, on_target(lambda repos: repos.queues, queue.decide)),
    Route(CreateBudget, _on_budget),
    Route(RaiseBudget, _on_budget),
    Route(CloseBudget, _on_budget),
    Route(RecordBudgetThreshold, _on_budget),
    Route(AcquireBreaker, acquire_breaker, replay=replay_acquire),
    Route(ConfigureBreaker, _on_breaker),
    Route(RecordBreakerOutcome, _on_breaker),
    Route(ResetBreaker, _on_breaker),
    Route(ForceOpenBreaker, _on_breaker),
    Route(ForceCloseBreaker, _on_breaker),
)
