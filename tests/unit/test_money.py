"""Exact money: the text amounts travel as, and the upcast of older events' JSON numbers."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from events.money import money_from_json, parse_usd, usd_text


@pytest.mark.parametrize(("stored", "text"), [
    (0.1, "0.1"), (10.0, "10"), (0.00721, "0.00721"), (1e-05, "0.00001"), (0, "0"),
    (0.09700000000000007, "0.097"), (1.5e-12, "0.000000000002"), (5e-13, "0"),
    (123456.123456789012, "123456.123456789"), ("2.50", "2.5"), (None, None),
])
def test_older_amounts_become_exact_decimal_text(stored: float | str | None,
                                                 text: str | None) -> None:
    assert money_from_json(stored) == text


def test_the_fast_path_agrees_with_decimal_arithmetic() -> None:
    rng = random.Random(7)
    amounts = [rng.random() * 10 ** rng.randint(-13, 7) for _ in range(5000)]
    amounts += [round(rng.random() * 10 ** rng.randint(-6, 6), rng.randint(0, 12))
                for _ in range(5000)]
    for amount in amounts:
        text = money_from_json(amount)
        assert text is not None
        assert Decimal(text) == parse_usd(amount), amount
        assert "e" not in text.lower()


@pytest.mark.parametrize("bad", [True, [1], {"usd": 1}, "abc", float("nan")])
def test_what_is_not_an_amount_is_refused(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        money_from_json(bad)


def test_text_has_no_exponent_or_trailing_zeros() -> None:
    assert [usd_text(Decimal(v)) for v in ("1E+2", "0E-12", "-0", "0.500000000000")] == [
        "100", "0", "0", "0.5"]
