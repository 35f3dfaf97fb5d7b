"""Commands of the result cache."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import model_validator

from events.base import Command, Label, ShortText

__all__ = ["RESULT_CACHE_ID", "InvalidateCache"]

RESULT_CACHE_ID: Literal["results"] = "results"
"""The one cache aggregate: every invalidation is an event on it."""


class InvalidateCache(Command):
    """Drop the cached results under ``cache_key``, or under every key starting with ``prefix``."""

    aggregate: ClassVar[str] = "cache"
    id_field: ClassVar[str] = "cache_id"
    subject: ClassVar[str] = "cache.invalidate"

    cache_id: Literal["results"] = RESULT_CACHE_ID
    """The one cache aggregate (there is nothing else to name)."""
    cache_key: Label | None = None
    prefix: Label | None = None
    reason: ShortText = ""

    @model_validator(mode="after")
    def _key_or_prefix(self) -> Self:
        if (self.cache_key is None) == (self.prefix is None):
            raise ValueError("give exactly one of cache_key and prefix")
        return self
