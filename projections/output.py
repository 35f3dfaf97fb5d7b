"""Query rows as text: CSV, JSON lines and JSON written chunk by chunk, or an aligned table.

``RowWriter`` streams: a result of any size goes out in constant memory, each chunk as it
arrives (a JSON document is opened with the first row and closed at the end).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["FORMATS", "STREAM_FORMATS", "RowWriter", "cell", "render"]

FORMATS = ("table", "csv", "json", "jsonl")
STREAM_FORMATS = ("csv", "json", "jsonl")
"""The formats a result of any size is streamed in, every row of it."""


class RowWriter:
    """Writes rows in ``csv``, ``jsonl`` or ``json`` as they come."""

    def __init__(self, fmt: str, out: TextIO) -> None:
        if fmt not in STREAM_FORMATS:
            raise ValueError(f"cannot stream {fmt!r}: use one of {', '.join(STREAM_FORMATS)}")
        self.fmt = fmt
        self.out = out
        self.count = 0
        self.begun = False
        self._columns: list[str] = []
        self._csv = csv.writer(out, lineterminator="\n")

    def begin(self, columns: Sequence[str]) -> None:
        """Starts the output (a CSV header, a JSON array)."""
        self.begun = True
        self._columns = list(columns)
        if self.fmt == "csv":
            self._csv.writerow(self._columns)
        elif self.fmt == "json":
            self.out.write("[")

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """Writes one chunk of rows."""
        if self.fmt == "csv":
            self._csv.writerows([cell(v, "") for v in row] for row in rows)
        elif self.fmt == "jsonl":
            self.out.write("".join(self._object(row) + "\n" for row in rows))
        else:
            self.out.write("".join(("," if self.count + n else "") + self._object(row)
                                   for n, row in enumerate(rows)))
        self.count += len(rows)

    def end(self) -> None:
        """Closes the output (a JSON array)."""
        if self.fmt == "json":
            self.out.write("]\n")
        self.out.flush()

    def _object(self, row: Sequence[Any]) -> str:
        return json.dumps(dict(zip(self._columns, row, strict=True)), ensure_ascii=False)


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str,
           truncated: bool = False) -> str:
    """All the rows as one text (no trailing newline)."""
    if fmt == "table":
        return _table(columns, rows, truncated)
    out = io.StringIO()
    writer = RowWriter(fmt, out)
    writer.begin(columns)
    writer.write(rows)
    writer.end()
    return out.getvalue().rstrip("\n")


def cell(value: Any, null: str) -> str:
    """One value as text: NULL as ``null``, lists and objects as JSON."""
    if value is None:
        return null
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], truncated: bool,
           max_width: int = 60) -> str:
    if not columns:
        return "(no result)"
    cells = [[_clip(cell(v, "NULL"), max_width) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [_line(columns, widths), "  ".join("-" * w for w in widths)]
    lines += [_line(row, widths) for row in cells]
    count = len(rows)
    footer = f"({count} row{'s' if count != 1 else ''}"
    footer += "; limit reached, more rows exist)" if truncated else ")"
    return "\n".join([*lines, footer])


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
