"""Turning a request body into a validated command, or a clear error."""

from __future__ import annotations

import hashlib
from typing import TypeVar

from pydantic import ValidationError

from events.base import Command
from events.errors import ErrorCode
from events.ids import new_id

from .replies import CommandFailed

__all__ = ["client_command_id", "derive_id", "parse_command", "with_ids"]

C = TypeVar("C", bound=Command)

_MAX_REPORTED_ERRORS = 10


def parse_command(command_cls: type[C], body: bytes, max_bytes: int) -> C:
    """Validates ``body`` strictly as ``command_cls``; raises ``CommandFailed`` on any problem.

    A missing ``command_id`` is generated (see ``client_command_id`` to tell them apart).
    """
    if len(body) > max_bytes:
        raise CommandFailed(ErrorCode.PAYLOAD_TOO_LARGE,
                            f"body is {len(body)} bytes; the limit is {max_bytes}",
                            {"limit": max_bytes, "size": len(body)})
    try:
        command = command_cls.model_validate_json(body)
    except ValidationError as error:
        raise _as_failure(error) from None
    except (ValueError, ArithmeticError) as error:  # a validator that failed to say why
        raise CommandFailed(ErrorCode.VALIDATION_FAILED, f"body: {error}") from None
    return with_ids(command)


def _as_failure(error: ValidationError) -> CommandFailed:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return CommandFailed(ErrorCode.INVALID_JSON, f"body is not valid JSON: {first['msg']}")
    if first["type"] == "model_type" and not first["loc"]:
        return CommandFailed(ErrorCode.INVALID_JSON, "body must be a JSON object")
    return CommandFailed(ErrorCode.VALIDATION_FAILED, _summary(error),
                         {"errors": _details(error)})


def _summary(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _details(error: ValidationError) -> list[dict[str, object]]:
    return [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in error.errors()[:_MAX_REPORTED_ERRORS]
    ]


def client_command_id(command: Command) -> str | None:
    """The command id the client sent, or None when the service generated it."""
    # Not a private attribute: reading one through pydantic's __getattr__ cost 6 µs, and
    # setting them up on every validated command 2 more.
    return command.command_id if "command_id" in command.model_fields_set else None


def derive_id(subject: str, command_id: str) -> str:
    """An aggregate id derived from a command id, so a retried create targets the same id."""
    return hashlib.sha256(f"{subject}\0{command_id}".encode()).hexdigest()[:32]


def with_ids(command: C) -> C:
    """Fills a missing command id and, for creates, a missing target id.

    The command was validated a moment ago and nothing else holds it, so the ids are
    set in place on the frozen model: a ``model_copy`` per command measured 1-2% of
    the service's time.
    """
    if command.command_id is None:
        object.__setattr__(command, "command_id", new_id())
        # The fields set stay the ones the client gave (a null id is one it did not).
        command.model_fields_set.discard("command_id")
    if command.target_id() is None and command.id_field in type(command).model_fields:
        object.__setattr__(command, command.id_field,
                           derive_id(command.subject, command.command_id or ""))
    return command
