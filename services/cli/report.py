"""``runlog report daily|weekly [-o FILE.html]``: cost and reliability, as HTML with charts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .context import RunlogCommand, state
from .output import emit_record, emit_sections, say

if TYPE_CHECKING:
    from services.reports import Chart, Report

__all__ = ["command"]

_SUMMARY = ("totals", "cost_by_model", "tasks", "budgets")


@click.command("report", cls=RunlogCommand)
@click.argument("period", type=click.Choice(("daily", "weekly")))
@click.option("-o", "--output", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="the HTML file; each chart is also written beside it as "
              "FILE-<chart>.png", show_default="<data dir>/reports/<period>-<date>.html")
@click.option("--periods", type=click.IntRange(min=1, max=366), default=None,
              help="days (daily) or weeks (weekly) to cover", show_default="14 days, 8 weeks")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table",
              help="the terminal summary's format")
def command(period: str, html_path: Path | None, periods: int | None, fmt: str) -> int:
    """Cost by model and period, tokens, success and retry rates, cost per succeeded task,
    savings, budget use: a self-contained HTML file with charts (and PNGs), and a summary."""
    from services.reports import draw_charts, gather, render_html

    report = asyncio.run(gather(_query, period, periods))
    charts = draw_charts(report)
    target = html_path or _default_path(period)
    written = _write(target, render_html(report, charts), charts)
    _summary(report, fmt, written)
    return 0


async def _query(sql: str) -> tuple[list[str], list[list[Any]]]:
    from .reads import query

    result = await query(sql)
    return result.columns, result.rows


def _default_path(period: str) -> Path:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    return state().settings().data_dir / "reports" / f"{period}-{day}.html"


def _write(target: Path, page: str, charts: list[Chart]) -> list[Path]:
    from services.errors import RunlogError

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
        pngs = [target.with_name(f"{target.stem}-{chart.key}.png") for chart in charts]
        for path, chart in zip(pngs, charts, strict=True):
            path.write_bytes(chart.png)
    except OSError as error:
        raise RunlogError(f"cannot write the report to {target}: "
                          f"{error.strerror or error}") from None
    return [target, *pngs]


def _summary(report: Report, fmt: str, written: list[Path]) -> None:
    sections = [report.section(key) for key in _SUMMARY]
    if fmt == "json":
        emit_record({"report": report.name, "since": report.since, "notes": report.notes,
                     "files": [str(p) for p in written],
                     **{s.key: [dict(zip(s.columns, row, strict=True)) for row in s.rows]
                        for s in sections}}, "json")
        return
    emit_sections([(s.title, s.columns, s.rows) for s in sections], "table")
    for note in report.notes:
        say(note, style="dim")
    say(f"wrote {written[0]} ({len(written) - 1} charts, also as PNG beside it)", style="green")
