"""The one formatting module: what a user reads, written one way."""

import re

import pytest

from compression.core import readable


def test_names_are_words_not_snake_case():
    for key in ("size_bytes", "baseline_latency_ms", "nonzero_params", "some_new_metric_ms"):
        assert "_" not in readable.name(key)


def test_an_unknown_key_loses_only_its_unit_suffix():
    """'_s' was cut anywhere: target_sparsity read 'targetparsity', latency_stat 'latencytat'."""
    assert readable.name("foo_target_sparsity") == "foo target sparsity"
    assert readable.name("foo_latency_stat") == "foo latency stat"
    assert readable.name("foo_latency_ms") == "foo latency" and readable.name("foo_size_bytes") == "foo size"
    assert readable.name("wall_s") == "wall"


def test_values_by_unit():
    assert readable.value("accuracy", 0.975) == "97.50%"
    assert readable.value("baseline_accuracy", 0.5) == "50.00%"
    assert readable.value("size_bytes", 2048) == "2.0 KiB"
    assert readable.value("latency_ms", 0.05123) == "0.0512 ms"
    assert readable.value("latency_ms", 31.94) == "31.9 ms"
    assert readable.value("params", 26506) == "26,506"
    assert readable.value("teacher_params", 38282.0) == "38,282"
    assert readable.value("accuracy", None) == ""


def test_a_gain_is_in_points_times_at_one_precision_perplexity_at_two_decimals():
    assert readable.value("gain", 0.1417) == "+14.17 points"  # a difference of accuracies, never "14.17%"
    assert readable.value("gain", -0.003) == "-0.30 points"
    assert [readable.value("seconds", v) for v in (12.345, 0.41, 0.01)] == ["12.3 s", "0.4 s", "< 0.1 s"]
    assert readable.value("elapsed_s", 3.0) == "3.0 s"
    assert readable.value("perplexity", 5.46814) == "5.47" and readable.value("baseline_perplexity", 930.1) == "930.10"


def test_shapes_read_as_people_write_them():
    assert readable.shape((360, 64)) == "360 × 64" and readable.shape((None, 1, 8, 8)) == "N × 1 × 8 × 8"


def test_one_image_says_the_resolution():
    assert "0.28 points" in readable.one_image(360)


def _record_every_kind(monkeypatch, tmp_path, zoo, tiny_gpt) -> list:
    """Real runs of every kind, recorded the way the pages and the CLI record them, into a history of their own."""
    import streamlit  # noqa: F401  (ui.history needs it; the recorders below never draw)

    from compression import cli
    from compression.core import run_to_end
    from compression.history import RunStore, run_from_result
    from compression.lm import evaluation_ids
    from compression.models import Workbench
    from compression.pipeline import BudgetConfig, best_run, budget_search, compress_lm, lm_config
    from compression.pruning import FinetuneConfig, PruneConfig, finetune, measure_baseline, preview
    from compression.quantization import QATConfig, QuantConfig, qat_with_control, quantize
    from compression.training import TrainConfig
    from ui import lm_runs, lm_sections
    from ui.quantize_sections import _qat_run

    monkeypatch.setenv("COMPRESSION_LAB_DATA", str(tmp_path))
    mlp = zoo("mlp")
    zoo("cnn")
    for argv in (["prune", "--model", "mlp", "--method", "sparsegpt", "--sparsity", "0.5", "--finetune-epochs", "1",
                  "--calibration-samples", "64"],
                 ["quantize", "--model", "mlp", "--bits", "4", "--method", "gptq", "--calibration-samples", "64"],
                 ["quantize", "--model", "mlp", "--bits", "4", "--qat-epochs", "1", "--activations"],
                 ["pipeline", "--model", "mlp", "--steps", "prune,quantize,encode", "--finetune-epochs", "1",
                  "--quant-epochs", "1"],
                 ["distill", "--teacher", "cnn", "--student-hidden", "16", "--alpha", "0.5", "--temperature", "4",
                  "--epochs", "1"],
                 ["lm", "--model", "tiny-gpt", "--method", "gptq", "--bits", "4", "--samples", "2",
                  "--eval-samples", "2", "--seq-len", "32"],
                 ["lm", "--model", "tiny-gpt", "--method", "naive", "--weight-bits", "6", "--act-bits", "6",
                  "--samples", "2", "--eval-samples", "2", "--seq-len", "32"]):
        assert cli.main(argv) == 0, argv
    store = RunStore()
    bench = Workbench(mlp)  # the Pruning page's "Record this setting"
    view = preview(bench, PruneConfig(amount=0.5), measure_baseline(bench))
    store.record(run_from_result("prune", "mlp", view.to_record(0.97), "magnitude 50%"))
    tuned = run_to_end(finetune(mlp, FinetuneConfig(PruneConfig(amount=0.5), TrainConfig(epochs=1))))
    store.record(run_from_result("prune", "mlp", tuned.to_dict(), "fine-tune"))  # the Pruning page's fine-tune
    store.record(run_from_result("quantize", "mlp", quantize(mlp, QuantConfig(bits=4)).to_dict(), "PTQ"))
    qat = qat_with_control(mlp, QATConfig(QuantConfig(bits=4), TrainConfig(epochs=1)))
    store.record(_qat_run(run_to_end(qat), [], "mlp", "QAT"))
    config = BudgetConfig(budget=1e9, sparsities=(0.5,), codebook_bits=(4,))
    store.record(best_run(run_to_end(budget_search(mlp, config)), config, "mlp"))
    evaluation = evaluation_ids(tiny_gpt.tokenizer, "In the beginning God created the heaven and the earth. " * 20,
                                2, 32)
    result = run_to_end(compress_lm(tiny_gpt, lm_config("magnitude", 0.5, None, 4, 64, 0.5, 8, "per-token")))
    row = {**lm_runs.measure(tiny_gpt, result, evaluation, "", 0), "spec": "tiny-gpt", "eval_key": "k"}
    meta = {"spec": "tiny-gpt", "model": "tiny-gpt", "eval_key": "k", "calibration": "kjv", "evaluation": "kjv",
            "dense_perplexity": 5.0}
    lm_sections._recorder(meta, "visitor:test")(row)  # the Language-model page's job records each method
    return store.runs()


def test_every_metric_key_the_history_can_hold_reads_as_its_own_words(monkeypatch, tmp_path, zoo, tiny_gpt):
    """Every key a real run of any kind records has words of its own: none is garbled by a cut suffix, none is
    snake_case, and no two keys read the same (two columns were both "time (s)")."""
    from compression.history import runs_table

    runs = _record_every_kind(monkeypatch, tmp_path, zoo, tiny_gpt)
    assert {r.kind for r in runs} == {"prune", "quantize", "pipeline", "distill", "budget", "lm"}
    keys = {k for row in runs_table(runs) for k in row} | {k for run in runs for k in run.metrics}
    missing = sorted(k for k in keys if k not in readable.NAMES)
    assert not missing, f"recorded keys without words of their own: {missing}"
    names = [readable.name(k) for k in sorted(keys)]
    assert not [n for n in names if re.search(r"[a-z]_[a-z]", n)]
    assert len(set(names)) == len(names), [n for n in names if names.count(n) > 1]


@pytest.mark.parametrize("key", sorted(readable.NAMES))
def test_every_name_is_words(key):
    words = readable.name(key)
    assert "_" not in words and words.strip() == words and words
