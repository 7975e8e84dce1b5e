"""The Language-model page in headless Chromium on the tiny GPT: live RTN follows the bits slider, Run adds a point."""

import pytest
from conftest import SCREENSHOTS, open_page, open_router, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SETTINGS = "model=tiny-gpt&lm_methods=rtn&lm_eval_samples=4&lm_calib_samples=4&lm_seq_len=64"
BITS_CHART = """() => {
    const gd = [...document.querySelectorAll('.js-plotly-plot')]
        .find(g => g.layout && g.layout.title && g.layout.title.text.includes('Perplexity vs bits'));
    return gd ? gd.data.map(t => ({name: t.name, x: [...t.x], y: [...t.y]})) : null;
}"""
# The live RTN ring (the chart's last trace) once it sits at `bits`.
LIVE_RING_AT = f"""bits => {{ const traces = ({BITS_CHART})();
    const ring = traces && traces[traces.length - 1];
    return ring && ring.x.length === 1 && ring.x[0] === bits ? ring : null; }}"""
# The finished runs' trace of RTN once it holds a point at `bits`.
RUN_POINT_AT = f"""bits => {{ const traces = ({BITS_CHART})();
    const rtn = traces && traces.find(t => t.name === 'rtn g64');
    return rtn && rtn.x.includes(bits) ? rtn : null; }}"""


def test_rtn_follows_the_bits_slider_and_a_run_reaches_the_chart(tiny_gpt, app_server, page):
    open_router(page, app_server, "tiny-gpt")
    open_page(page, f"{app_server}/lm?{SETTINGS}", page.get_by_text("Perplexity vs bits").first)
    ring = page.wait_for_function(LIVE_RING_AT, arg=4).json_value()  # the live RTN ring at 4 bits
    assert ring["y"][0] > 1
    page.get_by_role("slider", name="Bits (quantization)").focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(LIVE_RING_AT, arg=3)  # the run the key started has moved the ring
    assert "lm_bits=3" in page.url  # the setting is in the URL, so the link reproduces the view
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("One run in detail")).to_be_visible()
    page.wait_for_function(RUN_POINT_AT, arg=3)
    wait_idle(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 3400})  # the app scrolls inside its own container
    page.screenshot(path=str(SCREENSHOTS / "language-model-tiny-gpt.png"), full_page=True)
