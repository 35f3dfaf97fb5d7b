"""One self-contained HTML page: the report's tables, with its charts embedded as PNG."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from typing import Any

from .charts import Chart
from .data import Report, Section

__all__ = ["render_html"]

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { padding: .2rem .7rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #666; } img { max-width: 100%; }
"""


def render_html(report: Report, charts: list[Chart]) -> str:
    """The page: title, notes, charts, then every section as a table."""
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
             f"<title>runlog {report.name} report</title><style>{_STYLE}</style></head><body>",
             f"<h1>runlog {report.name} report</h1>",
             f"<p class=note>{report.periods} {report.unit}s since {report.since} (UTC), "
             f"made {made} from the read models.</p>"]
    parts += [f"<p class=note>{html.escape(note)}</p>" for note in report.notes]
    for chart in charts:
        data = base64.b64encode(chart.png).decode()
        title = html.escape(chart.title)
        parts.append(f"<h2>{title}</h2><img alt=\"{title}\" src=\"data:image/png;base64,{data}\">")
    parts += [_table(section) for section in report.sections.values()]
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(section: Section) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in section.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in section.rows) or (
        f"<tr><td colspan={max(len(section.columns), 1)} class=note>no rows</td></tr>")
    return f"<h2>{html.escape(section.title)}</h2><table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    return "" if value is None else html.escape(str(value))
