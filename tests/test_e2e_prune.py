"""The Pruning page in headless Chromium: move the sparsity slider with the keyboard and see the charts change."""

import re

import pytest
from playwright.sync_api import expect

from conftest import SCREENSHOTS, wait_idle

pytestmark = pytest.mark.e2e
# Surviving weights in the histogram's "kept" trace (sent as a binary array, so read plotly's decoded copy).
KEPT = "gd => Array.from(gd._fullData[1].y).reduce((a, b) => a + b, 0)"


def _current_point(page) -> float:
    curve = page.locator(".js-plotly-plot").nth(2)  # histogram, layer bars, accuracy curve, mask heat-map
    return curve.evaluate("gd => gd.data[1].x[0]")


def test_move_sparsity_slider_with_keyboard(app_server, page, zoo):
    zoo("mlp")  # trained into the test cache before the server needs it
    page.goto(f"{app_server}/?model=mlp")  # the router first, so st.navigation owns the URL paths
    wait_idle(page)
    page.goto(f"{app_server}/prune?model=mlp&sparsity=0.5")
    wait_idle(page)
    expect(page.get_by_text("Accuracy (held-out)")).to_be_visible()
    assert _current_point(page) == pytest.approx(0.5, abs=0.01)
    kept_before = page.locator(".js-plotly-plot").first.evaluate(KEPT)
    slider = page.get_by_role("slider", name=re.compile("Sparsity"))
    slider.focus()
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    wait_idle(page)
    expect(page.get_by_text("Accuracy vs sparsity")).to_be_visible()
    assert _current_point(page) == pytest.approx(0.8, abs=0.01)
    kept_after = page.locator(".js-plotly-plot").first.evaluate(KEPT)
    assert kept_after < kept_before  # fewer surviving weights in the "kept" histogram
    assert "sparsity=0.8" in page.url  # the link reproduces the view
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "prune-page-mlp.png"), full_page=True)
    page.get_by_role("main").locator(".js-plotly-plot").nth(2).scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "prune-page-mlp-curves.png"))
