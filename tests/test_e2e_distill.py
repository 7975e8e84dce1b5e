"""The Distillation page in headless Chromium: start a short run, watch the curve grow, see the result."""

import re
import time

import pytest
from conftest import BROWSER_TIMEOUT_MS, SCREENSHOTS, assert_legends_clear, open_page, wait_idle
from playwright.sync_api import expect

from compression.history.store import RunStore

pytestmark = pytest.mark.e2e

CURVE_EPOCHS = ("() => { const gd = document.querySelector('.js-plotly-plot');"
                " return (gd && gd.data && gd.data[0]) ? Array.from(gd.data[0].x || []) : []; }")


def test_short_distillation_curve_grows_and_result_stays(app_server, page, zoo):
    zoo("cnn")
    open_page(page, f"{app_server}/distill?model=cnn&epochs=20&labeled_fraction=0.05",
              page.get_by_text("Student 64-32-10: 2,410 parameters", exact=False))
    expect(page.get_by_test_id("stSidebar").get_by_text("Distillation")).to_be_visible()  # routed via app.py
    page.get_by_role("slider", name="Temperature T").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_url(re.compile("temperature=4.5"))  # the setting is in the URL, so a link reproduces the run
    wait_idle(page)
    page.get_by_role("button", name="Start distillation").click()
    result_metric = page.get_by_test_id("stMetric").filter(has_text="Distilled student")
    # While the run trains, the live curve is sampled as often as this machine allows. A loaded machine may finish
    # the run between two samples, so what is seen here is checked against the final curve, never required.
    seen, hung = [], time.monotonic() + BROWSER_TIMEOUT_MS / 1000
    while not result_metric.count() and time.monotonic() < hung:
        points = len(page.evaluate(CURVE_EPOCHS))
        if points and not seen:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "distill-running.png"), full_page=True)
        if points:
            seen.append(points)
        page.wait_for_timeout(150)  # sampling pace only: no assertion depends on it
    expect(result_metric).to_be_visible()
    wait_idle(page)
    # The job recorded every step it yielded; the page's final chart draws each of them: the whole run, epoch by
    # epoch, to the last of its 20 epochs.
    run_id = re.search(r"saved to the run history as (\w+)", page.get_by_text("saved to the run history").inner_text())
    recorded = [row["epoch"] for row in RunStore().get(run_id.group(1)).details["curves"]["student"]]
    drawn = page.evaluate(CURVE_EPOCHS)
    assert drawn == pytest.approx(recorded)
    assert len(drawn) >= 20 and drawn == sorted(drawn) and drawn[0] <= 1 and drawn[-1] == pytest.approx(20)
    # what the live chart showed while the run trained (when the run lasted long enough to see): parts of it
    assert seen == sorted(seen) and all(points <= len(drawn) for points in seen), seen
    expect(page.get_by_text("pts vs scratch")).to_be_visible()
    assert_legends_clear(page, "distill")
    page.screenshot(path=str(SCREENSHOTS / "distill-curves.png"), full_page=True)
    result_metric.scroll_into_view_if_needed()  # Streamlit scrolls its main block, so full_page stops at the fold
    page.screenshot(path=str(SCREENSHOTS / "distill-result.png"), full_page=True)
    page.get_by_text("Soft targets: what the teacher teaches").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "distill-soft-targets.png"), full_page=True)
    page.get_by_text("Concept: what is distillation").click()
    expect(page.get_by_text("Why T²")).to_be_visible()
    page.get_by_text("Concept: what is distillation").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "distill-concept.png"), full_page=True)
