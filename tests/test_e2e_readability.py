"""Issue 12 in headless Chromium: settings survive Back and Forward, cards agree with their charts, disabled
controls show the value in force, percent axes read in order, and every page reads at 1400 and 800 px."""

import re

import pytest
from conftest import (BROWSER_TIMEOUT_MS, a_whole_run, assert_legends_clear, full_page_screenshot, open_page,
                      open_router, wait_idle)
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

PAGES = {"model": "", "prune": "prune", "quantize": "quantize", "distill": "distill", "pipeline": "pipeline",
         "compare": "compare"}
# Tick labels of every y axis whose ticks are percentages, per chart (plotly's computed ticks, not the SVG).
PERCENT_TICKS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(gd =>
    Object.keys(gd._fullLayout || {}).filter(k => /^yaxis\\d*$/.test(k))
        .map(k => (gd._fullLayout[k]._vals || []).map(v => v.text))
        .filter(texts => texts.length && texts.every(t => /%$/.test(t))))"""


# The Pruning page's accuracy curve (its 3rd chart) once its current-setting point is drawn at sparsity x.
CURRENT_POINT_AT = """x => { const gd = document.querySelectorAll('.js-plotly-plot')[2];
    return gd && gd._fullData && gd._fullData[1] && Math.abs(gd._fullData[1].x[0] - x) < 0.005; }"""


def _slider_value(page, label: str) -> float:
    return float(page.get_by_role("slider", name=re.compile(label)).input_value())  # a hidden range input


def _title(page, title: str | None = None):
    """The page's st.title (any page's, without `title`): drawn by its run, so seeing it means the run began."""
    return page.get_by_test_id("stMain").get_by_role("heading", level=1, name=title, exact=title is not None)


def _open(page, app_server, path: str) -> None:
    open_page(page, f"{app_server}/{path}", _title(page))


def _sidebar(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    expect(_title(page, title)).to_be_visible()
    wait_idle(page)


def _metric(page, label: str) -> str:
    card = page.get_by_test_id("stMetric").filter(has_text=label).first
    return card.get_by_test_id("stMetricValue").inner_text().strip()


def test_back_and_forward_restore_the_settings_of_each_page(app_server, page, zoo):
    zoo("mlp")
    open_router(page, app_server)
    _open(page, app_server, "quantize?bits=2")
    assert _slider_value(page, "Bits") == 2
    _sidebar(page, "Pruning")
    slider = page.get_by_role("slider", name=re.compile("Sparsity"))
    slider.focus()
    for _ in range(60):  # 0.50 -> 0.84, one step at a time as a user would
        if slider.input_value() == "0.84":
            break
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(50)
    page.wait_for_url(re.compile("sparsity=0.84"))
    page.wait_for_function(CURRENT_POINT_AT, arg=0.84)  # the last key's run has drawn its point
    wait_idle(page)
    epochs = page.get_by_label("Epochs", exact=True)
    with a_whole_run(page):  # Back while its run is under way would race the page's own URL writes
        epochs.fill("300")
        epochs.press("Enter")
    assert "sparsity=0.84" in page.url and "prune_ft_epochs=300" in page.url
    with a_whole_run(page):  # Forward while Back's run is under way: its late page message would push /quantize
        page.go_back()
    page.wait_for_url(lambda url: "/quantize" in url and "bits=2" in url)
    expect(_title(page, "Quantization")).to_be_visible()
    expect(page.get_by_role("slider", name="Bits")).to_have_value("2")
    wait_idle(page)
    with a_whole_run(page):
        page.go_forward()
    expect(_title(page, "Pruning")).to_be_visible()
    expect(page.get_by_role("slider", name=re.compile("Sparsity"))).to_have_value("0.84")
    expect(page.get_by_label("Epochs", exact=True)).to_have_value("300")
    wait_idle(page)
    # the reverse trip: Back from Quantization returns to the pruning settings
    _sidebar(page, "Quantization")
    expect(page.get_by_role("slider", name="Bits")).to_have_value("2")
    with a_whole_run(page):
        page.go_back()
    expect(_title(page, "Pruning")).to_be_visible()
    expect(page.get_by_role("slider", name=re.compile("Sparsity"))).to_have_value("0.84")
    # leaving the page and returning by the sidebar keeps inputs that are not sliders (epochs: 300, not 30)
    _sidebar(page, "Quantization")
    _sidebar(page, "Pruning")
    expect(page.get_by_label("Epochs", exact=True)).to_have_value("300")
    expect(page.get_by_role("slider", name=re.compile("Sparsity"))).to_have_value("0.84")


def test_a_disabled_control_shows_the_value_in_force(app_server, page, zoo):
    zoo("mlp")
    open_router(page, app_server)
    _open(page, app_server, "prune?model=mlp&prune_by=threshold&threshold=0.05&sparsity=0.9")
    pruned = page.get_by_test_id("stMetric").filter(has_text="Non-zero parameters").inner_text()
    in_force = float(re.search(r"([\d.]+)% of weights pruned", pruned).group(1)) / 100
    assert abs(_slider_value(page, "Sparsity") - in_force) <= 0.006  # the greyed slider, not 0.90
    histogram = page.locator(".js-plotly-plot").filter(has_text="Weights before and after").first
    expect(histogram).to_contain_text("τ = 0.050)")  # as the slider writes it (waits while the page draws)
    _open(page, app_server, "prune?model=mlp&prune_method=structured&prune_by=threshold&sparsity=0.5")
    expect(page.get_by_role("radiogroup", name="Prune by").get_by_role("radio", name="sparsity")).to_be_checked()


def test_a_card_equals_its_chart(app_server, page, zoo):
    zoo("mlp")
    open_router(page, app_server)
    _open(page, app_server, "prune?model=mlp&sparsity=0.8")
    card = _metric(page, "Accuracy (held-out)")
    point = page.wait_for_function("""() => { const gd = document.querySelectorAll('.js-plotly-plot')[2];
        return gd && gd.data && gd.data[1] ? gd.data[1].y[0] : null; }""").json_value()  # charts draw last
    assert card == f"{point:.2%}"
    _open(page, app_server, "quantize?model=mlp&bits=4&int8_mode=static")
    page.get_by_role("button", name="Convert and measure").click()
    expect(page.get_by_text("int8 accuracy")).to_be_visible()
    wait_idle(page)
    bars = page.locator(".js-plotly-plot").filter(has_text="Real file size").first
    texts = bars.evaluate("gd => Array.from(gd.data[1].text)")
    assert _metric(page, "Latency (batch") == texts[-1]  # real int8: one measurement, shown twice alike
    card = page.get_by_test_id("stMetric").filter(has_text="Latency (batch").inner_text()
    assert f"fp32 {texts[0]}" in card


def test_every_percent_axis_reads_in_order(app_server, page, zoo):
    zoo("mlp")
    open_router(page, app_server)
    for path in ("prune?model=mlp&sparsity=0.9&prune_scan=true", "quantize?model=mlp&bits=3"):
        _open(page, app_server, path)
        axes = page.wait_for_function(f"() => {{ const a = ({PERCENT_TICKS})(); return a.length > 0 && a; }}"
                                      ).json_value()  # charts draw after the run ends
        for texts in axes:
            values = [float(t.rstrip("%")) for t in texts]
            assert values == sorted(values) and len(set(texts)) == len(texts), (path, texts)


# Each chart's margins as its figure gives them and as plotly laid it out ([l, r, t, b] px).
MARGINS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(gd => gd._fullLayout?._size).map(gd => {
    const m = gd.layout.margin || {}, s = gd._fullLayout._size;
    return {title: gd._fullLayout.title?.text, given: [m.l, m.r, m.t, m.b], final: [s.l, s.r, s.t, s.b].map(Math.round)};
})"""


