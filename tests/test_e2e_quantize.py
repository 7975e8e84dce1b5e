"""The Quantization page in headless Chromium: move the bits slider with the keyboard, watch a chart change."""

import pytest
from conftest import SCREENSHOTS, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

HIST_TITLE = "gd => gd.layout.title.text"


def test_bits_slider_by_keyboard_redraws_the_histogram(app_server, page):
    page.goto(f"{app_server}/?model=mlp")  # the router first: before any run has called st.navigation,
    wait_idle(page)  # Streamlit would serve pages/quantize.py as a legacy page without app.py
    page.goto(f"{app_server}/quantize?model=mlp&bits=4")
    wait_idle(page)
    expect(page.get_by_text("Packed file", exact=True)).to_be_visible()
    hist = page.locator(".js-plotly-plot").first
    assert "4-bit grid" in hist.evaluate(HIST_TITLE)
    grid_lines = "gd => gd.layout.shapes.length"
    assert hist.evaluate(grid_lines) == 16
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "quantize-mlp-4bit.png"), full_page=True)
    slider = page.get_by_role("slider", name="Bits")
    slider.focus()
    page.keyboard.press("ArrowLeft")
    wait_idle(page)
    hist = page.locator(".js-plotly-plot").first
    expect(page.get_by_text("3-bit grid")).to_be_attached()
    assert "3-bit grid" in hist.evaluate(HIST_TITLE)
    assert hist.evaluate(grid_lines) == 8
    assert "bits=3" in page.url  # the setting is in the URL, so the link reproduces the view
    page.screenshot(path=str(SCREENSHOTS / "quantize-mlp-3bit.png"), full_page=True)
