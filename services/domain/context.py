"""What a decision may know besides its own aggregate: the clock and facts the service loaded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Context", "Price"]


@dataclass(frozen=True, slots=True)
class Price:
    """A model's list price per million tokens, in effect from ``effective_from``."""

    provider: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    effective_from: datetime


@dataclass(frozen=True, slots=True)
class Context:
    """The inputs of ``decide`` that are not the aggregate's own state.

    ``decide`` stays pure: the service reads the clock and loads the other
    aggregates a rule depends on, and passes them in here.
    """

    now: datetime
    price: Price | None = None
    """For ``usage.record``: the price in effect at ``now`` for the command's model."""
    related: Any = None
    """The state of another aggregate a rule needs (the run of a submitted task, ...)."""
