"""The reply envelope of CONTRACT.md: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import orjson

from events.errors import ErrorCode
from events.money import usd_text

__all__ = ["CommandFailed", "error_reply", "ok_reply"]


class CommandFailed(Exception):
    """A command refused before or instead of writing; becomes an error reply."""

    def __init__(self, code: ErrorCode, message: str, details: dict[str, object] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


def ok_reply(
    aggregate_id: str, version: int, seq: int, event_types: Sequence[str],
    extra: dict[str, object] | None = None,
) -> dict[str, object]:
    """Builds a success reply; ``seq`` is the position to wait for when reading your write."""
    reply: dict[str, object] = {
        "ok": True, "id": aggregate_id, "version": version, "seq": seq,
        "events": list(event_types),
    }
    return reply | (extra or {})


def error_reply(code: ErrorCode, message: str, details: dict[str, object] | None = None
                ) -> dict[str, object]:
    """Builds a failure reply (nothing was written)."""
    return {"ok": False, "error": {"code": str(code), "message": message,
                                   "details": details or {}}}


def encode(reply: Mapping[str, object]) -> bytes:
    """Serialises a reply (orjson: a fifth of the cost of ``json.dumps`` on a reply); an
    amount of money becomes its exact decimal text (``"0.097"``)."""
    return orjson.dumps(reply, default=_text_of)


def _text_of(value: object) -> str:
    return usd_text(value) if isinstance(value, Decimal) else str(value)
