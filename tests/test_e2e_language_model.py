"""The Language-model page in headless Chromium on the tiny GPT: live RTN follows the bits slider, Run adds a point,
the detail follows a new batch, a reload shows the history's runs, two runs' heat-maps share one colour scale, and
the page reads at 1400 and 800 px."""

import re

import pytest
from conftest import (BROWSER_TIMEOUT_MS, SCREENSHOTS, assert_legends_clear, full_page_screenshot, open_page,
                      open_router, wait_idle)
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SETTINGS = "model=tiny-gpt&lm_eval_samples=4&lm_calib_samples=4&lm_seq_len=64"
CHART = """title => { const gd = [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => g.layout && g.layout.title && g.layout.title.text.includes(title));
    return gd ? gd.data.map(t => ({name: t.name, x: t.x ? [...t.x] : [], y: t.y ? [...t.y] : [],
                                   zmin: t.zmin, zmax: t.zmax})) : null; }"""
# The live RTN ring (the bits chart's last trace) once it sits at `bits`.
LIVE_RING_AT = f"""bits => {{ const traces = ({CHART})('Perplexity vs bits');
    const ring = traces && traces[traces.length - 1];
    return ring && ring.name.startsWith('live') && ring.x.length === 1 && ring.x[0] === bits ? ring : null; }}"""
# A chart's trace `name` once it holds a point at x.
POINT_AT = f"""([title, name, x]) => {{ const traces = ({CHART})(title);
    const t = traces && traces.find(t => t.name === name);
    return t && t.x.includes(x) ? t : null; }}"""


def test_rtn_follows_the_bits_slider_and_a_run_reaches_the_chart(tiny_gpt, app_server, page):
    open_router(page, app_server, "tiny-gpt")
    open_page(page, f"{app_server}/lm?{SETTINGS}&lm_methods=rtn&lm_source=this+session",
              page.get_by_text("Perplexity vs bits").first)
    ring = page.wait_for_function(LIVE_RING_AT, arg=4).json_value()  # the live RTN ring at 4 bits
    assert ring["y"][0] > 1
    page.get_by_role("slider", name="Bits (quantization)").focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(LIVE_RING_AT, arg=3)  # the run the key started has moved the ring
    assert "lm_bits=3" in page.url  # the setting is in the URL, so the link reproduces the view
    expect(page.get_by_text(re.compile("the same tokens as the dense line"))).to_be_visible()
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("One run in detail")).to_be_visible()
    page.wait_for_function(POINT_AT, arg=["Perplexity vs bits", "rtn g64", 3])
    wait_idle(page)
    full_page_screenshot(page, "language-model-tiny-gpt.png")


# The detail's run selector once it shows this session's run `label` (a session's own runs carry no date, the
# history's do): the batch has finished and the detail has moved to it.
DETAIL_IS = """label => [...document.querySelectorAll('[data-testid="stSelectbox"] input[aria-label="Run"]')]
    .some(input => input.value === label + ' · calibrated on kjv')"""


def _run_and_wait(page, label: str) -> None:
    """Press Run and wait until the detail shows this session's run `label` (the newest of its batch)."""
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function(DETAIL_IS, arg=label)
    wait_idle(page)


def test_the_detail_follows_a_new_batch_and_a_reload_shows_the_history(tiny_gpt, app_server, page):
    open_router(page, app_server, "tiny-gpt")
    open_page(page, f"{app_server}/lm?{SETTINGS}&lm_methods=magnitude&lm_sparsity=0.5",
              page.get_by_text("Perplexity vs sparsity").first)
    _run_and_wait(page, "magnitude 50%")
    page.get_by_role("slider", name="Sparsity (pruning)").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_url(re.compile("lm_sparsity=0.55"))
    _run_and_wait(page, "magnitude 55%")  # the detail moved to the new batch's run
    assert page.evaluate(f"() => ({CHART})('magnitude 55%: relative output error') !== null")
    page.reload()  # a projector tab, a shared link: a new session with nothing of its own
    page.wait_for_function(POINT_AT, arg=["Perplexity vs sparsity", "magnitude", 0.5])
    page.wait_for_function(POINT_AT, arg=["Perplexity vs sparsity", "magnitude", 0.55])  # both, from the history
    expect(page.get_by_text("One run in detail")).to_be_visible()


