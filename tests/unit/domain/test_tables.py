"""Every transition table, edge by edge: evolve accepts exactly the table's edges."""

from __future__ import annotations

from typing import ClassVar

import pytest

from events.base import Command
from events.catalog import EVENT_TYPES
from events.commands import COMMANDS
from services.domain import MACHINES, Context, InvalidHistory
from services.domain.machine import targets_of

from .support import NOW, sample_event, sample_state

DESIGN_STATE_COUNTS = {"run": 5, "workstream": 9, "task": 9, "worker": 5, "breaker": 3,
                       "patch": 10, "gate": 5}


def _space() -> list[tuple[str, str | None, str]]:
    return [
        (name, state, event)
        for name, machine in MACHINES.items()
        for state in (None, *machine.table.states)
        for event in sorted(machine.table.event_types())
    ]


def _state_id(value: object) -> str:
    return "new" if value is None else str(value)


@pytest.mark.parametrize(("aggregate", "state", "event_type"), _space(), ids=_state_id)
def test_evolve_follows_the_table(aggregate: str, state: str | None, event_type: str) -> None:
    machine = MACHINES[aggregate]
    before = None if state is None else sample_state(aggregate, state)
    target = machine.table.edges.get((state, event_type))
    if target is None:
        with pytest.raises(InvalidHistory):
            machine.evolve(before, sample_event(event_type))
    else:
        assert machine.evolve(before, sample_event(event_type)).state in targets_of(target)


def test_the_seven_design_machines_have_46_states() -> None:
    counts = {name: len(MACHINES[name].table.states) for name in DESIGN_STATE_COUNTS}
    assert counts == DESIGN_STATE_COUNTS
    assert sum(counts.values()) == 46


@pytest.mark.parametrize("aggregate", sorted(MACHINES))
def test_table_and_catalog_agree(aggregate: str) -> None:
    table = MACHINES[aggregate].table
    catalog = {name for name, cls in EVENT_TYPES.items() if cls.aggregate == aggregate}
    assert table.event_types() == catalog


@pytest.mark.parametrize("aggregate", sorted(MACHINES))
def test_every_state_is_reachable_from_creation(aggregate: str) -> None:
    table = MACHINES[aggregate].table
    reached: set[str | None] = {None}
    frontier: set[str | None] = {None}
    while frontier:
        targets: set[str | None] = {t for (s, _), target in table.edges.items() if s in frontier
                                    for t in targets_of(target)}
        frontier = targets - reached
        reached |= frontier
    assert reached - {None} == set(table.states)


@pytest.mark.parametrize("aggregate", sorted(MACHINES))
def test_terminal_states_have_no_way_out_but_self_loops(aggregate: str) -> None:
    table = MACHINES[aggregate].table
    leaving = {(s, t) for (s, _), target in table.edges.items() for t in targets_of(target)
               if s in table.terminal and s != t}
    assert leaving == set()


@pytest.mark.parametrize("subject", sorted(COMMANDS))
def test_every_command_belongs_to_a_machine(subject: str) -> None:
    command: type[Command] = COMMANDS[subject]
    assert command.aggregate in MACHINES
    assert command.id_field in command.model_fields


class _Foreign(Command):
    subject: ClassVar[str] = "elsewhere.act"
    aggregate: ClassVar[str] = "elsewhere"
    id_field: ClassVar[str] = "thing_id"
    thing_id: str = "x1"


@pytest.mark.parametrize("aggregate", sorted(MACHINES))
def test_a_foreign_command_is_a_bug_not_a_refusal(aggregate: str) -> None:
    machine = MACHINES[aggregate]
    state = sample_state(aggregate, machine.table.states[0])
    with pytest.raises(TypeError):
        machine.decide(state, _Foreign(), Context(now=NOW))
