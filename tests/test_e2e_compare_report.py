"""Compare, its CSV and its HTML report in headless Chromium, as a manager reads them: classifiers ranked by accuracy
and language models by perplexity, apart; headers and kinds in words; points as points; the LM chart readable; a
reload shows the history; and a report downloads while a job runs in another tab."""

import csv
import io
import re
import time

import pytest
from conftest import BROWSER_TIMEOUT_MS, ROOT, SCREENSHOTS, assert_legends_clear, full_page_screenshot, open_page
from playwright.sync_api import expect
from test_e2e_pipeline_compare import _download

from compression.core import readable
from compression.history.store import Run, RunStore

pytestmark = pytest.mark.e2e

MiB = 2 ** 20
_TIMED = {"latency_stat": "median", "latency_batch": 1, "latency_threads": 1}
_LM_BASE = {"baseline_perplexity": 5.4681, "baseline_size_bytes": 1_638_400, "tokens": 2032}
_KJV = {"calibration": "kjv", "evaluation": "kjv"}  # as the Language-model page records them
_RTN4 = {"kind": "quantize", "method": "rtn", "bits": 4, "granularity": "per-group", "group_size": 64}


def _seed(store: RunStore) -> None:
    """Runs like the ones the issue was read from: five pipelines with one label a timer-noise apart, a distillation
    gaining 14.17 points, language-model runs on two evaluation slices (one at perplexity 930), a quantized LM run
    whose rounding zeroed 13% of its weights, and SmolLM2-sized files of 95 to 174 MiB recorded by the CLI."""
    start = time.time() - 3600
    for i, accuracy in enumerate((0.9333, 0.9361, 0.9333, 0.9306, 0.9333)):
        store.record(Run("pipeline", "mlp", {}, {"accuracy": accuracy, "baseline_accuracy": 0.9694,
                                                 "size_bytes": 1530 + i, "baseline_size_bytes": 32_201,
                                                 "compression_ratio": 21.0, "latency_ms": 0.0130 + 0.0002 * i,
                                                 "baseline_latency_ms": 0.0151, **_TIMED},
                         label="prune → quantize → encode", created_at=start + 60 * i))
    store.record(Run("distill", "cnn", {}, {"accuracy": 0.8972, "student_accuracy": 0.8972,
                                            "scratch_accuracy": 0.7555, "teacher_accuracy": 0.9778, "gain": 0.1417,
                                            "size_bytes": 12_011, "latency_ms": 0.0201, "elapsed_s": 3.214, **_TIMED},
                     label="student 32 α=0.5 T=4", created_at=start + 400))
    store.record(Run("prune", "mlp", {}, {"accuracy": 0.8556, "baseline_accuracy": 0.9694, "sparsity": 0.8,
                                          "size_bytes": 9_100, "threshold": 0.05123}, label="magnitude 80%",
                     created_at=start + 500))
    lm = [("rtn 4-bit g64", _RTN4, {**_LM_BASE, "perplexity": 5.4993, "size_bytes": 503_808, "bits": 4,
                                    "sparsity": 0.13, "seconds": 0.41}, _KJV),
          ("naive W6A6", {"kind": "smoothquant", "weight_bits": 6, "act_bits": 6, "alpha": 0.5, "smooth": False},
           {**_LM_BASE, "perplexity": 5.4812, "size_bytes": 1_080_000, "bits": 6, "sparsity": 0.02, "seconds": 0.2},
           _KJV),
          ("magnitude 90%", {"kind": "prune", "method": "magnitude", "amount": 0.9, "nm": None},
           {**_LM_BASE, "perplexity": 930.12, "size_bytes": 334_000, "target_sparsity": 0.9, "sparsity": 0.9,
            "seconds": 0.1}, _KJV),
          ("rtn 4-bit g64", _RTN4, {"baseline_perplexity": 4.8110, "baseline_size_bytes": 1_638_400, "tokens": 508,
                                    "perplexity": 4.8400, "size_bytes": 503_808, "bits": 4, "sparsity": 0.13,
                                    "seconds": 0.4}, _KJV)]
    for i, (label, config, metrics, details) in enumerate(lm):
        store.record(Run("lm", "tiny-gpt", config, metrics, details, label=label, created_at=start + 600 + i))
    for i, (label, size, ppl) in enumerate((("gptq 3-bit g128", 95 * MiB, 19.8), ("rtn 8-bit g128", 174 * MiB, 17.2))):
        store.record(Run("lm", "SmolLM2-135M-Instruct", {**_RTN4, "bits": 3 + 5 * i, "group_size": 128},
                         {"perplexity": ppl, "baseline_perplexity": 17.1, "tokens": 4064, "size_bytes": size,
                          "baseline_size_bytes": 258 * MiB, "bits": 3 + 5 * i, "sparsity": 0.0, "seconds": 95.3},
                         {"calibration_text": "fortunes", "evaluation_text": "kjv"}, label=label,
                         created_at=start + 700 + i))


