"""Recorded runs as a reader takes them in (compression/history/views.py), the CSV and both HTML reports: families
apart, each ranked by its own measure, words for headers and kinds, points as points, one unit and one precision."""

import csv
import io
import math
import re

import pytest

from compression.history import runs_table, write_csv
from compression.history.report import pipeline_report, runs_report
from compression.history.store import Run
from compression.history.views import run_names, split_families, summarise, table_of

CLASSIFIER_KEYS = ("label", "model", "accuracy", "baseline_accuracy", "gain", "size_bytes", "latency_ms", "kind",
                   "status", "created", "id")
RTN = {"kind": "quantize", "method": "rtn", "bits": 4, "granularity": "per-group", "group_size": 64}


def _runs() -> list[Run]:
    lm = {"baseline_perplexity": 5.4681, "baseline_size_bytes": 1_638_400, "tokens": 2032}
    return [Run("pipeline", "mlp", {}, {"accuracy": 0.9333, "size_bytes": 1530}, label="p", id="a1", created_at=0),
            Run("distill", "cnn", {}, {"accuracy": 0.8972, "gain": 0.1417, "elapsed_s": 3.2141}, label="kd", id="a2",
                created_at=1),
            Run("lm", "tiny-gpt", RTN, {**lm, "perplexity": 5.4993, "size_bytes": 503_808, "bits": 4,
                                        "sparsity": 0.13, "seconds": 0.4123},
                {"calibration": "kjv", "evaluation": "kjv"}, label="rtn 4-bit g64", id="b1", created_at=2),
            Run("lm", "tiny-gpt", {"kind": "prune", "method": "magnitude", "amount": 0.9, "nm": None},
                {**lm, "perplexity": 930.12, "size_bytes": 334_000, "target_sparsity": 0.9, "sparsity": 0.9},
                {"calibration_text": "fortunes", "evaluation_text": "kjv"}, label="magnitude 90%", id="b2",
                created_at=3)]


def test_a_language_model_run_says_what_it_did_and_on_which_texts():
    rows = {r["id"]: r for r in runs_table(_runs())}
    assert rows["b1"]["setting"] == "4-bit weights, groups of 64" and "sparsity" not in rows["b1"]  # not "13%"
    assert rows["b2"]["setting"] == "90% of weights zeroed" and rows["b2"]["sparsity"] == 0.9
    assert (rows["b1"]["calibration_text"], rows["b1"]["evaluation_text"]) == ("kjv", "kjv")  # as the page records
    assert (rows["b2"]["calibration_text"], rows["b2"]["evaluation_text"]) == ("fortunes", "kjv")  # as the CLI does
    assert "setting" not in rows["a1"]


def test_classifiers_are_ranked_by_accuracy_and_language_models_by_perplexity_apart():
    rows = runs_table(_runs())
    rows[2]["accuracy"] = float("nan")  # what a table of mixed runs gives a language model: it has no accuracy
    summary = summarise(rows)
    assert summary["most accurate classifier run"] == "mlp · p (pipeline): accuracy 93.33%, file 1.5 KiB"
    assert summary["lowest perplexity, tiny-gpt · kjv, 2,032 tokens"] == (
        "rtn 4-bit g64: 5.50 (dense model 5.47), file 492.0 KiB; lower is better")
    assert "nan" not in " ".join(summary.values()).lower()
    classifiers, lms = split_families(rows)
    assert [r["id"] for r in classifiers] == ["a1", "a2"] and [r["id"] for r in lms] == ["b1", "b2"]


def test_runs_with_one_label_get_names_that_tell_them_apart():
    base = {"model": "mlp", "label": "prune → quantize → encode"}
    at = ["2026-12-07 03:56:10", "2026-12-07 03:57:11", "2026-12-07 03:57:50", "2026-12-07 03:57:50"]
    rows = [{**base, "id": f"x{i + 1}", "created": created} for i, created in enumerate(at)]
    rows.append({"model": "mlp", "label": "other", "id": "y", "created": at[-1]})
    names = run_names(rows)
    assert len(set(names)) == len(names)
    assert names[0] == "mlp · prune → quantize → encode · 07 Dec 03:56" and names[4] == "mlp · other"
    assert names[2].endswith("50 s · x3")


