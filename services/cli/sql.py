"""``runlog sql``."""

from __future__ import annotations

import argparse
from typing import Any

from services.errors import RunlogError
from services.settings import Settings

__all__ = ["add_parser", "run"]


def add_parser(verbs: Any) -> None:
    """Registers the verb."""
    parser = verbs.add_parser("sql", help="sql")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Not wired yet."""
    raise RunlogError("sql: not wired yet")
