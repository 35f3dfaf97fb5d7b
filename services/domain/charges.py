"""Budget ledgers: what each scope has settled and holds in live reservations, and admission.

Every spending limit (a run's, a session's, a day's, a shared budget's) is a ledger key
(a *scope*: ``run:<id>``, ``session:<id>``, ``day@<date>``, ``budget:<id>`` or
``budget:<id>@<date>`` for a daily budget). A reservation counts its estimate on every
scope it was admitted against until it ends; a usage counts its real tokens and cost on
its scopes (a settling usage on its reservation's). Nothing is a counter of its own: the
ledgers are folded from ``BudgetReserved``, ``ReservationReleased`` and ``UsageRecorded``,
in any order (a settlement may reach a replica before its reservation), each once.

``admit`` is pure: the service decides a reservation on ledgers that hold every
reservation event up to the position its append is guarded by, so settled + reserved +
the estimate never passes a bound, on any number of replicas. Settlements it has not
seen yet only make it stricter (a live reservation holds at least what settles it,
unless the call cost more than its estimate).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from events.catalog.reservation import BudgetReserved, ReservationReleased
from events.catalog.run import RunBudget
from events.errors import ErrorCode
from events.money import parse_usd, usd_text

from .budget import BudgetState
from .machine import DomainError

__all__ = [
    "ZERO",
    "Bound",
    "BudgetDefaults",
    "Hold",
    "Ledger",
    "Ledgers",
    "Payer",
    "Usage",
    "admit",
    "budget_scope",
    "money",
    "period_of",
]

ZERO = Decimal(0)
_ENDED_KEPT = 200_000
_SEEN_KEPT = 200_000


def money(value: float | Decimal | str | int) -> Decimal:
    """An amount as an exact decimal (a float through its shortest text, not its binary)."""
    return parse_usd(value)


@dataclass(frozen=True, slots=True)
class Ledger:
    """One scope's settled spending and what its live reservations hold."""

    settled_tokens: int = 0
    settled_cost_usd: Decimal = ZERO
    reserved_tokens: int = 0
    reserved_cost_usd: Decimal = ZERO
    live: int = 0
    """Live reservations counted here."""

    def moved(self, tokens: int, cost: Decimal, reserved: bool, sign: int) -> Ledger:
        """The ledger with an amount added (+1) or taken away (-1), reserved or settled."""
        # Spelled out: dataclasses.replace introspects the fields on every call, and each
        # usage moves a ledger per scope (its run's, its day's, ...).
        if reserved:
            return Ledger(self.settled_tokens, self.settled_cost_usd,
                          self.reserved_tokens + sign * tokens,
                          self.reserved_cost_usd + sign * cost, self.live + sign)
        return Ledger(self.settled_tokens + sign * tokens, self.settled_cost_usd + sign * cost,
                      self.reserved_tokens, self.reserved_cost_usd, self.live)


@dataclass(frozen=True, slots=True)
class Hold:
    """A live reservation: what it holds, where, for whom, until when."""

    reservation_id: str
    run_id: str
    tokens: int
    cost_usd: Decimal
    expires_at: datetime
    scopes: tuple[str, ...]
    task_id: str | None = None
    worker_id: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What a ``UsageRecorded`` counts: real tokens and cost, on these scopes."""

    tokens: int
    cost_usd: Decimal
    scopes: tuple[str, ...]
    reservation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Payer:
    """Who a reservation or a usage is for: the run and what it belongs to."""

    run_id: str
    session_id: str | None = None
    budget_id: str | None = None
    run_budget: RunBudget | None = None


@dataclass(frozen=True, slots=True)
class BudgetDefaults:
    """Token limits that apply where no budget of that scope is defined (None: none)."""

    run_tokens: int | None = None
    session_tokens: int | None = None
    day_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Bound:
    """A limit a reservation must stay within, on one scope."""

    scope: str
    label: str
    max_tokens: int | None = None
    max_cost_usd: Decimal | None = None
    closed: bool = False

    def needs_cost(self) -> bool:
        """Whether the bound is in USD (a reservation must then carry a cost estimate)."""
        return self.max_cost_usd is not None


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def period_of(budget: BudgetState, at: datetime) -> str:
    """The budget's period containing ``at``: the day in its time zone, or "" (no period)."""
    if budget.period != "day":
        return ""
    return at.astimezone(_zone(budget.time_zone)).date().isoformat()


