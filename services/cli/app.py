"""The ``runlog`` command group: every verb, registered from its own module."""

from __future__ import annotations

import click

from . import (
    demo,
    export,
    health,
    models,
    nouns,
    replay,
    report,
    send,
    sql,
    status,
    tail,
    trace,
    up,
)
from .context import RunlogGroup

__all__ = ["cli"]

CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"],
           "max_content_width": 100}


@click.group(cls=RunlogGroup, context_settings=CONTEXT)
@click.version_option(package_name="runlog", prog_name="runlog",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """runlog: an event-sourced control plane for AI agent pipelines.

    Every verb takes --server, --data-dir, --color and -v, before or after the verb.
    """


for _verb in (up.command, demo.command, sql.command, send.command, replay.command,
              export.command, models.group, health.command, status.command, tail.command,
              trace.command, report.command,
              *nouns.groups()):
    cli.add_command(_verb)
