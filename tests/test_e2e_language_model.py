"""The Language-model page in headless Chromium on the tiny GPT: live RTN follows the bits slider, Run adds a point."""

import pytest
from conftest import SCREENSHOTS, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SETTINGS = "model=tiny-gpt&lm_methods=rtn&lm_eval_samples=4&lm_calib_samples=4&lm_seq_len=64"
BITS_CHART = """() => {
    const gd = [...document.querySelectorAll('.js-plotly-plot')]
        .find(g => g.layout && g.layout.title && g.layout.title.text.includes('Perplexity vs bits'));
    return gd ? gd.data.map(t => ({name: t.name, x: [...t.x], y: [...t.y]})) : null;
}"""


def test_rtn_follows_the_bits_slider_and_a_run_reaches_the_chart(tiny_gpt, app_server, page):
    page.goto(f"{app_server}/?model=tiny-gpt")  # the router first (see test_e2e_quantize)
    wait_idle(page)
    page.goto(f"{app_server}/lm?{SETTINGS}")
    wait_idle(page)
    expect(page.get_by_text("Perplexity vs bits").first).to_be_attached()
    traces = page.evaluate(BITS_CHART)
    assert traces[-1]["x"] == [4] and traces[-1]["y"][0] > 1  # the live RTN ring at 4 bits
    page.get_by_role("slider", name="Bits (quantization)").focus()
    page.keyboard.press("ArrowLeft")
    wait_idle(page)
    traces = page.evaluate(BITS_CHART)
    assert traces[-1]["x"] == [3]
    assert "lm_bits=3" in page.url  # the setting is in the URL, so the link reproduces the view
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("One run in detail")).to_be_visible(timeout=120_000)
    wait_idle(page)
    rtn = next(t for t in page.evaluate(BITS_CHART) if t["name"] == "rtn g64")
    assert 3 in rtn["x"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 3400})  # the app scrolls inside its own container
    wait_idle(page)
    page.screenshot(path=str(SCREENSHOTS / "language-model-tiny-gpt.png"), full_page=True)
