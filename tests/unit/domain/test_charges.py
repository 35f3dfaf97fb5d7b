"""Budget ledgers and admission: pure rules, folded in any order, each event once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from events.catalog.reservation import BudgetReserved, ReservationReleased
from events.catalog.run import RunBudget
from events.errors import ErrorCode
from services.domain import DomainError
from services.domain.budget import BudgetState
from services.domain.charges import (
    Bound,
    BudgetDefaults,
    Ledgers,
    Payer,
    Usage,
    admit,
    budget_scope,
    money,
)

NOW = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
TEAM = "budget:team"


def _reserved(rid: str, tokens: int = 100, usd: str = "0.01",
              scopes: tuple[str, ...] = (TEAM,)) -> BudgetReserved:
    return BudgetReserved(reservation_id=rid, run_id="r1", estimate_tokens=tokens,
                          estimate_cost_usd=Decimal(usd), expires_at=NOW, scopes=scopes)


def _budget(budget_id: str = "team", scope: str = "shared", period: str | None = None,
            time_zone: str = "UTC", run_id: str | None = None, session_id: str | None = None,
            max_tokens: int | None = None) -> BudgetState:
    return BudgetState(budget_id=budget_id, name=budget_id, state="active", scope=scope,
                       period=period, time_zone=time_zone, run_id=run_id,
                       session_id=session_id, max_tokens=max_tokens)


def test_a_reservation_counts_until_its_settlement_replaces_it() -> None:
    ledgers = Ledgers()
    ledgers.reserved(_reserved("a"), 1)
    assert (ledgers.ledger(TEAM).reserved_tokens, ledgers.ledger(TEAM).live) == (100, 1)
    ledgers.used(Usage(40, Decimal("0.004"), (TEAM,), "a"), 2)
    ledger = ledgers.ledger(TEAM)
    assert (ledger.reserved_tokens, ledger.settled_tokens, ledger.settled_cost_usd,
            ledger.live) == (0, 40, Decimal("0.004"), 0)
    assert ledgers.ended("a") == "settled"


def test_each_event_counts_once_however_often_it_arrives() -> None:
    ledgers = Ledgers()
    for _ in range(3):  # own write, the follower, a catch-up read
        ledgers.reserved(_reserved("a"), 1)
        ledgers.used(Usage(10, Decimal("0.001"), (TEAM,)), 2)
    ledger = ledgers.ledger(TEAM)
    assert (ledger.reserved_tokens, ledger.settled_tokens) == (100, 10)


def test_a_settlement_seen_before_its_reservation_leaves_nothing_live() -> None:
    """Another replica settled it; this one sees the usage first, the reservation later."""
    ledgers = Ledgers()
    ledgers.used(Usage(40, Decimal("0.004"), (TEAM,), "a"), 5)
    ledgers.reserved(_reserved("a"), 3)
    assert ledgers.ledger(TEAM).reserved_tokens == 0
    assert ledgers.hold("a") is None


def test_a_release_after_settlement_changes_nothing() -> None:
    ledgers = Ledgers()
    ledgers.reserved(_reserved("a"), 1)
    ledgers.used(Usage(40, Decimal("0.004"), (TEAM,), "a"), 2)
    ledgers.released(ReservationReleased(reservation_id="a", reason="expired"), 3)
    ledger = ledgers.ledger(TEAM)
    assert (ledger.reserved_tokens, ledger.settled_tokens) == (0, 40)
    assert ledgers.ended("a") == "settled"


def test_a_settlement_after_a_release_counts_the_money() -> None:
    ledgers = Ledgers()
    ledgers.reserved(_reserved("a"), 1)
    ledgers.released(ReservationReleased(reservation_id="a"), 2)
    ledgers.used(Usage(40, Decimal("0.004"), (TEAM,), "a"), 3)
    assert (ledgers.ledger(TEAM).settled_tokens, ledgers.ended("a")) == (40, "settled")


def test_admission_is_exact_at_the_bound() -> None:
    ledgers = Ledgers()
    ledgers.used(Usage(0, Decimal("0.007"), (TEAM,)), 1)
    ledgers.reserved(_reserved("a", usd="0.002"), 2)
    bound = Bound(TEAM, "budget team", max_cost_usd=Decimal("0.01"))
    admit(ledgers, [bound], 0, Decimal("0.001"))  # 0.007 + 0.002 + 0.001 == 0.01
    with pytest.raises(DomainError) as refused:
        admit(ledgers, [bound], 0, Decimal("0.0010001"))
    assert refused.value.code == ErrorCode.BUDGET_EXCEEDED
    assert refused.value.details["reserved_cost_usd"] == "0.002"


def test_many_small_amounts_add_up_exactly() -> None:
    ledgers = Ledgers()
    for seq in range(1, 1001):
        ledgers.used(Usage(1, money(0.001), (TEAM,)), seq)
    assert ledgers.ledger(TEAM).settled_cost_usd == Decimal("1.000")


def test_a_daily_budget_rolls_over_at_midnight_of_its_time_zone() -> None:
    """The period is the day of the event's time in the budget's zone: no cron."""
    utc = _budget(period="day")
    tokyo = _budget("tk", period="day", time_zone="Asia/Tokyo")
    assert budget_scope(utc, NOW) == "budget:team@2026-03-01"
    assert budget_scope(utc, NOW + timedelta(minutes=31)) == "budget:team@2026-03-02"
    assert budget_scope(tokyo, NOW) == "budget:tk@2026-03-02"  # 08:30 on the 2nd there
    assert budget_scope(_budget(), NOW) == TEAM


def test_yesterdays_spending_does_not_bound_today() -> None:
    ledgers = Ledgers()
    ledgers.define(_budget(scope="day", period="day", max_tokens=100), 1)
    payer = Payer("r1")
    today = ledgers.bounds(payer, BudgetDefaults(), NOW)
    ledgers.used(Usage(100, Decimal(0), ledgers.scopes_of(payer, NOW)), 2)
    with pytest.raises(DomainError):
        admit(ledgers, today, 1, Decimal(0))
    tomorrow = NOW + timedelta(hours=1)
    admit(ledgers, ledgers.bounds(payer, BudgetDefaults(), tomorrow), 100, Decimal(0))


def test_which_bounds_apply_to_a_payer() -> None:
    """Shared by id, run and session by target, day for everyone; defaults fill the gaps."""
    ledgers = Ledgers()
    for seq, budget in enumerate([
            _budget("shared1"), _budget("other"), _budget("mine", scope="run", run_id="r1"),
            _budget("chat", scope="session", session_id="s1")], start=1):
        ledgers.define(budget, seq)
    defaults = BudgetDefaults(run_tokens=5000, session_tokens=50_000, day_tokens=500_000)
    bounds = ledgers.bounds(Payer("r1", "s1", "shared1"), defaults, NOW)
    assert [b.scope for b in bounds] == ["budget:chat", "budget:mine", "budget:shared1",
                                         "day@2026-03-01"]
    own = RunBudget(max_cost_usd=Decimal("1.5"))
    plain = ledgers.bounds(Payer("r2", "s2", None, own), defaults, NOW)
    assert [(b.scope, b.max_tokens, b.max_cost_usd) for b in plain] == [
        ("run:r2", None, Decimal("1.5")), ("session:s2", 50_000, None),
        ("day@2026-03-01", 500_000, None)]


def test_a_closed_budget_refuses() -> None:
    with pytest.raises(DomainError) as refused:
        admit(Ledgers(), [Bound(TEAM, "budget team", closed=True)], 0, Decimal(0))
    assert "closed" in refused.value.message


def test_lapsed_and_task_holds() -> None:
    ledgers = Ledgers()
    ledgers.reserved(_reserved("a").model_copy(update={"task_id": "t1"}), 1)
    ledgers.reserved(_reserved("b").model_copy(
        update={"worker_id": "w1", "expires_at": NOW + timedelta(hours=1)}), 2)
    assert [h.reservation_id for h in ledgers.holds_of_task("t1")] == ["a"]
    assert [h.reservation_id for h in ledgers.holds_of_worker("w1")] == ["b"]
    assert [h.reservation_id for h in ledgers.lapsed(NOW)] == ["a"]
