"""Which command ids the client sent and which the service filled in."""

from __future__ import annotations

import pytest

from events.commands.run import CreateRun, StartRun
from services.command_service.requests import client_command_id, parse_command


def test_a_command_id_the_client_sent_is_its_own() -> None:
    command = parse_command(StartRun, b'{"run_id": "r1", "command_id": "c-1"}', 10_000)
    assert client_command_id(command) == "c-1"


@pytest.mark.parametrize("body", [b'{"run_id": "r1"}', b'{"run_id": "r1", "command_id": null}'])
def test_a_missing_command_id_is_filled_and_known_as_generated(body: bytes) -> None:
    command = parse_command(StartRun, body, 10_000)
    assert command.command_id  # filled in
    assert client_command_id(command) is None


def test_a_generated_create_target_derives_from_the_client_id() -> None:
    first = parse_command(CreateRun, b'{"name": "n", "command_id": "c-2"}', 10_000)
    again = parse_command(CreateRun, b'{"name": "n", "command_id": "c-2"}', 10_000)
    assert first.target_id() == again.target_id()
    assert client_command_id(first) == "c-2"


def test_a_typed_command_built_in_process_keeps_the_id_it_was_given() -> None:
    assert client_command_id(StartRun(run_id="r1", command_id="policy-1")) == "policy-1"
