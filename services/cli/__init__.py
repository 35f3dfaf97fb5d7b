"""The ``runlog`` command line: one module per verb, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from services.errors import RunlogError
from services.settings import Settings
from services.telemetry import configure_telemetry

from . import demo, export, models, replay, send, sql, up

__all__ = ["main"]

VERBS: tuple[ModuleType, ...] = (up, demo, sql, send, replay, export, models)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb."""
    parser = argparse.ArgumentParser(
        prog="runlog", description="Event-sourced control plane for AI agent pipelines.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        verb.add_parser(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one verb; errors are printed as one line, never as a traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    provider = configure_telemetry()
    try:
        return int(args.run(args, Settings()))
    except RunlogError as error:
        print(f"runlog: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if provider is not None:
            provider.shutdown()  # flushes the batched spans