def test_the_charts_a_slider_redraws_are_laid_out_once(app_server, page, zoo):
    """Their margins already fit their labels at 1400 px: plotly's automargin grows none, which would lay the figure
    out a second time on every move (a third of plotly's drawing time, bench/classroom.py)."""
    zoo("mlp")
    open_router(page, app_server)
    for path, charts in (("prune?model=mlp&sparsity=0.5", 4), ("quantize?model=mlp&bits=4", 5)):
        _open(page, app_server, path)
        page.wait_for_function(f"() => ({MARGINS})().length >= {charts}")
        page.wait_for_timeout(1000)  # a grown margin is applied by a second layout, after the first
        margins = page.evaluate(MARGINS)
        assert len(margins) >= charts, (path, margins)
        grown = [m for m in margins if m["final"] != m["given"]]
        assert not grown, (path, grown)


def test_every_page_reads_at_1400_and_800_px(app_server, browser, zoo):
    zoo("mlp")
    for width in (1400, 800):
        context = browser.new_context(viewport={"width": width, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        open_router(page, app_server)
        for name, path in PAGES.items():
            _open(page, app_server, f"{path}?model=mlp")
            page.wait_for_timeout(500)
            full_page_screenshot(page, f"page-{name}-{width}px.png")
            # no text cut short with an ellipsis (cards, labels, buttons), no selectbox value cut off
            cut = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stMain"] *'))
                .filter(e => e.scrollWidth > e.clientWidth + 1 && (getComputedStyle(e).textOverflow === 'ellipsis'
                    || (e.closest('[data-baseweb="select"]') && e.children.length === 0)))
                .map(e => e.textContent)""")
            assert not cut, (name, width, cut)
            assert_legends_clear(page, (name, width))
        context.close()