def budget_scope(budget: BudgetState, at: datetime) -> str:
    """The ledger key of a budget's period containing ``at``."""
    period = period_of(budget, at)
    return f"budget:{budget.budget_id}@{period}" if period else f"budget:{budget.budget_id}"


def _day_scope(at: datetime) -> str:
    return f"day@{at.astimezone(UTC).date().isoformat()}"


def admit(ledgers: Ledgers, bounds: Iterable[Bound], tokens: int, cost: Decimal) -> None:
    """Refuses (``budget_exceeded``) an estimate that would take a scope past a bound."""
    for bound in bounds:
        ledger = ledgers.ledger(bound.scope)
        over = _overrun(bound, ledger, tokens, cost)
        if over is None:
            continue
        raise DomainError(ErrorCode.BUDGET_EXCEEDED, f"{bound.label}: {over}", {
            "scope": bound.scope, "max_tokens": bound.max_tokens,
            "max_cost_usd": None if bound.max_cost_usd is None else usd_text(bound.max_cost_usd),
            "settled_tokens": ledger.settled_tokens,
            "settled_cost_usd": usd_text(ledger.settled_cost_usd),
            "reserved_tokens": ledger.reserved_tokens,
            "reserved_cost_usd": usd_text(ledger.reserved_cost_usd),
            "estimate_tokens": tokens, "estimate_cost_usd": usd_text(cost)})


def _overrun(bound: Bound, ledger: Ledger, tokens: int, cost: Decimal) -> str | None:
    if bound.closed:
        return "the budget is closed"
    if bound.max_tokens is not None and \
            ledger.settled_tokens + ledger.reserved_tokens + tokens > bound.max_tokens:
        return (f"{ledger.settled_tokens} tokens settled + {ledger.reserved_tokens} reserved "
                f"+ {tokens} asked > {bound.max_tokens}")
    if bound.max_cost_usd is not None and \
            ledger.settled_cost_usd + ledger.reserved_cost_usd + cost > bound.max_cost_usd:
        return (f"${usd_text(ledger.settled_cost_usd)} settled + "
                f"${usd_text(ledger.reserved_cost_usd)} reserved + ${usd_text(cost)} asked > "
                f"${usd_text(bound.max_cost_usd)}")
    return None


