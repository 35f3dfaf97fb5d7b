"""Error classes to recovery strategies, as data: what follows a failed attempt.

Each error class maps to one strategy with its own backoff (``base_s``, ``factor``,
``cap_s``). The table is ``DEFAULT_RECOVERY`` unless the configuration overrides a
class (``RUNLOG_RECOVERY``); the decision is recorded on the event, so a replica with
another table never changes what was decided.

- ``backoff``: retry after a full-jitter exponential delay; a ``retry_after_s`` the
  worker reports (a provider's ``Retry-After``) is a floor under it.
- ``fallback``: retry on the next model of the task's fallback chain (its model's
  ``model.configure`` ``fallbacks``); past the end of the chain, or for a task without a
  model, it backs off on the model it has.
- ``truncate``: retry with the ``truncate`` hint (after ``context_overflow``).
- ``fail_fast``: fail at once. ``escalate``: fail at once, flagged for an operator.

Every retry is bounded by the task's ``max_attempts``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import get_args

from events.catalog.task import ERROR_CLASSES, RecoveryStrategy, RetryInstruction

__all__ = [
    "DEFAULT_RECOVERY",
    "RETRYING",
    "Recovery",
    "RecoveryTable",
    "Strategy",
    "jittered_backoff_s",
    "next_model",
    "plan_recovery",
]

RETRYING: frozenset[RecoveryStrategy] = frozenset({"backoff", "fallback", "truncate"})
"""Strategies that try again (while attempts remain)."""


@dataclass(frozen=True, slots=True)
class Strategy:
    """One error class's strategy and the delay before its retry."""

    name: RecoveryStrategy
    base_s: float = 1.0
    """The first retry's delay ceiling; each later one multiplies it by ``factor``."""
    factor: float = 2.0
    cap_s: float = 300.0
    """No delay ceiling goes past this."""

    @property
    def retries(self) -> bool:
        """Whether the strategy tries again."""
        return self.name in RETRYING


_FAIL_FAST = Strategy("fail_fast", 0.0, 1.0, 0.0)

_DEFAULTS: dict[str, Strategy] = {
    "rate_limit": Strategy("backoff", 1.0, 2.0, 300.0),
    "timeout": Strategy("backoff", 1.0, 2.0, 60.0),
    "server_error": Strategy("fallback", 1.0, 2.0, 30.0),
    "network": Strategy("backoff", 1.0, 2.0, 30.0),
    "lease_expired": Strategy("backoff", 1.0, 2.0, 300.0),
    "context_overflow": Strategy("truncate", 0.0, 1.0, 0.0),
    "invalid_request": _FAIL_FAST,
    "auth": Strategy("escalate", 0.0, 1.0, 0.0),
    "content_filter": Strategy("escalate", 0.0, 1.0, 0.0),
    "tool_error": _FAIL_FAST,
    "unknown": _FAIL_FAST,
}


@dataclass(frozen=True, slots=True)
class RecoveryTable:
    """Error class -> strategy; a class it does not name fails fast."""

    strategies: Mapping[str, Strategy]

    def of(self, error_class: str) -> Strategy:
        """The strategy of ``error_class``."""
        return self.strategies.get(error_class, _FAIL_FAST)

    def overridden(self, overrides: Mapping[str, Mapping[str, object]]) -> RecoveryTable:
        """This table with some classes' strategies (or only their delays) replaced.

        ``{"rate_limit": {"strategy": "backoff", "base_s": 5, "cap_s": 600}}``; a field
        left out keeps the class's default. Raises ``ValueError`` on an unknown class,
        strategy or field.
        """
        table = dict(self.strategies)
        for error_class, fields in overrides.items():
            if error_class not in ERROR_CLASSES:
                raise ValueError(f"unknown error class {error_class!r}; one of {ERROR_CLASSES}")
            table[error_class] = _override(self.of(error_class), fields)
        return RecoveryTable(MappingProxyType(table))

    def rows(self) -> list[tuple[str, Strategy]]:
        """Every class with its strategy, in the order of ``ERROR_CLASSES``."""
        return [(error_class, self.of(error_class)) for error_class in ERROR_CLASSES]


_NAMES: dict[str, RecoveryStrategy] = {name: name for name in get_args(RecoveryStrategy)}


def _override(strategy: Strategy, fields: Mapping[str, object]) -> Strategy:
    unknown = set(fields) - {"strategy", "base_s", "factor", "cap_s"}
    if unknown:
        raise ValueError(f"unknown recovery field(s) {sorted(unknown)}")
    name = _NAMES.get(str(fields.get("strategy", strategy.name)))
    if name is None:
        raise ValueError(f"unknown recovery strategy {fields.get('strategy')!r}; "
                         f"one of {sorted(_NAMES)}")
    return Strategy(name, _number(fields, "base_s", strategy.base_s),
                    _number(fields, "factor", strategy.factor),
                    _number(fields, "cap_s", strategy.cap_s))


def _number(fields: Mapping[str, object], key: str, default: float) -> float:
    value = fields.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86_400:
        raise ValueError(f"recovery {key} must be a number in [0, 86400]")
    return float(value)


DEFAULT_RECOVERY = RecoveryTable(MappingProxyType(_DEFAULTS))
"""The shipped table (README, "Recovery strategies")."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """What follows one failed attempt."""

    strategy: Strategy
    delay_s: float | None
    """Seconds until the retry; None: the task fails."""
    instruction: RetryInstruction | None = None


def jittered_backoff_s(task_id: str, attempt: int, strategy: Strategy) -> float:
    """The delay after failed attempt ``attempt`` (1-based): exponential, full jitter.

    The ceiling is ``base_s * factor ** (attempt - 1)`` capped at ``cap_s``; the delay is
    a fraction of it in [0, 1) taken from a hash of ``task_id`` and ``attempt``, so
    retries of tasks that failed together spread out and a replayed decision is the same.
    """
    exponent = min(max(attempt - 1, 0), 64)  # past the cap anyway; bounds the float
    ceiling = min(strategy.cap_s, strategy.base_s * strategy.factor**exponent)
    digest = hashlib.sha256(f"{task_id}:{attempt}".encode()).digest()
    return ceiling * int.from_bytes(digest[:8], "big") / 2**64


def next_model(model: str | None, current: str | None, fallbacks: Sequence[str]) -> str | None:
    """The model after ``current`` in the chain ``[model, *fallbacks]``, or None at its end."""
    if model is None:
        return None
    chain = [model, *(f for f in fallbacks if f != model)]
    position = chain.index(current) if current in chain else 0
    return chain[position + 1] if position + 1 < len(chain) else None


def plan_recovery(table: RecoveryTable, error_class: str, task_id: str, attempt: int,
                  attempts_left: bool, retry_after_s: float | None = None,
                  model: str | None = None, current: RetryInstruction | None = None,
                  fallbacks: Sequence[str] = ()) -> Recovery:
    """What the strategy of ``error_class`` makes of failed attempt ``attempt``."""
    strategy = table.of(error_class)
    if not strategy.retries or not attempts_left:
        return Recovery(strategy, None)
    delay = jittered_backoff_s(task_id, attempt, strategy)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    using = current.model if current is not None and current.model else model
    if strategy.name == "fallback":
        chosen = next_model(model, using, fallbacks) or using
        return Recovery(strategy, delay, RetryInstruction(model=chosen) if chosen else None)
    if strategy.name == "truncate":
        return Recovery(strategy, delay, RetryInstruction(model=using, truncate=True))
    return Recovery(strategy, delay, current)
