"""``runlog models load [FILE]``: register model prices (the shipped list by default)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from .context import RunlogGroup, state
from .output import say

__all__ = ["group"]


@click.group("models", cls=RunlogGroup)
def group() -> None:
    """Manage model prices."""


@group.command("load")
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
def load(file: Path | None) -> int:
    """Register the prices of FILE (default: the shipped list); idempotent.

    FILE is JSON: {"models": [{"model", "provider", "input_usd_per_mtok",
    "output_usd_per_mtok", "effective_from"}, ...]}.
    """
    from services.pricing import load_price_file, seed_commands

    bodies = seed_commands(load_price_file(file))  # checked before anything is sent
    changed, failed = asyncio.run(_register(bodies))
    click.echo(f"{changed} prices registered, {failed} refused")
    return 1 if failed else 0


async def _register(bodies: list[dict[str, Any]]) -> tuple[int, int]:
    from .connect import connect
    from .send import request

    changed = failed = 0
    async with connect(state().settings()) as nc:
        for body in bodies:
            reply = await request(nc, "runlog.cmd.model.register", json.dumps(body).encode(), 10.0)
            changed += bool(reply.get("ok") and reply.get("events"))
            failed += not reply.get("ok")
            if not reply.get("ok"):
                error = reply["error"]
                say(f"{body['model']}: {error['code']}: {error['message']}", style="red")
    return changed, failed
