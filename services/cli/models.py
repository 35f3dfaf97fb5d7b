"""``runlog models load [FILE]``: register model prices (the shipped list by default)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from services.pricing import load_price_file, seed_commands
from services.settings import Settings

from .connect import running_nats_url
from .send import send_command

__all__ = ["add_parser", "run"]


def add_parser(verbs: Any) -> None:
    """Registers the verb."""
    parser = verbs.add_parser("models", help="manage model prices")
    actions = parser.add_subparsers(dest="action", required=True)
    load = actions.add_parser("load", help="register the prices of a price file (idempotent)")
    load.add_argument("file", nargs="?", type=Path, help="a price file (default: shipped list)")
    load.set_defaults(run=run)


async def _load(url: str, path: Path | None) -> tuple[int, int]:
    changed = failed = 0
    for body in seed_commands(load_price_file(path)):
        reply = await send_command(url, "runlog.cmd.model.register",
                                   json.dumps(body).encode(), 10.0)
        changed += bool(reply.get("ok") and reply.get("events"))
        failed += not reply.get("ok")
        if not reply.get("ok"):
            print(f"{body['model']}: {reply['error']['message']}")
    return changed, failed


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Sends one ``model.register`` per entry and says how many changed."""
    changed, failed = asyncio.run(_load(running_nats_url(settings), args.file))
    print(f"{changed} prices registered, {failed} refused")
    return 1 if failed else 0
