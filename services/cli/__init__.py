"""The ``runlog`` command line: one module per verb, on click and rich.

Modules import only ``click`` at the top; each verb imports what it needs when it
runs, so ``runlog --help`` stays fast. Every error a verb can meet on bad input is a
``RunlogError`` or a usage error, printed as one line.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import click

from services.errors import RunlogError

from .app import cli

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one verb and returns its exit code; errors are one line, never a traceback."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="runlog",
                          standalone_mode=False)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "runlog"
        click.echo(f"{command}: {error.format_message()} (see {command} --help)", err=True)
        return error.exit_code
    except click.ClickException as error:
        click.echo(f"runlog: {error.format_message()}", err=True)
        return error.exit_code
    except (click.Abort, KeyboardInterrupt):
        return 130
    except RunlogError as error:
        click.echo(f"runlog: {error}", err=True)
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`); stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:
        click.echo(f"runlog: {error.strerror or error}"
                   f"{': ' + str(error.filename) if error.filename else ''}", err=True)
        return 1
    except Exception as error:
        return _unexpected(error)
    return result if isinstance(result, int) else 0


def _unexpected(error: Exception) -> int:
    if "-v" in sys.argv or "--verbose" in sys.argv:
        traceback.print_exc()
    click.echo(f"runlog: unexpected {type(error).__name__}: {error} "
               "(run with -v for the traceback)", err=True)
    return 1
