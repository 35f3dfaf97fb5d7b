"""The result cache: a task that succeeded answers later submissions of the same work.

A task is keyed by its ``cache_key`` (``task.submit``), or, in a run with
``cache_results``, by a hash of its kind and payload. Once a keyed task succeeds, a
submission with the same key within the run's TTL is answered from it
(``TaskSatisfiedFromCache``): no worker runs it, and the source's tokens and cost are
counted as saved. ``cache.invalidate`` drops the results stored until then under a key
or a key prefix.

``ResultIndex`` is folded from the log (TaskSubmitted, UsageRecorded, TaskSucceeded,
CacheInvalidated) by the one log follower; a replica that has not yet read a result
simply misses the cache and the task runs, which costs money but never correctness.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from events.money import ZERO_USD

from .run import RunState

__all__ = [
    "DEFAULT_CACHE_TTL_S",
    "CachedResult",
    "ResultIndex",
    "cache_key_of",
    "default_cache_key",
    "is_fresh",
]

DEFAULT_CACHE_TTL_S = 86_400.0
_KEPT = 100_000


@dataclass(frozen=True, slots=True)
class CachedResult:
    """A succeeded task's result under its cache key, with what producing it cost."""

    cache_key: str
    task_id: str
    succeeded_at: datetime
    result: Mapping[str, object] | None
    tokens: int = 0
    cost_usd: Decimal = ZERO_USD


def default_cache_key(kind: str, payload: Mapping[str, object]) -> str:
    """``<kind>:<sha256 of the canonical JSON payload>`` (a prefix invalidates a kind)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{kind}:{hashlib.sha256(canonical.encode()).hexdigest()[:48]}"


def cache_key_of(cache_key: str | None, kind: str, payload: Mapping[str, object],
                 run: RunState | None) -> str | None:
    """A submission's key: its own, or the default when its run caches results."""
    if cache_key is not None:
        return cache_key
    if run is not None and run.cache_results:
        return default_cache_key(kind, payload)
    return None


def is_fresh(cached: CachedResult, run: RunState, now: datetime) -> bool:
    """Whether ``cached`` is young enough for the run's TTL."""
    ttl = run.cache_ttl_s if run.cache_ttl_s is not None else DEFAULT_CACHE_TTL_S
    return cached.succeeded_at + timedelta(seconds=ttl) >= now


@dataclass(slots=True)
class _Pending:
    cache_key: str
    tokens: int = 0
    cost_usd: Decimal = ZERO_USD


class ResultIndex:
    """The newest succeeded result per cache key, folded from the log (bounded, LRU)."""

    def __init__(self, kept: int = _KEPT) -> None:
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._results: OrderedDict[str, CachedResult] = OrderedDict()
        self._key_of_task: dict[str, str] = {}
        self._kept = kept

    def lookup(self, cache_key: str) -> CachedResult | None:
        """The newest result stored under ``cache_key``, if any."""
        return self._results.get(cache_key)

    def submitted(self, task_id: str, cache_key: str) -> None:
        """A keyed task was submitted: its usage counts toward its result's cost."""
        self._pending[task_id] = _Pending(cache_key)
        _bound(self._pending, self._kept)

    def used(self, task_id: str, tokens: int, cost_usd: Decimal) -> None:
        """A keyed task's model call (before or after it succeeded)."""
        pending = self._pending.get(task_id)
        if pending is not None:
            pending.tokens += tokens
            pending.cost_usd += cost_usd
            return
        key = self._key_of_task.get(task_id)
        stored = self._results.get(key) if key is not None else None
        if stored is not None and stored.task_id == task_id:
            self._results[stored.cache_key] = replace(
                stored, tokens=stored.tokens + tokens, cost_usd=stored.cost_usd + cost_usd)

    def succeeded(self, task_id: str, at: datetime, result: Mapping[str, object] | None
                  ) -> None:
        """A keyed task succeeded: its result answers its key from now on."""
        pending = self._pending.pop(task_id, None)
        if pending is None:
            return
        replaced = self._results.get(pending.cache_key)
        if replaced is not None:
            self._key_of_task.pop(replaced.task_id, None)
        self._results[pending.cache_key] = CachedResult(
            pending.cache_key, task_id, at, result, pending.tokens, pending.cost_usd)
        self._results.move_to_end(pending.cache_key)
        self._key_of_task[task_id] = pending.cache_key
        while len(self._results) > self._kept:
            _, dropped = self._results.popitem(last=False)
            self._key_of_task.pop(dropped.task_id, None)

    def ended(self, task_id: str) -> None:
        """A keyed task failed or was cancelled: nothing to cache."""
        self._pending.pop(task_id, None)

    def matching(self, cache_key: str | None, prefix: str | None, at: datetime) -> list[str]:
        """The keys of the results stored up to ``at`` under ``cache_key`` or ``prefix``."""
        return [key for key, stored in self._results.items()
                if (key == cache_key or (prefix is not None and key.startswith(prefix)))
                and stored.succeeded_at <= at]

    def invalidate(self, cache_key: str | None, prefix: str | None, at: datetime) -> int:
        """Drops the results stored up to ``at`` under ``cache_key`` or ``prefix``."""
        doomed = self.matching(cache_key, prefix, at)
        for key in doomed:
            self._key_of_task.pop(self._results.pop(key).task_id, None)
        return len(doomed)


def _bound(entries: OrderedDict[str, _Pending], kept: int) -> None:
    while len(entries) > kept:
        entries.popitem(last=False)
