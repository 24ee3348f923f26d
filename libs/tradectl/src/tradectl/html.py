"""`tradectl report --html FILE`: the report as one self-contained HTML file.

The charts are drawn by matplotlib as SVG and put inline in the page, with the tables and a
stylesheet: no script, no font, no image or link to fetch, so the file opens in any browser,
offline, and can be mailed as it is. Each chart is a `<figure id=...>` (equity-curve, drawdown,
slippage-distribution, latency-histogram) whose marks carry ids (`<chart>-line-<n>`,
`<chart>-bar-<n>`) so that a test can find them in the rendered page. The figures are floats
for drawing only; the tables show money at 2 decimals, as the terminal does.
"""

from __future__ import annotations

import html
import io
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from trading_core.analytics.performance import EquityPoint, equity_curve
from trading_core.analytics.report import BookPerformance, Report

from tradectl.report import Answer, Tabled, scope_of, tables

BINS = 20
SIZE_INCHES = (7.0, 3.2)
LATENCIES = (("accept_ms", "to venue accept"), ("first_fill_ms", "to first fill"))
_SVG_START = re.compile(r"^.*?(?=<svg)", re.DOTALL)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d2330; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(36rem, 1fr)); gap: 1rem; }
figure { margin: 0; border: 1px solid #d8dce5; border-radius: 6px; padding: 0.5rem; }
figcaption { font-weight: 600; margin-bottom: 0.3rem; }
figure svg { width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin-bottom: 1rem; }
th, td { border-bottom: 1px solid #e4e7ee; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; white-space: nowrap; }
caption { text-align: left; font-weight: 600; padding: 0.4rem 0; }
.empty { color: #6b7280; }
"""


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    svg: str | None  # None: nothing to draw in the period
    empty: str  # what to say instead


def write_html(answer: Answer, path: Path) -> None:
    path.write_text(html_of(answer), encoding="utf-8")


def html_of(answer: Answer) -> str:
    report = answer.report
    scope = html.escape(scope_of(report))
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Trading report {scope}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>Trading report</h1>\n<p>{scope}; warehouse {html.escape(answer.source)}; "
        f"made {made}.</p>\n"
    )
    if report.empty:
        return f'{head}<p class="empty">No trading in this period.</p>\n</body>\n</html>\n'
    charts = "\n".join(_figure(chart) for chart in charts_of(report))
    shown = "\n".join(_table(tabled) for tabled in tables(report))
    return (
        f'{head}<h2>Charts</h2>\n<div class="charts">\n{charts}\n</div>\n'
        f"<h2>Tables</h2>\n{shown}\n</body>\n</html>\n"
    )


def charts_of(report: Report) -> list[Chart]:
    books = [book for book in report.performance.books if book.strategy_id is None]
    orders = report.execution.orders
    if report.strategy:
        no_slippage = no_latency = "Execution quality is per account: not shown for a strategy."
    else:
        no_slippage = "No filled order in the period."
        no_latency = "No order reached a venue in the period."
    return [
        Chart("equity-curve", "Equity curve (each account, at each day's end)",
              _equity(books), "No daily P&L in the period."),
        Chart("drawdown", "Drawdown from the running peak (%)", _drawdown(books),
              "No daily P&L in the period."),
        Chart("slippage-distribution", "Slippage against the arrival mid (bps; positive is "
              "a cost), orders per venue", _slippage(orders), no_slippage),
        Chart("latency-histogram", "Latency from submit (ms), orders", _latency(orders),
              no_latency),
    ]  # fmt: skip


def _equity(books: Sequence[BookPerformance]) -> str | None:
    if not books:
        return None
    figure, axes = _axes("equity")
    for number, book in enumerate(books):
        curve = equity_curve(book.series, book.figures.starting_cash)
        axes.plot(
            _days(curve), [float(point.equity) for point in curve],
            marker="o", markersize=3, label=book.account_id, gid=f"equity-curve-line-{number}",
        )  # fmt: skip
    return _svg(figure, axes)


def _drawdown(books: Sequence[BookPerformance]) -> str | None:
    if not books:
        return None
    figure, axes = _axes("drawdown %")
    for number, book in enumerate(books):
        curve = equity_curve(book.series, book.figures.starting_cash)
        days = _days(curve)
        percents = [point.drawdown_ratio * 100 for point in curve]
        [line] = axes.plot(days, percents, marker="o", markersize=3, label=book.account_id,
                           gid=f"drawdown-line-{number}")  # fmt: skip
        axes.fill_between(days, percents, 0, alpha=0.2, color=line.get_color())
    return _svg(figure, axes)


def _slippage(orders: Sequence[dict[str, Any]]) -> str | None:
    by_venue: dict[str, list[float]] = defaultdict(list)
    for order in orders:
        if order["slippage_bps"] is not None:
            by_venue[order["venue"]].append(order["slippage_bps"])
    return _histogram("slippage-distribution", "slippage (bps)", dict(sorted(by_venue.items())))


def _latency(orders: Sequence[dict[str, Any]]) -> str | None:
    series = {
        label: [order[key] for order in orders if order[key] is not None]
        for key, label in LATENCIES
    }
    return _histogram("latency-histogram", "milliseconds", series)


def _histogram(chart: str, label: str, series: dict[str, list[float]]) -> str | None:
    """Bars of each series side by side (bins over all of them); None without a value."""
    drawn = {name: values for name, values in series.items() if values}
    if not drawn:
        return None
    figure, axes = _axes("orders")
    edges = np.histogram_bin_edges(np.concatenate(list(drawn.values())), bins=BINS)
    width = (edges[1] - edges[0]) / len(drawn)
    number = 0
    for offset, (name, values) in enumerate(drawn.items()):
        counts, _ = np.histogram(values, bins=edges)
        bars = axes.bar(edges[:-1] + offset * width, counts, width, align="edge", label=name)
        for bar, count in zip(bars, counts, strict=True):
            if count:  # an empty bin draws no mark
                bar.set_gid(f"{chart}-bar-{number}")
                number += 1
    axes.set_xlabel(label)
    return _svg(figure, axes)


def _days(curve: Sequence[EquityPoint]) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    return np.array([point.day for point in curve], dtype="datetime64[D]")


def _axes(ylabel: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=SIZE_INCHES, layout="constrained")
    axes = figure.subplots()
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def _svg(figure: Figure, axes: Axes) -> str:
    """The figure as an inline <svg> element (without the XML prolog and doctype)."""
    axes.legend(loc="best", fontsize="small")
    if axes.xaxis.get_scale() == "linear" and axes.get_lines():
        figure.autofmt_xdate()
    buffer = io.StringIO()
    # Text stays text (no glyph outlines); the ids matplotlib makes up are the same each run.
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "tradectl-report"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return _SVG_START.sub("", buffer.getvalue(), count=1)


def _figure(chart: Chart) -> str:
    body = chart.svg if chart.svg is not None else f'<p class="empty">{chart.empty}</p>'
    title = html.escape(chart.title)
    return f'<figure id="{chart.id}">\n<figcaption>{title}</figcaption>\n{body}\n</figure>'


def _table(tabled: Tabled) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in tabled.columns)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in tabled.rows
    )
    return (
        f"<table>\n<caption>{html.escape(tabled.title)}</caption>\n"
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    )
