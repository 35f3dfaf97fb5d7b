"""The client's methods against the command models: one per command, parameters = fields."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import ClassVar

from pydantic import create_model

from events.base import Command
from events.commands import COMMANDS
from events.commands.task import SubmitTask
from events.ids import Id
from services.sdk import Client
from services.sdk.codegen import OUTPUT, main, method_name, parameter_default, render


def drift(commands: Mapping[str, type[Command]], client: type[object]) -> list[str]:
    """Every way the client's methods differ from ``commands``; empty when they agree."""
    problems = []
    for subject, command in commands.items():
        method = getattr(client, method_name(command), None)
        if method is None:
            problems.append(f"{subject}: no method {method_name(command)}")
            continue
        problems += _parameter_drift(subject, command, inspect.signature(method))
    return problems


def _parameter_drift(subject: str, command: type[Command], signature: inspect.Signature
                     ) -> list[str]:
    parameters = {n: p for n, p in signature.parameters.items() if n != "self"}
    problems = []
    if set(parameters) != set(command.model_fields):
        problems.append(f"{subject}: parameters {sorted(parameters)} are not the fields "
                        f"{sorted(command.model_fields)}")
    for name, field in command.model_fields.items():
        parameter = parameters.get(name)
        if parameter is None:
            continue
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            problems.append(f"{subject}: {name} is not keyword-only")
        expected = inspect.Parameter.empty if field.is_required() else parameter_default(field)
        if parameter.default != expected:
            problems.append(f"{subject}: {name} defaults to {parameter.default!r}, "
                            f"the field to {expected!r}")
    return problems


def test_every_command_has_a_method_whose_parameters_are_its_fields() -> None:
    assert drift(COMMANDS, Client) == []


def test_the_generated_methods_are_current() -> None:
    assert main(["--check"]) == 0


def test_a_command_without_a_method_is_caught() -> None:
    class PingWorker(Command):
        """Ask a worker to answer."""

        subject: ClassVar[str] = "worker.ping"
        aggregate: ClassVar[str] = "worker"
        id_field: ClassVar[str] = "worker_id"
        worker_id: Id

    added: dict[str, type[Command]] = {**COMMANDS, PingWorker.subject: PingWorker}
    assert drift(added, Client) == ["worker.ping: no method ping_worker"]
    assert render(added) != OUTPUT.read_text(encoding="utf-8")
    assert "async def ping_worker(" in render(added)


def test_a_field_that_drifted_from_its_method_is_caught() -> None:
    # The same command, grown a field and with another default.
    drifted = create_model("SubmitTask", __base__=SubmitTask,
                           deadline_s=(float | None, None), priority=(int, 7))
    changed: dict[str, type[Command]] = {**COMMANDS, SubmitTask.subject: drifted}
    problems = drift(changed, Client)
    assert any("deadline_s" in p for p in problems), problems
    assert any("priority defaults to 5" in p for p in problems), problems
    assert render(changed) != OUTPUT.read_text(encoding="utf-8")


def test_method_names_are_the_command_classes_in_snake_case() -> None:
    names = {subject: method_name(command) for subject, command in COMMANDS.items()}
    assert names["task.submit"] == "submit_task"
    assert names["usage.record"] == "record_usage"
    assert names["task.expire_lease"] == "expire_task_lease"
    assert len(set(names.values())) == len(names)