class Ledgers:
    """Every scope's ledger, the live reservations and the budgets' definitions, folded once."""

    def __init__(self) -> None:
        self._ledgers: dict[str, Ledger] = {}
        self._holds: dict[str, Hold] = {}
        self._ended: OrderedDict[str, tuple[str, tuple[str, ...]]] = OrderedDict()
        """Ended reservations: how (settled, released) and the scopes they counted on."""
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._budgets: dict[str, tuple[BudgetState, int]] = {}
        self._by_task: dict[str, set[str]] = {}
        self._by_worker: dict[str, set[str]] = {}

    # -- reading ----------------------------------------------------------------

    def ledger(self, scope: str) -> Ledger:
        """One scope's ledger (empty when nothing counted on it yet)."""
        return self._ledgers.get(scope, _EMPTY)

    def hold(self, reservation_id: str) -> Hold | None:
        """A live reservation, or None."""
        return self._holds.get(reservation_id)

    def knows(self, reservation_id: str) -> bool:
        """Whether any event of this reservation was folded here (and is still remembered)."""
        return reservation_id in self._holds or reservation_id in self._ended

    def ended(self, reservation_id: str) -> str | None:
        """How a reservation ended (``settled``, ``released``), or None while live or unknown."""
        ended = self._ended.get(reservation_id)
        return ended[0] if ended else None

    def scopes_of_ended(self, reservation_id: str) -> tuple[str, ...] | None:
        """The scopes an ended reservation counted on, when still remembered."""
        ended = self._ended.get(reservation_id)
        return ended[1] if ended else None

    def holds(self) -> Iterator[Hold]:
        """Every live reservation."""
        return iter(list(self._holds.values()))

    def holds_of_task(self, task_id: str) -> list[Hold]:
        """The live reservations made for a task."""
        return [self._holds[r] for r in sorted(self._by_task.get(task_id, ()))]

    def holds_of_worker(self, worker_id: str) -> list[Hold]:
        """The live reservations made by a worker."""
        return [self._holds[r] for r in sorted(self._by_worker.get(worker_id, ()))]

    def lapsed(self, now: datetime) -> list[Hold]:
        """Live reservations past their expiry."""
        return [h for h in self._holds.values() if h.expires_at <= now]

    def budget(self, budget_id: str) -> BudgetState | None:
        """A budget's definition as last folded here."""
        known = self._budgets.get(budget_id)
        return known[0] if known else None

    def budget_seq(self, budget_id: str) -> int:
        """The sequence of the budget's definition folded here (0: none)."""
        known = self._budgets.get(budget_id)
        return known[1] if known else 0

    def budgets(self) -> list[BudgetState]:
        """Every budget defined."""
        return [state for state, _ in self._budgets.values()]

    def view(self, budget: BudgetState, now: datetime) -> BudgetState:
        """The budget with its current period's settled spending counted in."""
        ledger = self.ledger(budget_scope(budget, now))
        return replace(budget, tokens=budget.tokens + ledger.settled_tokens,
                       cost_usd=budget.cost_usd + ledger.settled_cost_usd)

    # -- which scopes and bounds apply ------------------------------------------

    def applying(self, payer: Payer) -> list[BudgetState]:
        """The budgets that bound ``payer``'s spending (every scope), in a stable order."""
        found = []
        for budget in self.budgets():
            if (budget.scope == "shared" and budget.budget_id == payer.budget_id) \
                    or (budget.scope == "run" and budget.run_id == payer.run_id) \
                    or (budget.scope == "session" and payer.session_id is not None \
                    and budget.session_id == payer.session_id) \
                    or budget.scope == "day":
                found.append(budget)
        return sorted(found, key=lambda b: b.budget_id)

    def scopes_of(self, payer: Payer, at: datetime) -> tuple[str, ...]:
        """Every ledger a spend of ``payer`` at ``at`` counts on."""
        scopes = [f"run:{payer.run_id}", _day_scope(at)]
        if payer.session_id is not None:
            scopes.append(f"session:{payer.session_id}")
        scopes.extend(budget_scope(b, at) for b in self.applying(payer))
        return tuple(scopes)

    def bounds(self, payer: Payer, defaults: BudgetDefaults, at: datetime) -> list[Bound]:
        """Every limit a reservation of ``payer`` at ``at`` must stay within."""
        budgets = self.applying(payer)
        bounds = [Bound(budget_scope(b, at), f"budget {b.budget_id} ({b.scope})",
                        b.max_tokens, None if b.max_cost_usd is None else money(b.max_cost_usd),
                        b.state == "closed") for b in budgets]
        scopes = {b.scope for b in budgets}
        bounds.extend(_default_bounds(payer, defaults, at, scopes))
        return bounds

    # -- folding ----------------------------------------------------------------

    def define(self, budget: BudgetState, seq: int) -> None:
        """Keeps a budget's newest definition (one folded at a later ``seq`` wins)."""
        known = self._budgets.get(budget.budget_id)
        if known is None or seq >= known[1]:
            self._budgets[budget.budget_id] = (budget, seq)

    def reserved(self, event: BudgetReserved, seq: int) -> None:
        """Counts a reservation on its scopes, unless it already ended (seen out of order)."""
        rid = event.reservation_id
        if self._first(seq) is False or rid in self._ended or rid in self._holds:
            return
        hold = Hold(rid, event.run_id, event.estimate_tokens, event.estimate_cost_usd,
                    event.expires_at, event.scopes, event.task_id, event.worker_id)
        self._holds[rid] = hold
        if hold.task_id is not None:
            self._by_task.setdefault(hold.task_id, set()).add(rid)
        if hold.worker_id is not None:
            self._by_worker.setdefault(hold.worker_id, set()).add(rid)
        self._move(hold.scopes, hold.tokens, hold.cost_usd, reserved=True, sign=+1)

    def released(self, event: ReservationReleased, seq: int) -> None:
        """Stops counting a reservation (when it was still live)."""
        if self._first(seq):
            self._end(event.reservation_id, "released", ())

    def used(self, usage: Usage, seq: int) -> None:
        """Counts a usage on its scopes; a settling one ends its reservation."""
        if not self._first(seq):
            return
        if usage.reservation_id is not None:
            self._end(usage.reservation_id, "settled", usage.scopes)
        self._move(usage.scopes, usage.tokens, usage.cost_usd, reserved=False, sign=+1)

    def _end(self, rid: str, how: str, scopes: tuple[str, ...]) -> None:
        hold = self._holds.pop(rid, None)
        if hold is not None:
            self._move(hold.scopes, hold.tokens, hold.cost_usd, reserved=True, sign=-1)
            _unindex(self._by_task, hold.task_id, rid)
            _unindex(self._by_worker, hold.worker_id, rid)
            scopes = hold.scopes
        if rid in self._ended:
            if how == "settled":  # settled after a release: the usage is what it cost
                self._ended[rid] = (how, self._ended[rid][1])
            return
        self._ended[rid] = (how, scopes)
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)

    def _move(self, scopes: tuple[str, ...], tokens: int, cost: Decimal, reserved: bool,
              sign: int) -> None:
        for scope in scopes:
            self._ledgers[scope] = self.ledger(scope).moved(tokens, cost, reserved, sign)

    def counted(self, seq: int) -> bool:
        """Whether the usage at ``seq`` is counted already (this replica's own write)."""
        return seq in self._seen

    def _first(self, seq: int) -> bool:
        """Whether the event at ``seq`` is folded for the first time (own write and log)."""
        if seq in self._seen:
            return False
        self._seen[seq] = None
        while len(self._seen) > _SEEN_KEPT:
            self._seen.popitem(last=False)
        return True


