"""The Pipeline and Compare pages in headless Chromium: run a pipeline, see it on the Pareto chart, get the report."""

import re

import pytest
from conftest import SCREENSHOTS, assert_legends_clear, full_page_screenshot, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def _assert_reads_as_words(report: str) -> None:
    """What a stakeholder reads in a report: no snake_case keys, no Python dicts, no bare fractions as accuracy."""
    visible = re.sub(r"<script.*?</script>", "", report, flags=re.S)
    visible = re.sub(r"<[^>]+>", " ", visible)
    assert not re.findall(r"\b[a-z]+_[a-z_]+\b", visible), re.findall(r"\b[a-z]+_[a-z_]+\b", visible)[:5]
    assert "{'" not in visible and "None" not in visible
    assert re.search(r"accuracy.{0,80}?\d+\.\d+%", visible, flags=re.S)


_COUNT_RUNS_JS = """() => {
    window.__runs = 0;
    const app = document.querySelector('[data-testid="stApp"]');
    new MutationObserver(() => { if (app.getAttribute('data-test-script-state') === 'running') window.__runs++; })
        .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def _download(page, button: str):
    """Click a download button and return its download. A download must not rerun the page: the rerun replaces
    the button's deferred file id while the browser asks for it, and the download then fails now and then."""
    page.evaluate(_COUNT_RUNS_JS)
    with page.expect_download() as download:
        page.get_by_role("button", name=button).click()
    page.wait_for_timeout(500)  # a rerun the click started would have begun by now
    assert page.evaluate("() => window.__runs") == 0
    return download.value


def test_run_a_pipeline_then_compare_and_download_the_report(app_server, page, zoo, tmp_path):
    zoo("mlp")
    page.goto(f"{app_server}/pipeline?model=mlp")
    wait_idle(page)
    _set_number(page, "Fine-tune epochs", 10)
    _set_number(page, "Centroid fine-tune epochs", 1)
    page.get_by_role("button", name="Run pipeline").click()
    expect(page.get_by_text("Accuracy (decoded file)")).to_be_visible(timeout=180_000)
    wait_idle(page)
    expect(page.get_by_role("button", name="Compressed model (.clab)")).to_be_visible()
    download = _download(page, "HTML report")
    assert download.suggested_filename == "mlp-prune-quantize-encode-report.html"
    pipeline_report = tmp_path / "pipeline-report.html"
    download.save_as(pipeline_report)
    _assert_reads_as_words(pipeline_report.read_text())
    assert_legends_clear(page, "pipeline")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    full_page_screenshot(page, "pipeline-mlp.png")

    page.goto(f"{app_server}/compare?model=mlp")
    wait_idle(page)
    expect(page.get_by_text("Accuracy vs size")).to_be_visible()
    chart = page.locator(".js-plotly-plot").first
    assert chart.evaluate("gd => gd.data[0].x.length") >= 1
    assert_legends_clear(page, "compare")
    report = tmp_path / "report.html"
    _download(page, "HTML report").save_as(report)
    text = report.read_text()
    assert "Compression Lab: run comparison" in text and "Plotly.newPlot" in text
    _assert_reads_as_words(text)
    full_page_screenshot(page, "compare.png")

    report_page = page.context.new_page()
    report_page.goto(report.as_uri())  # the downloaded report, opened offline
    report_page.wait_for_selector(".js-plotly-plot")
    report_page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
