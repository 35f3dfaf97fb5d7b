"""The dashboard in a real headless Chromium: it renders every page, refreshes by itself,
and its screenshots show the page, not a blank or an error."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.cli import runlog
from tests.e2e.served import Served, get_json
from tests.support.browser import CHROMIUM_ARGS, chromium_path

pytestmark = [pytest.mark.nats, pytest.mark.slow]

HEADER = (0x24, 0x29, 0x2F)
STATUS_COLOURS = {"ok": (0x1A, 0x7F, 0x37), "degraded": (0xBF, 0x87, 0x00),
                  "down": (0xCF, 0x22, 0x2E)}
FIRST_SERIES = (0x09, 0x69, 0xDA)
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright (which downloads no browser of its own)."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page at a desktop size; the test fails if the page logs an error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda message: errors.append(message.text)
              if message.type == "error" else None)
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    # A script error or a refused style or script (CSP) shows up here.
    assert errors == []


def open_page(page: Page, served: Served, route: str) -> None:
    """Opens a route and waits until the dashboard has rendered it and read the health."""
    page.goto(f"{served.http_url}/#/{route}")
    wait_rendered(page, route.split("/")[0] if "/" not in route else "run")


def wait_rendered(page: Page, page_name: str) -> None:
    """Waits for the marks the script sets once a page is drawn and the health is read."""
    # A selector, not a JavaScript predicate: the page's CSP forbids eval, as it should.
    page.locator(f'body[data-page="{page_name}"][data-health]').wait_for(
        state="attached", timeout=15_000)


def pixels(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def has_colour(image: Image.Image, colour: tuple[int, int, int], box: tuple[int, int, int, int],
               tolerance: int = 6) -> bool:
    """Whether some pixel inside ``box`` is ``colour`` (give or take anti-aliasing)."""
    return any(all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))
               for pixel in distinct_colours(image.crop(box)))


def distinct_colours(image: Image.Image) -> set[tuple[int, int, int]]:
    """Every colour the image holds."""
    counted = image.getcolors(maxcolors=image.width * image.height) or []
    return {cast(tuple[int, int, int], colour) for _, colour in counted}


def test_overview_renders_counts_and_a_screenshot_shows_the_page(
        page: Page, served: Served, tmp_path: Path) -> None:
    open_page(page, served, "overview")
    assert page.locator("[data-section=runs] .card").count() >= 2
    assert page.locator("#error").is_hidden()
    health = str(page.locator("body").get_attribute("data-health"))
    png = page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    image = pixels(png)
    assert image.size[0] == 1280
    assert len(distinct_colours(image)) > 50, "the screenshot is (nearly) one colour"
    assert has_colour(image, HEADER, (0, 0, 1280, 8)), "no header bar at the top"
    # The health badge in the header wears its status's colour.
    assert has_colour(image, STATUS_COLOURS[health], (700, 0, 1280, 48)), health


def test_runs_page_lists_every_run_and_a_run_shows_its_timeline_with_trace_ids(
        page: Page, served: Served) -> None:
    _, runs = get_json(f"{served.http_url}/api/runs")
    open_page(page, served, "runs")
    assert page.locator("main table tbody tr").count() == len(runs["sections"]["runs"])
    page.get_by_role("link", name=served.traced_run, exact=True).click()
    wait_rendered(page, "run")
    timeline = page.locator("[data-section=timeline] tbody tr")
    assert timeline.count() == 5
    traces = page.locator("[data-section=timeline] td[data-column=trace_id]").all_inner_texts()
    # The run was cancelled by `runlog send`; the policy's cancel of its task joined that trace.
    assert traces[-2:] == [served.trace_ids["RunCancelled"]] * 2
    assert HEX32.match(traces[-1])


@pytest.mark.parametrize("route", ["tasks", "workers", "breakers", "budgets"])
def test_each_page_renders_a_table_of_its_read_model(page: Page, served: Served,
                                                      route: str) -> None:
    open_page(page, served, route)
    assert page.locator("main table tbody tr").count() >= 1
    assert page.locator("#error").is_hidden()


def test_cost_page_draws_its_charts(page: Page, served: Served, tmp_path: Path) -> None:
    open_page(page, served, "cost")
    assert page.locator("svg.chart").count() == 2
    assert page.locator("svg.chart rect").count() >= 2
    image = pixels(page.screenshot(path=str(tmp_path / "cost.png"), full_page=True))
    box = page.locator("svg.chart").first.bounding_box()
    assert box is not None
    assert has_colour(image, FIRST_SERIES, (int(box["x"]), int(box["y"]),
                                            int(box["x"] + box["width"]),
                                            int(box["y"] + box["height"]))), "no bars drawn"


def test_the_page_refreshes_by_itself(page: Page, served: Served) -> None:
    open_page(page, served, "runs")
    assert page.locator("main table a", has_text="arrived-late").count() == 0
    sent = runlog(served.data_dir, "send", "run.create",
                  json.dumps({"run_id": "arrived-late", "name": "arrives while watching"}))
    assert sent.returncode == 0, sent.stderr
    # No reload, no click: the next refresh shows it.
    page.locator("main table a", has_text="arrived-late").wait_for(timeout=15_000)
