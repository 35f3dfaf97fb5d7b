"""``runlog send SUBJECT JSON``: send one command and print the reply."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import nats
import nats.errors

from services.errors import RunlogError
from services.settings import Settings

from .connect import running_nats_url

__all__ = ["add_parser", "run", "send_command"]


def add_parser(verbs: Any) -> None:
    """Registers the verb."""
    parser = verbs.add_parser("send", help="send one command and print the reply")
    parser.add_argument("subject", help="e.g. runlog.cmd.run.create (or just run.create)")
    parser.add_argument("body", nargs="?", default="{}", help="the JSON body")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    parser.set_defaults(run=run)


async def send_command(url: str, subject: str, body: bytes, timeout_s: float) -> dict[str, Any]:
    """Sends one request and returns the decoded reply."""
    nc = await nats.connect(url, connect_timeout=timeout_s)
    try:
        reply = await nc.request(subject, body, timeout=timeout_s)
    except nats.errors.NoRespondersError:
        raise RunlogError(f"no command service answers on {subject}") from None
    except nats.errors.TimeoutError:
        raise RunlogError(f"no reply on {subject} within {timeout_s}s") from None
    finally:
        await nc.close()
    decoded: dict[str, Any] = json.loads(reply.data)
    return decoded


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Prints the reply; exits 0 when it says ok."""
    subject = args.subject if args.subject.startswith("runlog.") else f"runlog.cmd.{args.subject}"
    reply = asyncio.run(send_command(running_nats_url(settings), subject,
                                     args.body.encode(), args.timeout))
    print(json.dumps(reply, indent=2))
    return 0 if reply.get("ok") else 1
