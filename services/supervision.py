"""Long-running tasks that start again after a failure instead of dying silently.

A policy's loop that meets a NATS error it does not handle (a leader election, a
reconnect) would otherwise end, and its work would stop until the next restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .shutdown import describe_error

__all__ = ["keep_running"]

log = logging.getLogger(__name__)

_HEALTHY_AFTER_S = 60.0
"""A run that lasted this long was healthy: the next failure waits the shortest pause again."""


async def keep_running(name: str, run: Callable[[], Awaitable[None]], first_pause_s: float = 1.0,
                       max_pause_s: float = 30.0) -> None:
    """Awaits ``run()`` until it returns or is cancelled, starting it again after each failure."""
    pause = first_pause_s
    while True:
        started = time.monotonic()
        try:
            await run()
            return
        except Exception as error:
            if time.monotonic() - started > _HEALTHY_AFTER_S:
                pause = first_pause_s
            log.warning("%s stopped: %s; starting it again in %.1f s", name,
                        describe_error(error), pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, max_pause_s)
