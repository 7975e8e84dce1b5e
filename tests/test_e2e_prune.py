"""The Pruning page in headless Chromium: move the sparsity slider with the keyboard and see the charts change."""

import re

import pytest
from conftest import SCREENSHOTS, open_page, open_router, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e
# Surviving weights in the histogram's "kept" trace (sent as a binary array, so read plotly's decoded copy).
KEPT = "gd => gd && gd._fullData && gd._fullData[1] ? Array.from(gd._fullData[1].y).reduce((a, b) => a + b, 0) : NaN"


def _wait_for_current_point(page, x: float) -> None:
    """Wait until the accuracy curve (3rd chart) is drawn with its red point at x; charts redraw after the run."""
    page.wait_for_function("""x => {
        const gd = document.querySelectorAll('.js-plotly-plot')[2];
        return gd && gd._fullData && gd._fullData[1] && Math.abs(gd._fullData[1].x[0] - x) < 0.011;
    }""", arg=x)


def test_move_sparsity_slider_with_keyboard(app_server, page, zoo):
    zoo("mlp")  # trained into the test cache before the server needs it
    open_router(page, app_server)
    open_page(page, f"{app_server}/prune?model=mlp&sparsity=0.5", page.get_by_text("Accuracy (held-out)"))
    _wait_for_current_point(page, 0.5)
    kept_before = page.wait_for_function(
        f"() => {{ const v = ({KEPT})(document.querySelector('.js-plotly-plot')); return isNaN(v) ? false : v; }}"
    ).json_value()
    slider = page.get_by_role("slider", name=re.compile("Sparsity"))
    slider.focus()
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    _wait_for_current_point(page, 0.8)  # the run the keys started has redrawn the curve
    # fewer surviving weights in the "kept" histogram (polled: the chart may still be redrawing)
    page.wait_for_function(f"before => ({KEPT})(document.querySelector('.js-plotly-plot')) < before", arg=kept_before)
    expect(page.get_by_text("Accuracy vs sparsity")).to_be_visible()
    assert "sparsity=0.8" in page.url  # the link reproduces the view
    wait_idle(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "prune-page-mlp.png"), full_page=True)
    page.get_by_role("main").locator(".js-plotly-plot").nth(2).scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "prune-page-mlp-curves.png"))
