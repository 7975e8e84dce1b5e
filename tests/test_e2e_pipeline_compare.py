"""The Pipeline and Compare pages in headless Chromium: run a pipeline, see it on the Pareto chart, get the report."""

import re

import pytest
from conftest import SCREENSHOTS, assert_legends_clear, full_page_screenshot, open_page, wait_idle
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def _set_number(page, label: str, key: str, value: int) -> None:
    """Type a number into the input labelled `label`; its URL parameter `key` follows once the page has it."""
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_url(re.compile(f"[?&]{key}={value}(&|$)"))


def _assert_reads_as_words(report: str) -> None:
    """What a stakeholder reads in a report: no snake_case keys, no Python dicts, no bare fractions as accuracy."""
    visible = re.sub(r"<script.*?</script>", "", report, flags=re.S)
    visible = re.sub(r"<[^>]+>", " ", visible)
    assert not re.findall(r"\b[a-z]+_[a-z_]+\b", visible), re.findall(r"\b[a-z]+_[a-z_]+\b", visible)[:5]
    assert "{'" not in visible and "None" not in visible and not re.search(r"\bnan\b", visible, flags=re.I)
    assert re.search(r"accuracy.{0,80}?\d+\.\d+%", visible, flags=re.S)


# Every message the page sends the server from now on, as bytes (each one a BackMsg).
_RECORD_SENT_JS = """() => {
    window.__sent = [];
    if (!WebSocket.prototype.__recording) {
        const send = WebSocket.prototype.send;
        WebSocket.prototype.send = function (data) {
            window.__sent.push(Array.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data));
            return send.call(this, data);
        };
        WebSocket.prototype.__recording = true;
    }
}"""
# Streamlit's frontend sends a clicked button's rerun from a setTimeout(0) it schedules in the click handler; a
# timeout scheduled after the click fires after it, so by then any rerun the click asked for has been sent.
_AFTER_THE_CLICKS_TIMERS_JS = "() => new Promise(resolve => setTimeout(resolve, 0))"


def _download(page, button: str):
    """Click a download button and return its download. A download must not rerun the page: the rerun replaces
    the button's deferred file id while the browser asks for it, and the download then fails now and then."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    page.evaluate(_RECORD_SENT_JS)
    with page.expect_download() as download:
        page.get_by_role("button", name=button).click()
    page.evaluate(_AFTER_THE_CLICKS_TIMERS_JS)
    sent = [BackMsg.FromString(bytes(message)).WhichOneof("type") for message in page.evaluate("() => window.__sent")]
    assert "rerun_script" not in sent, sent
    return download.value


def _look_at_report(page, report, name: str) -> None:
    """The downloaded report opened offline at 1400 and 800 px: it fits the window (tables scroll in their own box),
    with a screenshot of each under artifacts/screenshots."""
    reader = page.context.new_page()
    for width in (1400, 800):
        reader.set_viewport_size({"width": width, "height": 1000})
        reader.goto(report.as_uri())
        reader.wait_for_selector(".js-plotly-plot")
        assert reader.evaluate("() => document.documentElement.scrollWidth") <= width, (name, width)
        reader.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    reader.close()


def test_run_a_pipeline_then_compare_and_download_the_report(app_server, page, zoo, tmp_path):
    zoo("mlp")
    open_page(page, f"{app_server}/pipeline?model=mlp", page.get_by_role("button", name="Run pipeline"))
    _set_number(page, "Fine-tune epochs", "pipe_ft_epochs", 10)
    _set_number(page, "Centroid fine-tune epochs", "pipe_q_epochs", 1)
    page.get_by_role("button", name="Run pipeline").click()
    expect(page.get_by_text("Accuracy (decoded file)")).to_be_visible(timeout=180_000)
    wait_idle(page)
    expect(page.get_by_role("button", name="Compressed model (.clab)")).to_be_visible()
    download = _download(page, "HTML report")
    assert download.suggested_filename == "mlp-prune-quantize-encode-report.html"
    pipeline_report = tmp_path / "pipeline-report.html"
    download.save_as(pipeline_report)
    _assert_reads_as_words(pipeline_report.read_text())
    text = pipeline_report.read_text()
    assert "MLP 64-100-10 on 8x8 digits" in text and "360 held-out images" in text  # what it is, what it was tested on
    assert "One test image is 0.28 points" in text and not re.search(r"\d B<", text)  # noise; one unit per size
    _look_at_report(page, pipeline_report, "pipeline-report")
    assert_legends_clear(page, "pipeline")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    full_page_screenshot(page, "pipeline-mlp.png")

    open_page(page, f"{app_server}/compare?model=mlp", page.get_by_text("Accuracy vs size"))
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
