"""The model price history."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from events.commands.model import RegisterModel
from services.domain.model import ModelState, decide, price_at

from .support import NOW, ctx, fold, play, types

DAY = timedelta(days=1)


def _register(price: float, effective_from: object = None, provider: str = "google") -> (
        RegisterModel):
    exact = Decimal(str(price))
    return RegisterModel(model="gemini-2.5-pro", provider=provider, input_usd_per_mtok=exact,
                         output_usd_per_mtok=exact * 4,
                         effective_from=effective_from)  # type: ignore[arg-type]


def _history() -> ModelState:
    state: ModelState = play("model", [_register(1.0, NOW), _register(2.0, NOW + 10 * DAY),
                          _register(0.5, NOW - 10 * DAY)])
    return state


def test_first_registration() -> None:
    events = decide(None, _register(1.25), ctx())
    assert types(events) == ["ModelRegistered", "ModelPriceSet"]
    state = fold("model", events)
    assert (state.model, state.provider, len(state.prices)) == ("gemini-2.5-pro", "google", 1)
    assert state.prices[0].effective_from == NOW  # defaults to the decision's clock


def test_an_identical_registration_is_a_no_op() -> None:
    state = _history()
    assert decide(state, _register(2.0, NOW + 10 * DAY), ctx()) == []
    assert decide(state, _register(1.0, NOW), ctx(now=NOW + DAY)) == []


def test_a_new_price_is_a_new_entry() -> None:
    assert types(decide(_history(), _register(3.0, NOW + 20 * DAY), ctx())) == ["ModelPriceSet"]


def test_a_price_on_a_known_date_corrects_it() -> None:
    state = play("model", [_register(1.1, NOW)], state=_history())
    prices = [p.input_usd_per_mtok for p in state.prices]
    assert prices == [Decimal("0.5"), Decimal("1.1"), Decimal(2)]


@pytest.mark.parametrize(("when", "expected"), [
    (NOW - 11 * DAY, None),
    (NOW - 10 * DAY, 0.5),
    (NOW - timedelta(microseconds=1), 0.5),
    (NOW, 1.0),
    (NOW + 9 * DAY, 1.0),
    (NOW + 10 * DAY, 2.0),
    (NOW + 1000 * DAY, 2.0),
])
def test_price_at_picks_the_entry_in_effect(when: object, expected: float | None) -> None:
    price = price_at(_history(), when)  # type: ignore[arg-type]
    assert (price.input_usd_per_mtok if price else None) == expected


def test_price_at_of_an_unknown_model() -> None:
    assert price_at(None, NOW) is None


def test_the_provider_is_kept_per_price() -> None:
    state = play("model", [_register(1.0, NOW + DAY, provider="vertex")], state=_history())
    assert price_at(state, NOW).provider == "google"  # type: ignore[union-attr]
    assert price_at(state, NOW + DAY).provider == "vertex"  # type: ignore[union-attr]
