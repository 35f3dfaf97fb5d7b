"""The shipped recovery table as tests expect it, and a configuration whose retries are due now."""

from __future__ import annotations

__all__ = ["INSTRUCTION", "NO_WAIT", "STRATEGY"]

STRATEGY = {
    "rate_limit": "backoff", "timeout": "backoff", "server_error": "fallback",
    "network": "backoff", "context_overflow": "truncate", "invalid_request": "fail_fast",
    "auth": "escalate", "content_filter": "escalate", "tool_error": "fail_fast",
    "unknown": "fail_fast",
}
"""Every error class a worker reports, with its default strategy."""

INSTRUCTION = {"backoff": None, "fallback": {"model": "m-b", "truncate": False},
               "truncate": {"model": "m-a", "truncate": True}}
"""The next lease's instruction per retrying strategy, for a task on ``m-a`` falling back to
``m-b``."""

NO_WAIT: dict[str, dict[str, str | float]] = {
    c: {"base_s": 0} for c in ("rate_limit", "timeout", "server_error", "network")}
"""``RUNLOG_RECOVERY`` making every retry due at once."""
