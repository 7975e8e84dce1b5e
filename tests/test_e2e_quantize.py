"""The Quantization page in headless Chromium: move the bits slider with the keyboard, watch a chart change."""

import pytest
from conftest import SCREENSHOTS, open_page, open_router, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

HIST_TITLE = "gd => gd.layout.title.text"
GRID_LINES = "gd => gd.layout.shapes.length"


def test_bits_slider_by_keyboard_redraws_the_histogram(app_server, page):
    open_router(page, app_server)
    hist = page.locator(".js-plotly-plot").first
    open_page(page, f"{app_server}/quantize?model=mlp&bits=4", page.get_by_text("Packed file", exact=True))
    expect(hist).to_contain_text("4-bit grid")  # charts draw last
    assert "4-bit grid" in hist.evaluate(HIST_TITLE)
    assert hist.evaluate(GRID_LINES) == 16
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "quantize-mlp-4bit.png"), full_page=True)
    slider = page.get_by_role("slider", name="Bits")
    slider.focus()
    page.keyboard.press("ArrowLeft")
    expect(hist).to_contain_text("3-bit grid")  # the run the key started has redrawn the histogram
    assert "3-bit grid" in hist.evaluate(HIST_TITLE)
    assert hist.evaluate(GRID_LINES) == 8
    assert "bits=3" in page.url  # the setting is in the URL, so the link reproduces the view
    wait_idle(page)
    page.screenshot(path=str(SCREENSHOTS / "quantize-mlp-3bit.png"), full_page=True)