def test_a_table_shows_the_columns_its_runs_fill_in_words():
    rows = runs_table(_runs())
    headers, cells = table_of(rows[:2], CLASSIFIER_KEYS)
    assert headers == ["run", "model", "accuracy", "gain vs scratch", "file size", "kind", "recorded", "id"]
    assert cells[1][headers.index("gain vs scratch")] == "+14.17 points"  # points, never 14.17%
    assert cells[1][headers.index("kind")] == "distillation"  # not "distill"
    lm_headers, _ = table_of(rows[2:], ("label", "perplexity", "size_bytes", "baseline_size_bytes", "status"))
    assert lm_headers == ["run", "perplexity (lower is better)", "packed file", "float16 file"]  # all done: no status


def test_the_csv_is_headed_in_words_with_units_and_holds_numbers_at_a_sensible_precision():
    buffer = io.StringIO()
    write_csv(runs_table(_runs()), buffer)
    header, *rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert not [h for h in header if "_" in h]
    assert {"accuracy (%)", "gain vs scratch (points)", "file size (bytes)", "compression time (s)",
            "training time (s)", "perplexity", "dense perplexity", "calibration text", "evaluation text"} <= set(header)
    cell = {(row[header.index("id")], column): row[i] for row in rows for i, column in enumerate(header)}
    assert cell["a1", "accuracy (%)"] == "93.33" and cell["a2", "gain vs scratch (points)"] == "14.17"
    assert cell["b2", "perplexity"] == "930.1" and cell["b1", "file size (bytes)"] == "503808"
    assert cell["a2", "training time (s)"] == "3.2" and cell["b1", "kind"] == "language model"
    assert cell["b1", "accuracy (%)"] == ""  # blank, never nan


def test_the_runs_report_has_a_table_per_family_in_words():
    page = runs_report(runs_table(_runs()), [])
    visible = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", "", page, flags=re.S)))
    assert "Classifier runs" in visible and "Language-model runs" in visible
    assert not re.search(r"\bnan\b", visible, flags=re.I) and not re.findall(r"\b[a-z]+_[a-z_]+\b", visible)
    assert "+14.17 points" in visible and "perplexity (lower is better)" in visible
    assert "What the words mean" in visible and "W6A6" not in visible  # only the terms the runs use
    assert " lm " not in visible and " distill " not in visible  # kinds in words


@pytest.fixture(scope="module")
def pipeline_result(zoo):
    from compression.core import run_to_end
    from compression.pipeline.run import PipelineConfig, run_pipeline

    return run_to_end(run_pipeline(zoo("mlp"), PipelineConfig(finetune_epochs=2, quant_epochs=1)))


def test_the_pipeline_report_says_what_the_model_is_what_it_was_tested_on_and_how_noisy_that_is(pipeline_result):
    result = pipeline_result
    visible = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", "", pipeline_report(result),
                                                                 flags=re.S)))
    assert "MLP 64-100-10 on 8x8 digits" in visible
    assert "tested on digits: 360 held-out images, never used for training" in visible
    assert "One test image is 0.28 points on these 360 held-out images" in visible
    images = round((result.accuracy - result.baseline_accuracy) * 360)
    assert f"({images:+d} test images)" in visible
    assert not re.search(r"\d B\b", visible)  # one unit per figure: 31.4 KiB, never 32,201 B beside it
    times = re.findall(r"(?:< )?\d[\d.,]* s\b", visible)
    assert times and all(re.fullmatch(r"(< 0\.1|\d[\d,]*\.\d) s", t) for t in times)  # one precision


def test_the_pipeline_reports_size_chart_reads_in_the_summarys_units(pipeline_result):
    from compression.plots.compare import stage_bars

    fig = stage_bars(["start", "encode"], [pipeline_result.baseline_size_bytes, pipeline_result.size_bytes],
                     [0.97, 0.96])
    assert all(re.fullmatch(r"[\d.,]+ (KiB|MiB)|\d+ B", t) for t in fig.data[0].text)
    assert list(fig.data[0].text)[0] == "31.4 KiB" and not math.isnan(fig.layout.yaxis.range[0])
