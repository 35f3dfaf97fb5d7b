"""Exact money: US dollars as decimals with at most twelve places, never binary floats.

A cost is tokens times a price per million tokens; with prices of up to six decimal
places it is exact at twelve. Binary floats cannot hold 0.1 and their sums drift
(``0.09699999999999999``), so every amount on a command, an event and in the read
models is a ``Decimal`` (DuckDB ``DECIMAL(38, 12)``). On the wire an amount is written
as a decimal string (``"0.00125"``), which every JSON reader keeps exact; commands take
a JSON number or a decimal string.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainSerializer

from .versions import Payload, UpcasterRegistry

__all__ = [
    "MAX_USD",
    "MAX_USD_PER_MTOK",
    "USD_PLACES",
    "ZERO_USD",
    "Usd",
    "UsdAmount",
    "UsdPerMtok",
    "exact_usd",
    "money_from_json",
    "parse_usd",
    "register_money_upcaster",
    "usd_text",
]

USD_PLACES = 12
"""Decimal places every amount keeps: a millionth of a millionth of a dollar."""
ZERO_USD = Decimal(0)
MAX_USD = Decimal(1_000_000_000)
"""The largest amount a command may name (a bound, a provider's bill)."""

_QUANTUM = Decimal(1).scaleb(-USD_PLACES)


def exact_usd(value: Decimal) -> Decimal:
    """``value`` at twelve places (half-even), or ``ValueError`` when it is not finite."""
    try:
        if value.is_finite():
            return value.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        pass
    raise ValueError(f"{value} is not an amount of dollars")


def usd_text(value: Decimal) -> str:
    """The plain decimal text of an amount, without exponent or trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def parse_usd(value: Any) -> Decimal:
    """An amount from stored data: a decimal string, an integer, or an older event's float.

    A float's shortest representation is the decimal it was written from, so
    ``Decimal(repr(x))`` recovers what the writer meant; sums that carried float noise
    are brought to twelve places.
    """
    if isinstance(value, Decimal):
        return exact_usd(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expected an amount of dollars, got {type(value).__name__}")
    try:
        return exact_usd(Decimal(repr(value) if isinstance(value, float) else value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount of dollars") from None


def money_from_json(value: Any) -> str | None:
    """The exact decimal text of an amount as older events stored it (a JSON number)."""
    if value is None:
        return None
    if type(value) is float:
        # Fast path (replaying an old log): the shortest representation is already plain
        # decimal text within twelve places for nearly every stored amount.
        text = repr(value)
        point = text.find(".")
        if "e" not in text and "n" not in text and 0 <= len(text) - point - 1 <= USD_PLACES:
            return text[:-2] if text.endswith(".0") else text
    return usd_text(parse_usd(value))


def register_money_upcaster(upcasters: UpcasterRegistry, event_type: str, from_version: int,
                            fields: tuple[str, ...]) -> None:
    """Registers the step that rewrites these amounts (``a.b`` reaches into an object) from
    the JSON numbers ``from_version`` stored to exact decimal strings."""

    top = tuple(path for path in fields if "." not in path)
    nested = tuple(path.split(".") for path in fields if "." in path)

    def exact_amounts(data: Payload) -> Payload:
        for name in top:
            value = data.get(name)
            if value is not None:
                data[name] = money_from_json(value)
        for path in nested:
            _rewrite(data, path)
        return data

    upcasters.register(event_type, from_version)(exact_amounts)


def _rewrite(data: Payload, path: list[str]) -> None:
    head, *rest = path
    value = data.get(head)
    if value is None:
        return
    if rest:
        if isinstance(value, dict):
            data[head] = inner = dict(value)
            _rewrite(inner, rest)
        return
    data[head] = money_from_json(value)


_WIRE = PlainSerializer(usd_text, return_type=str, when_used="json")

Usd = Annotated[Decimal, Field(strict=False, allow_inf_nan=False),
                AfterValidator(exact_usd), _WIRE]
"""An amount on an event: read from a decimal string (or an older event's number),
kept at twelve places, written as a decimal string."""

UsdAmount = Annotated[Decimal, Field(strict=False, allow_inf_nan=False, ge=0, le=MAX_USD,
                                     decimal_places=USD_PLACES),
                      AfterValidator(exact_usd), _WIRE]
"""An amount a command names: a JSON number or decimal string, 0 to 1e9, at most twelve
places (more is refused rather than rounded: the client meant something else)."""

MAX_USD_PER_MTOK = Decimal(100_000)
"""No real price comes near this; a larger one is a typo (or an attack on the budgets)."""

UsdPerMtok = Annotated[Decimal, Field(strict=False, allow_inf_nan=False, ge=0,
                                      le=MAX_USD_PER_MTOK, decimal_places=USD_PLACES),
                       AfterValidator(exact_usd), _WIRE]
"""A price in dollars per million tokens, at most twelve places, written as a string."""