@pytest.fixture(scope="module")
def history_server(chromium_path, tmp_path_factory):
    """The app on a history of its own, seeded with the runs above."""
    from bench._server import serve

    data = tmp_path_factory.mktemp("history")
    _seed(RunStore(data / "runs.sqlite"))
    with serve(ROOT / ".cache" / f"e2e-compare-{time.time_ns()}.log", {"COMPRESSION_LAB_DATA": str(data)}) as (_, url):
        yield url


def _words_only(text: str, where: str) -> None:
    """What a reader sees holds no NaN, no snake_case key and no key cut into fragments."""
    assert not re.search(r"\bnan\b", text, flags=re.I), where
    snake = re.findall(r"\b[a-z]+_[a-z_]+\b", text)
    assert not snake, (where, snake[:5])
    for fragment in ("targetparsity", "latencytat", "baseline perplexity", "size bytes"):
        assert fragment not in text, (where, fragment)


def _visible(report: str) -> str:
    text = re.sub(r"<script.*?</script>", "", report, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


CHART_DATA = """title => { const gd = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .find(g => g._fullLayout && (g._fullLayout.title.text || '').includes(title));
    return {names: gd.data.map(t => t.name), x: gd.data.map(t => t.x), y: gd.data.map(t => t.y),
            yType: gd._fullLayout.yaxis.type, xRange: gd._fullLayout.xaxis.range,
            xTicks: (gd._fullLayout.xaxis._vals || []).map(v => [v.x, v.text]),
            yTicks: (gd._fullLayout.yaxis._vals || []).map(v => v.text)}; }"""


def test_compare_csv_and_report_read_as_a_manager_reads_them(history_server, page, tmp_path):
    open_page(page, f"{history_server}/compare", page.get_by_text("Classifier runs"))
    summary = page.get_by_test_id("stMarkdown").filter(has_text="most accurate classifier run").inner_text()
    assert "most accurate classifier run" in summary and "accuracy 93.61%" in summary
    assert "lowest perplexity, tiny-gpt · kjv, 2,032 tokens: naive W6A6: 5.48 (dense model 5.47)" in summary
    assert "lower is better" in summary
    _words_only(summary, "summary")

    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3")
    size = page.evaluate(CHART_DATA, "Accuracy vs size")
    runs = [n for n in size["names"] if n != "Pareto frontier"]
    assert len(runs) == 7 and len(set(runs)) == 7  # five pipelines with one label, told apart
    latency = page.evaluate(CHART_DATA, "Accuracy vs latency")
    frontier = latency["x"][latency["names"].index("Pareto frontier")]
    assert frontier == [pytest.approx(0.0132)]  # the more accurate of runs a timer noise apart, alone

    lm = page.evaluate(CHART_DATA, "Language models")
    assert lm["yType"] == "log"  # a 930 no longer flattens the runs near 5
    assert "tiny-gpt · kjv, 2,032 tokens" in lm["names"] and "tiny-gpt · kjv, 508 tokens" in lm["names"]
    assert "dense: tiny-gpt · kjv, 2,032 tokens" in lm["names"]  # the reference the runs are read against
    assert len(set(lm["yTicks"])) == len(lm["yTicks"]) >= 3
    low, high = lm["xRange"]  # a log axis: its range and tick positions in decades
    shown = [text for x, text in lm["xTicks"] if low <= x <= high]
    assert len(shown) >= 3 and all(re.fullmatch(r"[\d.]+ (KiB|MiB)", t) for t in shown), lm["xTicks"]
    assert_legends_clear(page, "compare")

    csv_text = open(_download(page, "Runs as CSV").path(), encoding="utf-8").read()
    header, *rows = list(csv.reader(io.StringIO(csv_text)))
    _words_only(" ".join(header), "CSV header")
    assert {"accuracy (%)", "file size (bytes)", "perplexity", "calibration text", "evaluation text",
            "evaluation tokens", "gain vs scratch (points)", "kind"} <= set(header)
    cells = [c for row in rows for c in row]
    decimals = [c for c in cells if re.fullmatch(r"-?\d*\.\d+", c)]
    long = [c for c in decimals if len(c.replace("-", "").replace(".", "").lstrip("0")) > 4]
    assert "nan" not in cells and decimals and not long, long  # four significant digits, not a float's 17
    student = next(r for r in rows if r[header.index("run")] == "student 32 α=0.5 T=4")
    assert student[header.index("gain vs scratch (points)")] == "14.17"
    assert "language model" in [r[header.index("kind")] for r in rows]

    report_file = tmp_path / "runs-report.html"
    _download(page, "HTML report").save_as(report_file)
    report = report_file.read_text()
    text = _visible(report)
    _words_only(text, "report")
    assert "Classifier runs" in text and "Language-model runs" in text
    assert "perplexity (lower is better)" in text and "accuracy nan" not in text
    assert "+14.17 points" in text and "14.17%" not in text
    best = text.split("most accurate classifier run")[1].split("lowest perplexity")[0]
    assert "mlp · prune → quantize → encode" in best and "tiny-gpt" not in best  # LMs never ranked by accuracy
    assert " lm " not in text and " distill " not in text  # kinds in words
    assert "4-bit weights, groups of 64" in text and "90% of weights zeroed" in text
    assert "fortunes" in text and "2,032" in text and "4,064" in text  # the texts and token counts of every LM run
    assert "What the words mean" in text and "Lower is better; the dense (uncompressed) model" in text
    lm_table = report.split("Language-model runs</h2>")[1].split("</table>")[0]
    assert "sparsity" not in lm_table.lower()  # a quantized run is its bits, never "sparsity 13%"
    headers = re.findall(r"<th>([^<]*)</th>", report.split("<h2>Classifier runs")[1])
    allowed = {*readable.NAMES.values(), "perplexity (lower is better)", "packed file", "float16 file"}
    assert headers and set(headers) <= allowed, set(headers) - allowed

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    full_page_screenshot(page, "compare-1400.png")
    reader = page.context.new_page()
    for width in (1400, 800):
        reader.set_viewport_size({"width": width, "height": 1000})
        reader.goto(report_file.as_uri())
        reader.wait_for_selector(".js-plotly-plot")
        assert reader.evaluate("() => document.documentElement.scrollWidth") <= width  # fits, no sideways page
        reader.screenshot(path=str(SCREENSHOTS / f"runs-report-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 800, "height": 1000})
    page.reload()  # and a reload shows the history's runs again
    expect(page.get_by_text("Language-model runs")).to_be_visible()
    expect(page.get_by_text("13 (7 classifier, 6 language-model)")).to_be_visible()
    assert_legends_clear(page, "compare at 800 px")
    full_page_screenshot(page, "compare-800.png")


def test_report_downloads_while_a_job_runs_in_another_tab(history_server, browser, page, zoo):
    """Another tab's running job makes every poll a script run, and each run sweeps files no session references:
    a clicked report's file used to be swept before the browser fetched it ('Download Button source error - 404',
    once in 9 downloads). The fetch is delayed here, as on a busy machine, so the old code fails every time."""
    zoo("cnn")
    worker = browser.new_context(viewport={"width": 1400, "height": 1000})
    busy = worker.new_page()
    busy.set_default_timeout(BROWSER_TIMEOUT_MS)
    open_page(busy, f"{history_server}/pipeline?model=cnn&pipe_ft_epochs=300&pipe_q_epochs=1",
              busy.get_by_role("button", name="Run pipeline"))
    busy.get_by_role("button", name="Run pipeline").click()
    cancel = busy.get_by_role("button", name="Cancel")
    expect(cancel).to_be_visible()  # the job runs: its fragment polls twice a second
    errors = []
    page.on("console", lambda message: errors.append(message.text) if "source error" in message.text else None)
    page.context.route("**/media/**", lambda route: (time.sleep(1.5), route.continue_()))
    open_page(page, f"{history_server}/compare", page.get_by_role("button", name="HTML report"))
    try:
        for _ in range(3):
            assert cancel.is_visible(), "the job ended before the downloads: give it more epochs"
            download = _download(page, "HTML report")
            assert download.failure() is None
            assert "Compression Lab: run comparison" in open(download.path(), encoding="utf-8").read()
            assert not errors, errors
    finally:
        if cancel.is_visible():
            cancel.click()
        worker.close()
