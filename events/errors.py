"""The error codes of a failed command reply (CONTRACT.md)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RETRYABLE_CODES", "ErrorCode"]


class ErrorCode(StrEnum):
    """Why a command wrote nothing."""

    INVALID_JSON = "invalid_json"
    """The body is not a JSON object."""
    VALIDATION_FAILED = "validation_failed"
    """A field is missing, of the wrong type, out of range, or an id breaks the id rule."""
    UNKNOWN_COMMAND = "unknown_command"
    """No command is served on that subject."""
    NOT_FOUND = "not_found"
    """The aggregate (or a referenced one) does not exist."""
    ALREADY_EXISTS = "already_exists"
    """A create named an id that is taken."""
    INVALID_TRANSITION = "invalid_transition"
    """The aggregate's state does not allow this command."""
    CONFLICT = "conflict"
    """Concurrent writers kept winning; retrying later may succeed."""
    LEASE_MISMATCH = "lease_mismatch"
    """The worker or lease epoch is not the task's current lease."""
    BUDGET_EXCEEDED = "budget_exceeded"
    """The run or budget has no room left for this."""
    PAYLOAD_TOO_LARGE = "payload_too_large"
    """The body exceeds the size limit."""
    UNAVAILABLE = "unavailable"
    """The log did not answer in time."""
    INTERNAL = "internal"
    """A bug: nothing was written; the service keeps serving."""


RETRYABLE_CODES = frozenset({ErrorCode.CONFLICT, ErrorCode.UNAVAILABLE})
"""The codes after which the same command (the same ``command_id``) may yet write when sent
again: every other refusal is the state's answer (or a bug), which a resend repeats."""
