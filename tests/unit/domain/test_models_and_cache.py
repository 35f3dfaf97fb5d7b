"""Breakers forced by operators and fed by usage, routing, budget left, the result cache."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from events.catalog.breaker import BreakerForcedOpen, BreakerOpened
from events.catalog.task import TaskSatisfiedFromCache, TaskSubmitted
from events.commands.breaker import (
    AcquireBreaker,
    ConfigureBreaker,
    ForceCloseBreaker,
    ForceOpenBreaker,
    RecordBreakerOutcome,
)
from events.commands.model import ConfigureModel, RegisterModel
from events.commands.routing import RecommendModel
from events.commands.task import SubmitTask
from events.errors import ErrorCode
from events.ids import is_valid_id
from services.domain import DomainError
from services.domain.breaker import BreakerState, decide, health
from services.domain.breaker_feed import model_breaker_id, outcome_of, provider_breaker_id
from services.domain.charges import Bound, Ledger
from services.domain.context import Context, Facts, Price
from services.domain.headroom import budget_left
from services.domain.model import ModelState
from services.domain.result_cache import (
    CachedResult,
    ResultIndex,
    cache_key_of,
    default_cache_key,
)
from services.domain.routing import Candidate, RoutingFacts, candidate_models, recommend
from services.domain.run import RunState
from services.domain.task import decide as decide_task

from .support import NOW, ctx, fold, play, running_run

FAIL = RecordBreakerOutcome(breaker_id="b1", outcome="failure", error_class="server_error")
HOUR = timedelta(hours=1)


def _open_for(seconds: float, state: BreakerState | None = None, at: Any = NOW
              ) -> BreakerState:
    command = ForceOpenBreaker(breaker_id="b1", reason="provider incident", open_for_s=seconds)
    result: BreakerState = fold("breaker", decide(state, command, ctx(now=at)), state)
    return result


# -- breakers ---------------------------------------------------------------------

def test_force_open_creates_an_open_breaker_that_refuses_until_its_deadline() -> None:
    state = _open_for(60)
    assert (state.state, state.forced, state.open_until) == (
        "open", True, NOW + timedelta(seconds=60))
    assert decide(state, AcquireBreaker(breaker_id="b1"), ctx(now=NOW)) == []
    until = (NOW + timedelta(seconds=60)).isoformat()
    assert health(state, NOW) == (False, f"breaker open until {until}")


def test_a_new_open_deadline_is_the_later_of_the_old_and_the_new() -> None:
    long = _open_for(3600)
    shorter = _open_for(60, long)
    assert shorter.open_until == NOW + HOUR
    longer = _open_for(7200, long)
    assert longer.open_until == NOW + 2 * HOUR


def test_an_automatic_open_never_shortens_a_forced_one() -> None:
    state: BreakerState = play("breaker", [ConfigureBreaker(breaker_id="b1",
                                                            failure_threshold=1)])
    forced = _open_for(3600, state)
    probing: BreakerState = fold("breaker", decide(
        forced, AcquireBreaker(breaker_id="b1", probe_id="p"), ctx(now=NOW + 2 * HOUR)),
        forced)
    assert probing.state == "half_open"
    (reopened,) = decide(probing, FAIL, ctx(now=NOW + 2 * HOUR))
    assert isinstance(reopened, BreakerOpened)
    assert reopened.until == NOW + 2 * HOUR + timedelta(seconds=30)


def test_forced_open_without_a_deadline_waits_for_force_close() -> None:
    command = ForceOpenBreaker(breaker_id="b1", reason="maintenance")
    (event,) = decide(None, command, ctx())
    assert isinstance(event, BreakerForcedOpen)
    assert event.until is None
    state: BreakerState = fold("breaker", [event])
    assert decide(state, AcquireBreaker(breaker_id="b1"), ctx(now=NOW + 100 * HOUR)) == []
    again = _open_for(60, state)
    assert again.open_until is None  # forever stays the later deadline
    closed: BreakerState = fold("breaker", decide(
        again, ForceCloseBreaker(breaker_id="b1", reason="fixed"), ctx()), again)
    assert (closed.state, closed.forced, closed.consecutive_failures) == ("closed", False, 0)


def test_force_close_of_an_unknown_breaker_is_not_found() -> None:
    with pytest.raises(DomainError) as refused:
        decide(None, ForceCloseBreaker(breaker_id="b1"), ctx())
    assert refused.value.code == ErrorCode.NOT_FOUND


def test_a_record_creates_its_breaker_with_the_thresholds_it_carries() -> None:
    command = RecordBreakerOutcome(breaker_id="b1", outcome="failure", error_class="timeout",
                                   failure_threshold=1, cooldown_s=5.0)
    state: BreakerState = play("breaker", [command])
    assert (state.state, state.failure_threshold, state.cooldown_s) == ("open", 1, 5.0)


@pytest.mark.parametrize(("outcome", "counts"), [
    ("ok", "success"), ("rate_limit", "failure"), ("server_error", "failure"),
    ("timeout", "failure"), ("network", "failure"), ("budget_exceeded", None),
    ("quota_exceeded", None), ("invalid_request", None), ("context_overflow", None),
    ("whatever", None)])
def test_which_usage_outcomes_count_toward_breakers(outcome: str, counts: str | None) -> None:
    assert outcome_of(outcome) == counts


def test_breaker_ids_fit_the_id_rule() -> None:
    assert model_breaker_id("gpt-4.1-mini") == "model-gpt-4_2e1-mini"
    assert provider_breaker_id("openai") == "provider-openai"


# -- routing ----------------------------------------------------------------------

def _price(inp: float, out: float, provider: str = "p1") -> Price:
    return Price(provider, D(str(inp)), D(str(out)), NOW - HOUR)


def _candidate(model: str, inp: float, out: float, *breakers: BreakerState | None,
               provider: str = "p1") -> Candidate:
    return Candidate(model, provider, _price(inp, out, provider), ("fb-1",), breakers)


def _recommend(candidates: list[Candidate], left: Any = None, **fields: Any) -> Any:
    command = RecommendModel(recommendation_id="rec1", estimate_tokens=1_000_000, **fields)
    return recommend(command, RoutingFacts(tuple(candidates), left or budget_left((), _no_ledger)),
                     NOW)


def _no_ledger(scope: str) -> Ledger:
    return Ledger()


def test_the_cheapest_healthy_model_is_chosen_with_its_fallback_chain() -> None:
    decision = _recommend([_candidate("big", 3, 15), _candidate("small", 0.1, 0.4)])
    assert (decision.model, decision.fallbacks) == ("small", ["fb-1"])
    assert [(c.model, c.chosen, c.estimate_cost_usd) for c in decision.considered] == [
        ("small", True, D("0.4")), ("big", False, D(15))]


def test_an_open_breaker_and_a_tight_budget_push_to_the_next_candidate() -> None:
    opened = _open_for(60)
    ledgers = {"budget:team": Ledger(settled_cost_usd=D(8), reserved_cost_usd=D(1)),
               "run:r1": Ledger(settled_tokens=10, reserved_tokens=5)}
    left = budget_left([Bound("budget:team", "budget team (shared)", None, D(10)),
                        Bound("run:r1", "run r1's budget", 2_000_000)],
                       lambda scope: ledgers.get(scope, Ledger()))
    # Settled and reserved both count: $8 settled + $1 held leave $1 of the shared $10.
    assert (left.tokens, left.cost_usd) == (1_999_985, D(1))
    closed = budget_left([Bound("budget:team", "budget team (shared)", None, D(10), True)],
                         lambda scope: Ledger())
    assert (closed.tokens, closed.cost_usd, closed.binding) == (
        0, D(0), "budget team (shared) max_cost_usd")
    decision = _recommend([_candidate("cheap", 0.1, 0.2, opened),
                           _candidate("mid", 0.5, 0.9),
                           _candidate("dear", 2, 8)], left)
    assert decision.model == "mid"
    reasons = {c.model: c.reason for c in decision.considered}
    assert "breaker open until" in reasons["cheap"]
    assert "do not fit the budget left" in reasons["dear"]
    assert decision.budget_left_usd == D(1)


def test_a_half_open_breaker_with_its_probe_taken_is_not_healthy() -> None:
    probing: BreakerState = fold("breaker", decide(
        _open_for(1), AcquireBreaker(breaker_id="b1", probe_id="p"),
        ctx(now=NOW + timedelta(seconds=2))), _open_for(1))
    assert health(probing, NOW + timedelta(seconds=3))[0] is False
    assert health(probing, NOW + HOUR)[0] is True
    assert health(_open_for(1), NOW + timedelta(seconds=2))[0] is True


def test_a_price_cap_and_no_fit_give_no_model_with_a_reason() -> None:
    decision = _recommend([_candidate("big", 3, 15)], max_usd_per_mtok=1.0)
    assert decision.model is None
    assert "no candidate fits" in decision.reason
    assert "over max_usd_per_mtok" in decision.considered[0].reason


def test_candidates_are_the_list_the_tier_or_every_model() -> None:
    tiers = {"a": "small", "b": "frontier", "c": "small"}
    assert candidate_models(RecommendModel(tier="small"), tiers) == ["a", "c"]
    assert candidate_models(RecommendModel(models=["b", "c"], tier="small"), tiers) == ["c"]
    assert candidate_models(RecommendModel(), tiers) == ["a", "b", "c"]


def test_model_configure_sets_the_chain_and_refuses_itself() -> None:
    state: ModelState = play("model", [
        RegisterModel(model="m.a", provider="p", input_usd_per_mtok=D(1),
                      output_usd_per_mtok=D(2)),
        ConfigureModel(model="m.a", tier="small", fallbacks=["m.b", "m.b"],
                       failure_threshold=2)])
    assert (state.tier, state.fallbacks, state.failure_threshold) == ("small", ("m.b",), 2)
    with pytest.raises(DomainError):
        play("model", [ConfigureModel(model="m.a", fallbacks=["m.a"])], state=state)
    with pytest.raises(DomainError) as unknown:
        play("model", [ConfigureModel(model="nope")])
    assert unknown.value.code == ErrorCode.NOT_FOUND


# -- the result cache --------------------------------------------------------------

def test_the_index_stores_a_keyed_result_with_its_cost_and_forgets_it_on_invalidation() -> None:
    index = ResultIndex()
    index.submitted("t1", "k:1")
    index.used("t1", 100, D("0.5"))
    index.succeeded("t1", NOW, {"answer": 42})
    index.used("t1", 10, D("0.05"))  # usage recorded after the success still counts
    stored = index.lookup("k:1")
    assert stored is not None
    assert (stored.task_id, stored.tokens) == ("t1", 110)
    assert stored.cost_usd == D("0.55")
    assert index.invalidate(None, "k:", NOW - HOUR) == 0  # stored after that invalidation
    assert index.invalidate(None, "k:", NOW) == 1
    assert index.lookup("k:1") is None


def test_a_failed_keyed_task_stores_nothing() -> None:
    index = ResultIndex()
    index.submitted("t1", "k")
    index.ended("t1")
    index.succeeded("t1", NOW, {})
    assert index.lookup("k") is None


def test_the_default_key_hashes_kind_and_canonical_payload() -> None:
    assert default_cache_key("sum", {"a": 1, "b": 2}) == default_cache_key("sum", {"b": 2, "a": 1})
    assert default_cache_key("sum", {"a": 1}) != default_cache_key("sum", {"a": 2})
    assert default_cache_key("sum", {}).startswith("sum:")
    run = RunState(run_id="r1", state="running", cache_results=True)
    assert cache_key_of(None, "sum", {}, run) == default_cache_key("sum", {})
    assert cache_key_of(None, "sum", {}, RunState(run_id="r1", state="running")) is None
    assert cache_key_of("mine", "sum", {}, None) == "mine"


def _submit_with(cached: CachedResult | None, run: RunState, at: Any = NOW, **fields: Any
                 ) -> Any:
    command = SubmitTask(task_id="t2", run_id="r1", kind="sum", cache_key="k", **fields)
    (event,) = decide_task(None, command, Context(now=at, facts=Facts(run=run, cached=cached)))
    return event


def test_a_fresh_result_answers_a_submission_even_over_budget() -> None:
    cached = CachedResult("k", "t1", NOW - timedelta(minutes=5), {"x": 1}, 500, D("0.25"))
    event = _submit_with(cached, running_run(over_budget=True))
    assert isinstance(event, TaskSatisfiedFromCache)
    assert (event.source_task_id, event.result, event.tokens_saved, event.cost_saved_usd) == (
        "t1", {"x": 1}, 500, D("0.25"))
    assert fold("task", [event]).state == "succeeded"


def test_a_stale_result_or_a_dependency_means_the_task_runs() -> None:
    cached = CachedResult("k", "t1", NOW - timedelta(days=2), {"x": 1})
    assert isinstance(_submit_with(cached, running_run()), TaskSubmitted)
    short = running_run(cache_ttl_s=60.0)
    fresh = CachedResult("k", "t1", NOW - timedelta(minutes=5), {"x": 1})
    assert isinstance(_submit_with(fresh, short), TaskSubmitted)
    assert isinstance(_submit_with(fresh, running_run(), depends_on=["t0"]), TaskSubmitted)


def test_a_newer_result_replaces_the_older_under_its_key() -> None:
    index = ResultIndex(kept=2)
    for n in range(5):
        index.submitted(f"t{n}", "k")
        index.succeeded(f"t{n}", NOW + timedelta(seconds=n), {"n": n})
    index.used("t0", 100, D(1))  # the replaced result's late usage changes nothing
    stored = index.lookup("k")
    assert stored is not None
    assert (stored.task_id, stored.result, stored.tokens) == ("t4", {"n": 4}, 0)
    assert len(index._key_of_task) == 1


def test_long_model_names_keep_breakers_of_their_own() -> None:
    first, second = "m" * 122 + "abc", "m" * 122 + "xyz"  # both valid model names
    ids = {model_breaker_id(first), model_breaker_id(second)}
    assert len(ids) == 2  # cut short, both were model-mmm...m
    assert all(is_valid_id(i) and len(i) == 128 for i in ids)
    assert model_breaker_id("gpt-4.1") == "model-gpt-4_2e1"  # a short name is as before
    assert provider_breaker_id("p" * 128) != provider_breaker_id("p" * 127 + "q")
