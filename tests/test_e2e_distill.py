"""The Distillation page in headless Chromium: start a short run, watch the curve grow, see the result."""

import time

import pytest
from conftest import SCREENSHOTS, assert_legends_clear, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

CURVE_POINTS = ("() => { const gd = document.querySelector('.js-plotly-plot');"
                " return (gd && gd.data) ? (gd.data[0].x || []).length : 0; }")


def test_short_distillation_curve_grows_and_result_stays(app_server, page, zoo):
    zoo("cnn")
    page.goto(f"{app_server}/distill?model=cnn&epochs=20&labeled_fraction=0.05")
    wait_idle(page)
    expect(page.get_by_text("Student 64-32-10: 2,410 parameters", exact=False)).to_be_visible()
    expect(page.get_by_test_id("stSidebar").get_by_text("Distillation")).to_be_visible()  # routed via app.py
    page.get_by_role("slider", name="Temperature T").focus()
    page.keyboard.press("ArrowRight")
    wait_idle(page)
    assert "temperature=4.5" in page.url  # the setting is in the URL, so a link reproduces the run
    page.get_by_role("button", name="Start distillation").click()
    expect(page.get_by_text("Training student and scratch twin")).to_be_visible(timeout=30_000)
    result_metric = page.get_by_test_id("stMetric").filter(has_text="Distilled student")
    seen, shot, deadline = [], False, time.time() + 120
    while not result_metric.count() and time.time() < deadline:
        points = page.evaluate(CURVE_POINTS)
        seen.append(points)
        if points and not shot:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "distill-running.png"), full_page=True)
            shot = True
        page.wait_for_timeout(150)
    growing = sorted({p for p in seen if p})
    assert len(growing) >= 2, f"the live curve never grew while the run went on: {seen}"
    expect(result_metric).to_be_visible(timeout=30_000)
    wait_idle(page)
    assert page.evaluate(CURVE_POINTS) >= growing[-1]  # the curves stay after the run
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
