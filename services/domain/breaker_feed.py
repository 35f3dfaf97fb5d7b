"""Which breakers a model call's usage feeds, and what its outcome says about the provider.

Every ``usage.record`` counts toward two breakers: the model's (``model-<model id>``)
and its provider's (``provider-<provider id>``). Only provider trouble counts as a
failure; a refusal that says nothing about the provider's health (a budget or quota
refusal, a bad request, a filtered answer) counts as nothing, so it can never open a
breaker nor close one.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from events.ids import ID_MAX_LENGTH, model_aggregate_id

__all__ = [
    "NEUTRAL_OUTCOMES",
    "PROVIDER_FAILURES",
    "model_breaker_id",
    "outcome_of",
    "provider_breaker_id",
]

PROVIDER_FAILURES = frozenset({"rate_limit", "timeout", "server_error", "network"})
"""Outcomes that count as a failure of the model and its provider."""

NEUTRAL_OUTCOMES = frozenset({
    "budget_exceeded", "quota_exceeded", "invalid_request", "context_overflow",
    "content_filter", "tool_error", "auth", "cancelled",
})
"""Outcomes that count neither way (listed for the README; any unknown outcome is too)."""


def model_breaker_id(model: str) -> str:
    """The breaker of one model (its name escaped as in the model's aggregate id)."""
    return _breaker_id("model-", model)


def provider_breaker_id(provider: str) -> str:
    """The breaker of one provider."""
    return _breaker_id("provider-", provider)


def _breaker_id(kind: str, name: str) -> str:
    """``kind`` and the escaped name, within an id's length. A name too long for that ends
    in a hash of the whole name instead: cut short, two models differing only past the cut
    shared one breaker (and each other's failures). ``__`` marks it: an escaped name never
    holds two underscores in a row (each of its own is followed by two hex digits)."""
    whole = f"{kind}{model_aggregate_id(name)}"
    if len(whole) <= ID_MAX_LENGTH:
        return whole
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"{whole[:ID_MAX_LENGTH - len(digest) - 2]}__{digest}"


def outcome_of(usage_outcome: str) -> Literal["success", "failure"] | None:
    """``ok`` is a success, provider trouble a failure, anything else counts as nothing."""
    if usage_outcome == "ok":
        return "success"
    return "failure" if usage_outcome in PROVIDER_FAILURES else None
