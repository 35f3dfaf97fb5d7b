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
from .output import emit_record, output_option

__all__ = ["command", "read_body", "send_command", "subject_of"]


@click.command("send", cls=RunlogCommand)
@click.argument("subject")
@click.argument("body", default="{}")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              help="seconds to wait for the reply")
@output_option(formats=("json", "jsonl", "table"), default="json")
def command(subject: str, body: str, timeout: float, output: str) -> int:
    """Send one command and print the reply; exit 0 when it says ok.

    SUBJECT is e.g. run.create (or runlog.cmd.run.create). BODY is the JSON body
    itself, `-` to read it from stdin, or @FILE to read it from a file.
    """
    reply = asyncio.run(send_command(subject_of(subject), read_body(body), timeout))
    emit_record(reply, output)
    return 0 if reply.get("ok") else 1


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

    try:
        reply = await nc.request(subject, body, timeout=timeout_s)
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
