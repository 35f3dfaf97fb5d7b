"""The report's charts, drawn with matplotlib (Agg, no display) into PNG bytes."""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .data import Report, columns_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Chart", "draw_charts"]

_TOP_MODELS = 6


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart: a file-name key, a title and the PNG."""

    key: str
    title: str
    png: bytes


def draw_charts(report: Report) -> list[Chart]:
    """Every chart the report has data for."""
    drawn = [_cost_by_model(report), _tokens(report), _task_rates(report), _budgets(report)]
    return [chart for chart in drawn if chart is not None]


def _figure(title: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.6), dpi=100, layout="constrained")
    axes = figure.subplots()
    axes.set_title(title, loc="left", fontsize=11)
    axes.grid(axis="y", alpha=0.3)
    return figure, axes


def _png(key: str, title: str, figure: Figure) -> Chart:
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return Chart(key, title, out.getvalue())


def _cost_by_model(report: Report) -> Chart | None:
    section = report.section("cost_by_model")
    if not section.rows:
        return None
    periods, models, costs = columns_of(section, "period", "model", "cost_usd")
    totals: dict[str, float] = defaultdict(float)
    for model, cost in zip(models, costs, strict=True):
        totals[str(model)] += float(cost or 0)
    top = sorted(totals, key=lambda m: -totals[m])[:_TOP_MODELS]
    labels = sorted({str(p) for p in periods})
    stacks: dict[str, list[float]] = {m: [0.0] * len(labels) for m in [*top, "other"]}
    for period, model, cost in zip(periods, models, costs, strict=True):
        name = str(model) if str(model) in top else "other"
        stacks[name][labels.index(str(period))] += float(cost or 0)
    title = "Cost by model (USD)"
    figure, axes = _figure(title)
    bottom = [0.0] * len(labels)
    for model, values in stacks.items():
        if any(values):
            axes.bar(labels, values, bottom=bottom, label=model)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    axes.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _png("cost_by_model", title, figure)


def _tokens(report: Report) -> Chart | None:
    section = report.section("tokens")
    if not section.rows:
        return None
    periods, tokens_in, tokens_out = columns_of(section, "period", "tokens_in", "tokens_out")
    labels = [str(p) for p in periods]
    title = "Tokens by period"
    figure, axes = _figure(title)
    positions = list(range(len(labels)))
    axes.bar([p - 0.2 for p in positions], [int(v or 0) for v in tokens_in], 0.4, label="input")
    axes.bar([p + 0.2 for p in positions], [int(v or 0) for v in tokens_out], 0.4, label="output")
    axes.set_xticks(positions, labels, rotation=45, fontsize=8)
    axes.legend(fontsize=8)
    return _png("tokens", title, figure)


def _task_rates(report: Report) -> Chart | None:
    section = report.section("tasks")
    if not section.rows:
        return None
    periods, success, retried = columns_of(section, "period", "success_pct", "retried_pct")
    labels = [str(p) for p in periods]
    title = "Task success and retry rates (%)"
    figure, axes = _figure(title)
    axes.plot(labels, [_num(v) for v in success], marker="o", label="succeeded")
    axes.plot(labels, [_num(v) for v in retried], marker="o", label="retried")
    axes.set_ylim(0, 105)
    axes.tick_params(axis="x", labelrotation=45, labelsize=8)
    axes.legend(fontsize=8)
    return _png("task_rates", title, figure)


def _budgets(report: Report) -> Chart | None:
    section = report.section("budgets")
    used = [(str(b), _num(u)) for b, u in zip(*columns_of(section, "budget_id", "used_pct"),
                                               strict=True) if u is not None]
    if not used:
        return None
    title = "Budget use (% of the tighter bound)"
    figure, axes = _figure(title)
    axes.barh([b for b, _ in used], [u for _, u in used],
              color=["tab:red" if u >= 100 else "tab:blue" for _, u in used])
    axes.axvline(100, color="grey", linestyle="--")
    return _png("budgets", title, figure)


def _num(value: Any) -> float:
    return float(value) if value is not None else float("nan")
