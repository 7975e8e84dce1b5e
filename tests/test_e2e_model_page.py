"""The real app in headless Chromium: open it, pick a model, look at it."""

import re

import pytest
from conftest import SCREENSHOTS, open_page, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


# The weight histogram's title ("layer: N weights") and its bars.
HISTOGRAM = """gd => ({title: gd.layout.title.text, bars: Array.from(gd.data[0].y)})"""


def test_open_app_pick_model_and_screenshot(app_server, page):
    open_page(page, f"{app_server}/?model=mlp", page.get_by_text("Accuracy (held-out)"))
    chart = page.locator(".js-plotly-plot").first
    expect(chart).to_contain_text("weights")
    mlp_title = chart.evaluate(HISTOGRAM)["title"]
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name="cnn", exact=True).click()
    expect(page.get_by_text("38,282", exact=True)).to_be_visible()  # the cnn's parameter count
    assert "model=cnn" in page.url  # the choice is in the URL, so the link reproduces the view
    expect(chart).not_to_contain_text(mlp_title)  # the histogram now shows a layer of the cnn
    wait_idle(page)
    histogram = chart.evaluate(HISTOGRAM)
    weights = int(re.search(r": ([\d,]+) weights", histogram["title"]).group(1).replace(",", ""))
    assert len(histogram["bars"]) == 100 and sum(histogram["bars"]) == weights  # every weight of the layer, binned
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "model-page-cnn.png"), full_page=True)


def test_a_shared_link_to_a_page_opens_with_the_sidebar_on_a_fresh_server(chromium_path, page, zoo):
    from conftest import serve_app

    zoo("cnn")
    with serve_app() as url:  # a fresh server: this link is its very first request
        open_page(page, f"{url}/pipeline?model=cnn&pipe_bits=3", page.get_by_role("heading", name="Pipeline"))
        expect(page.get_by_role("button", name="Run pipeline")).to_be_visible()
        nav = page.get_by_test_id("stSidebarNav")
        expect(nav.get_by_text("Pruning")).to_be_visible()  # the app's navigation, not the pages/ folder listing
        expect(nav.get_by_text("common")).to_have_count(0)
        expect(page.get_by_role("combobox", name="Model")).to_have_value("cnn")
        assert "pipe_bits=3" in page.url
        page.screenshot(path=str(SCREENSHOTS / "shared-link-pipeline.png"), full_page=True)
