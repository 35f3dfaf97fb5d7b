"""When and how often a request is sent again: bounded, jittered, exponential (via stamina)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina

from .errors import SdkError

__all__ = ["RetryPolicy", "is_transient", "retrying"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How a transient failure is retried; the same body (and ``command_id``) each time.

    The n-th wait is ``min(wait_max_s, wait_initial_s * 2**(n-1) + random(0, wait_jitter_s))``.
    """

    attempts: int = 6
    """Sends at most this many times in all (1: never retry)."""
    timeout_s: float = 60.0
    """Stops retrying once this much time has passed since the first send."""
    wait_initial_s: float = 0.05
    wait_max_s: float = 2.0
    wait_jitter_s: float = 0.1

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")


def is_transient(error: BaseException) -> bool:
    """Whether sending the request again may help: no reply, ``conflict``, ``unavailable``."""
    return isinstance(error, SdkError) and error.retryable


async def retrying(policy: RetryPolicy, attempt: Callable[[], Awaitable[T]],
                   on_retry: Callable[[], None] | None = None) -> T:
    """Awaits ``attempt()`` until it succeeds, fails definitively, or the policy runs out.

    The last error is raised as it was; ``on_retry`` is called before each resend.
    """
    first = True
    async for trial in stamina.retry_context(
            on=is_transient, attempts=policy.attempts, timeout=policy.timeout_s,
            wait_initial=policy.wait_initial_s, wait_max=policy.wait_max_s,
            wait_jitter=policy.wait_jitter_s):
        with trial:
            if not first and on_retry is not None:
                on_retry()
            first = False
            return await attempt()
    raise AssertionError("stamina ends with a result or the last error")
