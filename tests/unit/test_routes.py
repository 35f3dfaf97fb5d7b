"""Every command class has exactly one typed handler; the subject table is derived from them."""

from __future__ import annotations

import pytest

from events.commands import COMMANDS
from services.command_service.handlers import ROUTES, ROUTES_BY_CLASS
from services.command_service.routes import route_table


def test_every_command_has_one_route_on_its_own_subject() -> None:
    assert set(ROUTES) == set(COMMANDS)
    for subject, route in ROUTES.items():
        assert route.command_class is COMMANDS[subject]
        assert ROUTES_BY_CLASS[route.command_class] is route


def test_a_command_without_a_handler_is_refused_at_import() -> None:
    without_claims = [route for subject, route in ROUTES.items() if subject != "task.claim"]
    with pytest.raises(ValueError, match=r"commands without a handler: \['task.claim'\]"):
        route_table(without_claims)


def test_two_handlers_for_one_command_are_refused() -> None:
    with pytest.raises(ValueError, match=r"two routes for run\.create"):
        route_table([*ROUTES.values(), ROUTES["run.create"]])
