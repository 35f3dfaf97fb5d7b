"""Which breakers a model call's usage feeds, and what its outcome says about the provider.

Every ``usage.record`` counts toward two breakers: the model's (``model-<model id>``)
and its provider's (``provider-<provider id>``). Only provider trouble counts as a
failure; a refusal that says nothing about the provider's health (a budget or quota
refusal, a bad request, a filtered answer) counts as nothing, so it can never open a
breaker nor close one.
"""

from __future__ import annotations

from typing import Literal

from events.ids import model_aggregate_id

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
    return f"model-{model_aggregate_id(model)}"[:128]


def provider_breaker_id(provider: str) -> str:
    """The breaker of one provider."""
    return f"provider-{model_aggregate_id(provider)}"[:128]


def outcome_of(usage_outcome: str) -> Literal["success", "failure"] | None:
    """``ok`` is a success, provider trouble a failure, anything else counts as nothing."""
    if usage_outcome == "ok":
        return "success"
    return "failure" if usage_outcome in PROVIDER_FAILURES else None
