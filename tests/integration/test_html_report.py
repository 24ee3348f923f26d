"""`tradectl report --html` on the seeded week (conftest.py), opened in headless Chromium (Debian's
package, /usr/bin/chromium; .ci/run installs it): the DOM the browser built holds the four
charts as SVG with their data points (a marker per account and day on the equity curve and the
drawdown, bars on the slippage and latency distributions), the tables with money at 2 decimals,
and nothing to fetch. Fails, never skips, without Chromium."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tradectl.cli import app
from typer.testing import CliRunner

from tests.analytics_support import DAYS, VENUES

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
CHARTS = ("equity-curve", "drawdown", "slippage-distribution", "latency-histogram")
ACCOUNTS_WITH_FILLS = 2  # ACC-1 and ACC-2 (DENIED-ONLY has none)
MONEY = re.compile(r"^-?\d{1,3}(,\d{3})*\.\d{2}$")
VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    inside: tuple[str, ...]  # the ids of the elements around it, outermost first
    text: list[str] = field(default_factory=list)


class Dom(HTMLParser):
    """Every element of a page with the ids of the elements it is in."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ids = tuple(e.attrs["id"] for e in self._open if "id" in e.attrs)
        element = Element(tag, {k: v or "" for k, v in attrs}, ids)
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].text.append(data)

    def within(self, identifier: str, tag: str | None = None) -> list[Element]:
        return [e for e in self.elements if identifier in e.inside and tag in (None, e.tag)]

    def groups(self, prefix: str) -> list[str]:
        return [e.attrs["id"] for e in self.elements if e.attrs.get("id", "").startswith(prefix)]


def rendered(page: Path, profile: Path) -> Dom:
    """The DOM headless Chromium built from the file, after it loaded."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    done = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "<figure" in done.stdout, done.stderr[-3000:]
    return Dom(done.stdout)


def html_report(tmp_path: Path, data: Path, *period: str) -> Path:
    page = tmp_path / "report.html"
    shown = CliRunner().invoke(
        app, ["report", "--data", str(data), *period, "--html", str(page)], env={"COLUMNS": "250"}
    )
    assert shown.exit_code == 0, shown.output
    assert f"HTML report written to {page}" in shown.stderr
    return page


def test_the_html_report_renders_in_chromium_with_its_four_charts_and_tables(
    warehouse: Path, tmp_path: Path
) -> None:
    page = html_report(tmp_path, warehouse, "--start", "2026-01-05", "--end", "2026-01-10")
    dom = rendered(page, tmp_path / "chromium-profile")
    for chart in CHARTS:
        assert len(dom.within(chart, "svg")) == 1, f"{chart}: no SVG in its figure"
    for chart in ("equity-curve", "drawdown"):
        lines = dom.groups(f"{chart}-line-")
        assert len(lines) == ACCOUNTS_WITH_FILLS, chart
        for line in lines:  # a marker per day
            assert len(dom.within(line, "use")) == DAYS, line
            [path] = dom.within(line, "path")[:1]
            assert path.attrs["d"].count("L") == DAYS - 1, line
    legend = " ".join(" ".join(e.text) for e in dom.within("slippage-distribution"))
    assert all(venue in legend for venue in VENUES)
    assert len(dom.groups("slippage-distribution-bar-")) >= len(VENUES)
    latency = " ".join(" ".join(e.text) for e in dom.within("latency-histogram"))
    assert "to venue accept" in latency and "to first fill" in latency
    assert len(dom.groups("latency-histogram-bar-")) >= 2
    captions = [" ".join(e.text) for e in dom.elements if e.tag == "caption"]
    assert any(c.startswith("Execution quality by venue") for c in captions)
    assert any(c.startswith("Performance") for c in captions)
    money = [" ".join(e.text) for e in dom.elements if e.tag == "td"]
    assert sum(bool(MONEY.match(cell)) for cell in money) > 50
    fetched = [e for e in dom.elements if e.tag in ("script", "link", "img", "iframe")]
    assert fetched == []
    outside = [
        value
        for e in dom.elements
        for name, value in e.attrs.items()
        if name in ("src", "href", "xlink:href") and not value.startswith("#")
    ]
    assert outside == []


def test_the_html_report_of_an_empty_period_says_there_was_no_trading(
    warehouse: Path, tmp_path: Path
) -> None:
    page = html_report(tmp_path, warehouse, "--end", "2025-12-31")
    text = page.read_text(encoding="utf-8")
    assert "No trading in this period." in text and "<svg" not in text