_EMPTY = Ledger()


def _unindex(index: dict[str, set[str]], key: str | None, rid: str) -> None:
    if key is None:
        return
    ids = index.get(key)
    if ids is not None:
        ids.discard(rid)
        if not ids:
            del index[key]


def _default_bounds(payer: Payer, defaults: BudgetDefaults, at: datetime,
                    defined: set[str]) -> list[Bound]:
    """The run's own budget (or the run default) and the session and day defaults."""
    bounds = []
    own = payer.run_budget
    if own is not None and (own.max_tokens is not None or own.max_cost_usd is not None):
        bounds.append(Bound(f"run:{payer.run_id}", f"run {payer.run_id}'s budget",
                            own.max_tokens,
                            None if own.max_cost_usd is None else money(own.max_cost_usd)))
    elif "run" not in defined and defaults.run_tokens is not None:
        bounds.append(Bound(f"run:{payer.run_id}",
                            f"run {payer.run_id} (RUNLOG_BUDGET_RUN_TOKENS)", defaults.run_tokens))
    if payer.session_id is not None and "session" not in defined \
            and defaults.session_tokens is not None:
        bounds.append(Bound(f"session:{payer.session_id}",
                            f"session {payer.session_id} (RUNLOG_BUDGET_SESSION_TOKENS)",
                            defaults.session_tokens))
    if "day" not in defined and defaults.day_tokens is not None:
        bounds.append(Bound(_day_scope(at), "the day (RUNLOG_BUDGET_DAY_TOKENS)",
                            defaults.day_tokens))
    return bounds
