"""Feeds circuit breakers from usage: every model call's outcome counts, with no extra call.

``usage.record`` stays one message: this policy, on the one log follower, notes each
``UsageRecorded`` as it passes and sends ``breaker.record`` for the model's and the
provider's breaker (services/domain/breaker_feed.py says which outcomes count), each
command's id derived from the usage's sequence and the breaker, so replicas racing on
the same usage, or a restart reading it again, record it once.

- A success is sent only to a breaker with something to clear (failures, open,
  half-open): on a healthy breaker it would change nothing. A failure is not sent to an
  open breaker: the breaker would record nothing new (the call began before it opened).
- Usage older than ``horizon_s`` (read again after a restart) is not fed: an old
  outcome says nothing about the provider's health now, and its command id may have
  left JetStream's duplicate window.
- A model's ``model.configure`` thresholds create its breaker with them and, when set
  while the policy runs, reconfigure the breaker (``breaker.configure``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from events import utc_now
from events.codec import StoredEvent
from events.commands.breaker import ConfigureBreaker, RecordBreakerOutcome
from services.domain.breaker import DEFAULT_COOLDOWN_S, DEFAULT_FAILURE_THRESHOLD
from services.domain.breaker_feed import model_breaker_id, outcome_of, provider_breaker_id

from .base import CommandSender, Policy
from .ids import policy_command_id

__all__ = ["BreakerFeedPolicy"]

_TROUBLE = frozenset({"BreakerFailureRecorded", "BreakerOpened", "BreakerHalfOpened",
                      "BreakerForcedOpen"})
_CLEARED = frozenset({"BreakerSuccessRecorded", "BreakerClosed", "BreakerReset",
                      "BreakerForcedClosed"})
_OPENED = frozenset({"BreakerOpened", "BreakerForcedOpen"})


@dataclass(frozen=True, slots=True)
class _Thresholds:
    failure_threshold: int | None
    cooldown_s: float | None


@dataclass(frozen=True, slots=True)
class _Due:
    seq: int
    breaker_id: str
    outcome: Literal["success", "failure"]
    error_class: str | None
    thresholds: _Thresholds | None


class BreakerFeedPolicy(Policy):
    """Turns usage outcomes into ``breaker.record`` commands for the model and the provider."""

    name = "breaker-feed"
    aggregates = frozenset({"run", "model", "breaker"})

    def __init__(self, sender: CommandSender, interval_s: float = 1.0,
                 clock: Callable[[], datetime] = utc_now, horizon_s: float = 60.0) -> None:
        super().__init__(sender, interval_s)
        self._clock = clock
        self._horizon = timedelta(seconds=horizon_s)
        self._due: deque[_Due] = deque()
        self._configure: deque[tuple[int, str, _Thresholds]] = deque()
        self._troubled: set[str] = set()
        self._open: set[str] = set()
        self._thresholds: dict[str, _Thresholds] = {}

    def note(self, stored: StoredEvent) -> bool:
        """Tracks breakers and model thresholds; queues the breaker outcomes of live usage."""
        if stored.aggregate == "breaker":
            self._track(stored)
            return False
        if stored.type == "ModelConfigured":
            return self._configured(stored)
        if stored.type != "UsageRecorded":
            return False
        return self._usage(stored)

    def _track(self, stored: StoredEvent) -> None:
        breaker_id = stored.aggregate_id
        if stored.type in _TROUBLE:
            self._troubled.add(breaker_id)
        elif stored.type in _CLEARED:
            self._troubled.discard(breaker_id)
        if stored.type in _OPENED:
            self._open.add(breaker_id)
        elif stored.type in _CLEARED or stored.type == "BreakerHalfOpened":
            self._open.discard(breaker_id)

    def _live(self, stored: StoredEvent) -> bool:
        return datetime.fromisoformat(stored.occurred_at) >= self._clock() - self._horizon

    def _configured(self, stored: StoredEvent) -> bool:
        data = stored.data
        threshold, cooldown = data.get("failure_threshold"), data.get("cooldown_s")
        limits = _Thresholds(int(threshold) if threshold is not None else None,
                             float(cooldown) if cooldown is not None else None)
        model = str(data["model"])
        self._thresholds[model] = limits
        if (threshold is None and cooldown is None) or not self._live(stored):
            return False
        self._configure.append((stored.seq, model_breaker_id(model), limits))
        return True

    def _usage(self, stored: StoredEvent) -> bool:
        data = stored.data
        outcome = outcome_of(str(data.get("outcome", "ok")))
        if outcome is None:
            return False
        if outcome == "success" and not self._troubled:
            return False  # the common case, decided before any parsing
        model, provider = str(data["model"]), str(data.get("provider") or "")
        targets = [(model_breaker_id(model), self._thresholds.get(model))]
        if provider:
            targets.append((provider_breaker_id(provider), None))
        if not self._live(stored):
            return False
        queued = False
        for breaker_id, thresholds in targets:
            if outcome == "success" and breaker_id not in self._troubled:
                continue  # nothing to clear: a success on a healthy breaker changes nothing
            if outcome == "failure" and breaker_id in self._open:
                continue  # an open breaker records nothing new
            error_class = str(data["outcome"]) if outcome == "failure" else None
            if outcome == "failure":
                # Troubled from now on: a success right behind this failure must reach the
                # breaker even before the failure's own event is back from the log.
                self._troubled.add(breaker_id)
            self._due.append(_Due(stored.seq, breaker_id, outcome, error_class, thresholds))
            queued = True
        return queued

    async def act(self) -> int:
        """Sends every queued configure and outcome; returns how many wrote something."""
        written = 0
        # Each is taken off its queue once sent: a transient answer leaves it at the front.
        while self._configure:
            seq, breaker_id, limits = self._configure[0]
            written += await self.issue(ConfigureBreaker(
                breaker_id=breaker_id,
                failure_threshold=limits.failure_threshold or DEFAULT_FAILURE_THRESHOLD,
                cooldown_s=limits.cooldown_s or DEFAULT_COOLDOWN_S,
                command_id=policy_command_id("breaker-config", seq, breaker_id)))
            self._configure.popleft()
        while self._due:
            written += await self.issue(self._command(self._due[0]))
            self._due.popleft()
        return written

    def _command(self, due: _Due) -> RecordBreakerOutcome:
        limits = due.thresholds
        return RecordBreakerOutcome.model_validate({
            "breaker_id": due.breaker_id, "outcome": due.outcome,
            "error_class": due.error_class,
            "failure_threshold": limits.failure_threshold if limits else None,
            "cooldown_s": limits.cooldown_s if limits else None,
            "command_id": policy_command_id("breaker-feed", due.seq, due.breaker_id)})