def test_two_runs_heat_maps_share_one_colour_scale(tiny_gpt, app_server, page):
    open_router(page, app_server, "tiny-gpt")
    open_page(page, f"{app_server}/lm?{SETTINGS}&lm_methods=rtn&lm_methods=gptq&lm_bits=3&lm_source=this+session",
              page.get_by_text("Perplexity vs bits").first)
    _run_and_wait(page, "gptq 3-bit g64")
    page.wait_for_function(f"() => ({CHART})('rtn 3-bit g64') !== null")  # the run GPTQ improves on, beside it
    gptq, rtn = (page.evaluate(f"() => ({CHART})({title!r})")[0] for title in ("gptq 3-bit g64", "rtn 3-bit g64"))
    assert (gptq["zmin"], gptq["zmax"]) == (rtn["zmin"], rtn["zmax"])
    expect(page.get_by_text(re.compile("share one logarithmic colour scale"))).to_be_visible()


# The dense line's label of each perplexity chart: whether it lies inside that chart's plot area.
DENSE_LABELS_INSIDE = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(gd => gd.layout.title && gd.layout.title.text.includes('Perplexity'))
    .map(gd => { const area = gd.querySelector('.nsewdrag').getBoundingClientRect();
        const label = [...gd.querySelectorAll('.annotation-text')].find(t => t.textContent.startsWith('dense'));
        if (!label) return [gd.layout.title.text, false];
        const r = label.getBoundingClientRect();
        return [gd.layout.title.text, r.left >= area.left - 1 && r.right <= area.right + 1 && r.top >= area.top - 1
                && r.bottom <= area.bottom + 1]; })"""
CUT = """() => Array.from(document.querySelectorAll('[data-testid="stMain"] *'))
    .filter(e => e.scrollWidth > e.clientWidth + 1 && (getComputedStyle(e).textOverflow === 'ellipsis'
        || (e.closest('[data-baseweb="select"]') && e.children.length === 0)))
    .map(e => e.textContent)"""


def test_the_language_model_page_reads_at_1400_and_800_px(tiny_gpt, app_server, browser):
    for width in (1400, 800):
        context = browser.new_context(viewport={"width": width, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        open_router(page, app_server, "tiny-gpt")
        open_page(page, f"{app_server}/lm?{SETTINGS}&lm_methods=magnitude&lm_methods=rtn&lm_methods=naive",
                  page.get_by_text("Perplexity vs bits").first)
        if width == 1400:  # the history keeps them: the 800 px visit draws the same runs
            _run_and_wait(page, "naive W8A8")
        page.wait_for_function(f"() => ({CHART})('Perplexity, weights and activations') !== null")
        page.wait_for_function(LIVE_RING_AT, arg=4)
        expect(page.get_by_text("Why each method works, on one layer")).to_be_visible()
        page.wait_for_function(f"() => ({CHART})('The loudest input channels') !== null")
        wait_idle(page)
        page.wait_for_timeout(500)
        labels = page.evaluate(DENSE_LABELS_INSIDE)
        assert len(labels) == 3 and all(inside for _, inside in labels), (width, labels)
        assert not page.evaluate(CUT), width  # no text cut short with an ellipsis, no selectbox value cut off
        assert_legends_clear(page, ("language model", width))
        assert page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollWidth") <= width
        full_page_screenshot(page, f"page-language-model-{width}px.png")
        for tab in ("SparseGPT vs magnitude", "Wanda vs magnitude", "Outliers and SmoothQuant"):
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(300)
            assert_legends_clear(page, (tab, width))
        context.close()
    assert (SCREENSHOTS / "page-language-model-800px.png").is_file()
