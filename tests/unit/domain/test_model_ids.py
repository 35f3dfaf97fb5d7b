"""Model names map to subject-safe aggregate ids and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.ids import is_valid_id, model_aggregate_id, model_name_from_id


@pytest.mark.parametrize(("name", "expected"), [
    ("gemini-2.5-pro", "gemini-2_2e5-pro"),
    ("claude-3.5-haiku", "claude-3_2e5-haiku"),
    ("gpt-4o", "gpt-4o"),
    ("snake_case", "snake_5fcase"),
    ("org/model:tag", "org_2fmodel_3atag"),
])
def test_known_names(name: str, expected: str) -> None:
    assert model_aggregate_id(name) == expected
    assert model_name_from_id(expected) == name


# At most 3 id characters per UTF-8 byte and 4 bytes per character: these always fit 128.
NAMES = st.text(min_size=1, max_size=10) | st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=42)


@given(NAMES)
def test_round_trip_and_id_rule(name: str) -> None:
    escaped = model_aggregate_id(name)
    assert is_valid_id(escaped)
    assert model_name_from_id(escaped) == name


@given(NAMES, NAMES)
def test_distinct_names_get_distinct_ids(a: str, b: str) -> None:
    assert (model_aggregate_id(a) == model_aggregate_id(b)) == (a == b)


@pytest.mark.parametrize("name", ["", "." * 43])
def test_names_that_cannot_be_ids(name: str) -> None:
    with pytest.raises(ValueError, match="model name"):
        model_aggregate_id(name)


@pytest.mark.parametrize("raw", ["a_b", "a_5F", "a__5f", "_"])
def test_ids_that_are_not_escaped_names(raw: str) -> None:
    with pytest.raises(ValueError, match="escaped"):
        model_name_from_id(raw)
