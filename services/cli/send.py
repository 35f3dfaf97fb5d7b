"""``runlog send SUBJECT [BODY | - | @file]``: send one command and print the reply."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from services.errors import RunlogError

from .context import RunlogCommand, state
from .output import emit_record, emit_rows, emit_sections, output_option

__all__ = ["command", "read_body", "send_command", "subject_of"]


@click.command("send", cls=RunlogCommand)
@click.argument("subject", required=False)
@click.argument("body", default="{}")
@click.option("--list", "list_commands", is_flag=True,
              help="list every command (or SUBJECT's) with its fields, and exit")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              help="seconds to wait for the reply")
@output_option(default=None, help_default="json; table with --list")
def command(subject: str | None, body: str, list_commands: bool, timeout: float,
            output: str | None) -> int:
    """Send one command and print the reply; exit 0 when it says ok.

    SUBJECT is e.g. run.create (or runlog.cmd.run.create). BODY is the JSON body
    itself, `-` to read it from stdin, or @FILE to read it from a file.
    `runlog send --list` lists every command with its fields.
    """
    if list_commands:
        return _list(subject, output or "table")
    if subject is None:
        raise click.UsageError("missing SUBJECT (see `runlog send --list`)")
    reply = asyncio.run(send_command(subject_of(subject), read_body(body), timeout))
    emit_record(reply, output or "json")
    return 0 if reply.get("ok") else 1


def _list(subject: str | None, output: str) -> int:
    from .catalog import command_docs

    docs = command_docs(subject)
    if not docs:
        raise RunlogError(f"no command is served on {subject} (see `runlog send --list`)")
    if output == "json":
        emit_record({"commands": [d.to_dict() for d in docs]}, "json")
        return 0
    columns = ("field", "type", "required", "default", "rules")
    if output == "table":
        emit_sections([(f"{d.subject}: {d.summary}", columns,
                        [(f.name, f.type, "yes" if f.required else "", f.default, f.rules)
                         for f in d.fields]) for d in docs], "table")
    else:
        emit_rows(("subject", *columns), [(d.subject, f.name, f.type, f.required, f.default,
                                           f.rules) for d in docs for f in d.fields], output)
    return 0


def subject_of(name: str) -> str:
    """``run.create`` or ``runlog.cmd.run.create`` as the full subject."""
    return name if name.startswith("runlog.") else f"runlog.cmd.{name}"


def read_body(body: str) -> bytes:
    """The body itself, stdin for ``-``, or a file's bytes for ``@FILE``."""
    if body == "-":
        return sys.stdin.buffer.read()
    if body.startswith("@"):
        try:
            return Path(body[1:]).read_bytes()
        except OSError as error:
            raise RunlogError(f"cannot read the body from {body[1:]}: "
                              f"{error.strerror or error}") from None
    return body.encode()


async def send_command(subject: str, body: bytes, timeout_s: float) -> dict[str, Any]:
    """Sends one request to the running runlog and returns the decoded reply."""
    from .connect import connect

    async with connect(state().settings()) as nc:
        return await request(nc, subject, body, timeout_s)


async def request(nc: Any, subject: str, body: bytes, timeout_s: float) -> dict[str, Any]:
    """One request on an open connection; NATS failures become one-line ``RunlogError``s."""
    import nats.errors

    from services.telemetry import traced_request

    try:
        reply = await traced_request(nc, subject, body, timeout_s)
    except nats.errors.NoRespondersError:
        raise RunlogError(f"no command service answers on {subject}") from None
    except nats.errors.TimeoutError:
        raise RunlogError(f"no reply on {subject} within {timeout_s:g} s") from None
    except nats.errors.MaxPayloadError:
        raise RunlogError(f"payload_too_large: the body is {len(body):,} bytes, more than "
                          f"this NATS server takes ({nc.max_payload:,})") from None
    try:
        decoded: dict[str, Any] = json.loads(reply.data)
    except ValueError:
        raise RunlogError(f"the reply on {subject} is not JSON") from None
    return decoded
