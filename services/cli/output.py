"""Printing what a verb found: a rich table for people, JSON, JSON lines or CSV for tools.

Rows arrive JSON-ready (as ``QueryResult`` rows are): ``None``, numbers, text, lists and
objects. Tables go through rich; the other formats are written as they are, unstyled.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .context import state

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "FORMATS",
    "Section",
    "emit_record",
    "emit_rows",
    "emit_sections",
    "output_option",
    "say",
]

FORMATS = ("table", "json", "jsonl", "csv")
F = TypeVar("F", bound=Callable[..., Any])
Row = Sequence[Any]
Section = tuple[str, Sequence[str], Sequence[Row]]
"""A titled table: its title, column names and rows."""

_MAX_CELL = 80


def output_option(formats: Sequence[str] = FORMATS, default: str | None = "table",
                  aliases: Sequence[str] = (), help_default: str | None = None
                  ) -> Callable[[F], F]:
    """The ``-o/--output`` flag (``aliases`` adds other names for it, e.g. ``--format``)."""
    return click.option("-o", "--output", *aliases, "output", type=click.Choice(formats),
                        default=default, show_default=help_default or True,
                        help="output format")


def emit_rows(columns: Sequence[str], rows: Sequence[Row], fmt: str, *,
              title: str | None = None, note: str | None = None) -> None:
    """Prints rows in ``fmt``; ``note`` (e.g. a row count) follows a table."""
    if fmt == "table":
        _print_table(_table(columns, rows, title), note)
    elif fmt == "json":
        _write(json.dumps(_objects(columns, rows), ensure_ascii=False) + "\n")
    elif fmt == "jsonl":
        _write("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in _objects(columns, rows)))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_text(v, "") for v in row] for row in rows)
    else:
        raise click.BadParameter(f"unknown output format {fmt!r}")


def emit_record(record: Mapping[str, Any], fmt: str, *, title: str | None = None) -> None:
    """Prints one object: pretty JSON, one JSON line, a CSV row, or a field/value table."""
    if fmt == "json":
        _write(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "table":
        emit_rows(("field", "value"), [(k, v) for k, v in record.items()], fmt, title=title)
    else:
        emit_rows(list(record), [list(record.values())], fmt)


def emit_sections(sections: Sequence[Section], fmt: str) -> None:
    """Prints several titled tables: one after another, or as one JSON document."""
    if fmt == "table":
        for title, columns, rows in sections:
            emit_rows(columns, rows, fmt, title=title)
    elif fmt == "json":
        _write(json.dumps({title: _objects(columns, rows) for title, columns, rows in sections},
                          ensure_ascii=False) + "\n")
    else:
        for title, columns, rows in sections:
            emit_rows(["section", *columns], [[title, *row] for row in rows], fmt)


def say(message: str, style: str = "") -> None:
    """A line for people on stderr (progress, outcomes), styled when colour is on."""
    from rich.text import Text

    state().console(stderr=True).print(Text(message, style=style), soft_wrap=True)


def _objects(columns: Sequence[str], rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _text(value: Any, null: str) -> str:
    if value is None:
        return null
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _table(columns: Sequence[str], rows: Sequence[Row], title: str | None) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, header_style="bold")
    # A terminal clips long cells; a pipe or file gets them whole.
    max_width = _MAX_CELL if state().console().is_terminal else None
    for name in columns:
        table.add_column(name, max_width=max_width, overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(*(Text("NULL", style="dim") if v is None
                        else Text(_text(v, "").replace("\n", " ")) for v in row))
    return table


def _print_table(table: Table, note: str | None) -> None:
    console = state().console()
    console.print(table)
    if note:
        console.print(note, style="dim", highlight=False, markup=False)
