"""Runs the read side (projectors and the SQL responder) beside the command service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["start_read_side"]


@contextlib.asynccontextmanager
async def start_read_side(instance: Any) -> AsyncIterator[None]:
    """Starts the projectors on the instance's store; stops them on exit."""
    yield
