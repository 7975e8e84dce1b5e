"""AppTest of the Language-model page on the tiny GPT: live RTN, a background run, Cancel, bad input, the runs
from the history, the detail that follows the newest run, the heat-maps on one scale, and why each method works."""

import json
import math
import time

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from compression import lm
from compression.core import run_to_end
from compression.history import RunStore, run_from_result
from compression.pipeline import compress_lm, lm_config
from ui import lm_choices, lm_live, lm_sections

SMALL = {"lm_eval_samples": 4, "lm_calib_samples": 4, "lm_seq_len": 64}  # keeps every run a few seconds


@pytest.fixture(autouse=True)
def _trained(tiny_gpt):
    """Every test here opens the tiny GPT: train it first, outside any page's timeout."""


@pytest.fixture(autouse=True)
def _own_history(monkeypatch, tmp_path):
    """The page draws every recorded run on its tokens: each test starts from a history of its own."""
    monkeypatch.setenv("COMPRESSION_LAB_DATA", str(tmp_path))


def kjv_ids(tiny_gpt, samples: int = 4, seq_len: int = 64):
    return lm.evaluation_ids(tiny_gpt.tokenizer, lm.load_text("kjv").evaluation, samples, seq_len)


def lm_page(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["model"] = "tiny-gpt"
    for key, value in {**SMALL, **state}.items():
        at.session_state[key] = value
    at.run()
    return at.switch_page("pages/language_model.py").run()


def chart(at: AppTest, key: str) -> dict:
    """The spec of the plotly chart drawn with `key`."""
    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        if key in element.proto.id:
            return spec
    raise AssertionError(f"no chart {key}")


def poll_until_done(at: AppTest, timeout_s: float = 240) -> None:
    """AppTest never fires st.fragment(run_every=...): rerun the script until the job has ended."""
    deadline = time.time() + timeout_s
    while at.session_state["lm_job"].running and time.time() < deadline:
        time.sleep(0.3)
        at.run()
    at.run()


def test_sidebar_names_agree_with_the_engine():
    assert (lm_choices.TINY_GPT, lm_choices.SMOLLM2) == (lm.TINY_GPT, lm.SMOLLM2)


def test_page_draws_live_rtn_on_the_bits_chart(tiny_gpt):
    at = lm_page(lm_methods=["rtn"])
    assert not at.exception
    assert at.title[0].value == "Language models"
    bits = chart(at, "lm_chart_bits")
    live = bits["data"][-1]
    assert live["x"] == [4] and live["y"][0] > 1  # the ring at the slider's 4 bits
    # on the very tokens the dense line is measured on: the full evaluation, not a short slice
    ids = kjv_ids(tiny_gpt)
    rounded = run_to_end(compress_lm(tiny_gpt, lm_config("rtn", bits=4))).lm.model
    assert live["y"][0] == pytest.approx(lm.perplexity(rounded, ids).perplexity, rel=1e-5)
    assert bits["layout"]["shapes"][0]["y0"] == pytest.approx(lm.perplexity(tiny_gpt.model, ids).perplexity)
    assert live["text"] == ["live: rtn 4-bit g64"]  # named beside the ring, not only in a hidden legend
    at.slider(key="lm_bits").set_value(3).run()  # the slider moves, RTN follows without pressing Run
    bits = chart(at, "lm_chart_bits")
    assert bits["data"][-1]["x"] == [3]
    rtn_line = next(trace for trace in bits["data"] if trace["name"] == "rtn g64")
    assert sorted(rtn_line["x"]) == [3, 4]  # both settings kept as points of the RTN line
    assert any("the same tokens as the dense line" in c.value and "95% range" in c.value for c in at.caption)


def test_the_quick_live_reading_sits_beside_the_dense_model_on_the_same_tokens(tiny_gpt, monkeypatch):
    """Before the full evaluation, the short slice's RTN value is shown beside the dense model's on that slice, never
    on the chart against the full evaluation's dense line."""
    monkeypatch.setattr(lm_live, "live_rtn_refine", lambda live, dense: None)  # stop after the quick reading
    at = lm_page(lm_methods=["rtn"], lm_bits=3)
    metrics = {m.label: float(m.value.lstrip("×")) for m in at.metric}
    ids = kjv_ids(tiny_gpt, *lm_live.SHORT)
    rounded = run_to_end(compress_lm(tiny_gpt, lm_config("rtn", bits=3))).lm.model
    quick = next(v for k, v in metrics.items() if k.startswith("Live rtn 3-bit g64, first"))
    assert quick == pytest.approx(lm.perplexity(rounded, ids).perplexity, abs=0.006)
    assert metrics["Dense model, the same tokens"] == pytest.approx(lm.perplexity(tiny_gpt.model, ids).perplexity,
                                                                    abs=0.006)
    assert all(trace["name"] != "live: rtn 3-bit g64" for trace in chart(at, "lm_chart_bits_wait")["data"])
    assert any("95% range" in c.value for c in at.caption)  # how noisy a reading on these few tokens is


def test_a_run_completes_and_its_points_reach_the_charts_table_and_history():
    at = lm_page(lm_methods=["magnitude", "wanda", "rtn"])
    at.button(key="lm_run").click().run()
    texts = []
    while at.session_state["lm_job"].running:  # what the progress bar says on the way
        time.sleep(0.2)
        texts += [s.text for s in at.session_state["lm_job"].steps]
    poll_until_done(at)
    assert not at.exception
    assert at.session_state["lm_job"].status == "done"
    texts += [s.text for s in at.session_state["lm_job"].steps]
    assert any("perplexity, window" in t for t in texts)  # evaluation shows progress, not "layer 4/4" frozen
    sparsity = chart(at, "lm_chart_sparsity")
    assert [trace["name"] for trace in sparsity["data"]] == ["magnitude", "wanda"]
    assert all(trace["x"] == [0.5] for trace in sparsity["data"])
    bits = chart(at, "lm_chart_bits")
    assert any(trace["name"] == "rtn g64" for trace in bits["data"])
    table = at.dataframe[0].value
    assert list(table["method"]) == ["magnitude 50%", "wanda 50%", "rtn 4-bit g64"]
    assert (table["perplexity"] > 1).all() and table["95% range"].str.contains("–").all()
    heat = chart(at, "lm_heatmap")  # the newest run's per-layer errors: 4 layers x qkv/o/up/down
    assert heat["data"][0]["x"] == ["qkv", "o", "up", "down"] and len(heat["data"][0]["z"]) == 4
    assert "measured on 256 calibration tokens" in heat["layout"]["title"]["text"]
    assert len(chart(at, "lm_sizes")["data"][0]["x"]) == 4  # fp16 and the three packed files
    last = at.session_state["lm_results"][-1]
    assert len(last["packed"]) == last["size_bytes"]  # the size shown is the real file's
    assert at.get("download_button")[0].proto.label.startswith("Download the packed file")
    saved = RunStore().get(last["run_id"])
    assert saved.status == "done" and saved.metrics["perplexity"] > 1
    assert saved.metrics["size_bytes"] < saved.metrics["baseline_size_bytes"]
    # what a later visit needs to tell which runs compare: the evaluation tokens, the texts, the token counts
    assert saved.details["eval_key"] == last["eval_key"] and saved.details["evaluation"] == "kjv"
    assert saved.metrics["tokens"] == 4 * 63 and saved.metrics["seq_len"] == 64
    measured_on = saved.details["measured_on"]
    assert measured_on["calibration_tokens"] == 4 * 64 and measured_on["eval_samples"] == 4
    assert measured_on["nll_se"] > 0 and measured_on["windows"] == 4
    assert any(m.value == "*dense*" for m in at.markdown)  # generations: dense beside the compressed ones


def test_smoothquant_and_its_naive_baseline_run_at_the_chosen_w_a_bits():
    at = lm_page(lm_methods=["smoothquant", "naive"], lm_wa_bits=6, lm_act_scales="per-tensor", lm_alpha=0.8)
    at.button(key="lm_run").click().run()
    poll_until_done(at)
    assert not at.exception and at.session_state["lm_job"].status == "done"
    rows = at.session_state["lm_results"]
    assert [r["config"]["smooth"] for r in rows] == [True, False]
    assert all((r["config"]["weight_bits"], r["config"]["act_bits"], r["config"]["act_granularity"])
               == (6, 6, "per-tensor") for r in rows)
    lines = {trace["name"]: trace["x"] for trace in chart(at, "lm_chart_wa")["data"]}
    assert lines["smoothquant α=0.8 per-tensor"] == ["W6A6"] and lines["naive per-tensor"] == ["W6A6"]
    bits = chart(at, "lm_chart_bits")  # weight-only methods only: W·A· bits are not weight bits
    assert not [t for t in bits["data"] if "smoothquant" in t["name"] or "naive" in t["name"]]


def test_the_job_records_each_method_with_no_page_watching():
    at = lm_page(lm_methods=["rtn"])
    at.button(key="lm_run").click().run()
    job = at.session_state["lm_job"]  # the tab is left alone from here: no rerun polls the job
    job.join(timeout=240)
    assert job.status == "done"
    (row,) = [s.row for s in job.steps if s.row is not None]
    saved = RunStore().get(row["run_id"])
    assert saved.label == "rtn 4-bit g64" and saved.metrics["perplexity"] > 1
    assert saved.owner == at.session_state["visitor"]


def test_cancel_stops_the_run_and_the_history_says_cancelled():
    at = lm_page(lm_methods=["sparsegpt", "gptq"])
    at.button(key="lm_run").click().run()
    at.button(key="lm_cancel").click().run()
    poll_until_done(at)
    assert at.session_state["lm_job"].status == "cancelled"
    assert any("Cancelled" in w.value for w in at.warning)
    runs = {r.label: r for r in RunStore().runs(kind="lm")}
    assert set(runs) == {"sparsegpt 50%", "gptq 4-bit g64"}  # in the history from the moment Run was pressed
    assert {r.status for r in runs.values()} == {"cancelled"}
    assert runs["gptq 4-bit g64"].details["eval_key"] == at.session_state["lm_meta"]["eval_key"]


def test_the_already_running_warning_goes_when_the_run_ends():
    at = lm_page(lm_methods=list(lm_sections.METHODS), lm_calib_samples=32)  # long enough to press Run twice
    at.button(key="lm_run").click().run()
    at.button(key="lm_run").click().run()  # a second press while it runs
    assert at.session_state["lm_job"].running
    assert any("already running" in w.value for w in at.warning)
    at.button(key="lm_cancel").click().run()
    poll_until_done(at)
    assert not any("already running" in w.value for w in at.warning)


def test_bad_input_shows_a_message():
    at = lm_page(lm_methods=["rtn"], lm_eval_text="uploaded .txt")
    assert not at.exception
    assert any("upload a .txt" in e.value for e in at.error)
    at = lm_page(lm_methods=[], lm_calib_text="fortunes")
    assert at.button(key="lm_run").disabled
    assert any("Calibrating on" in w.value for w in at.warning)  # other text than evaluated: say what it costs
    at = lm_page(lm_methods=["rtn"], lm_eval_text="uploaded .txt")
    at.get("file_uploader")[0].upload("latin1.txt", "café ".encode("latin-1") * 1000).run()
    assert any("not UTF-8" in e.value for e in at.error)


def test_model_page_shows_perplexity_and_a_continuation_and_no_server_path():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["model"] = "tiny-gpt"
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Decoder layers"] == "4" and float(metrics["Perplexity (held-out)"]) > 1
    assert at.text[0].value.startswith("In the beginning God created")
    shown = " ".join(e.value for e in [*at.caption, *at.markdown, *at.info])
    assert "source:" in shown and str(ROOT) not in shown and "/root" not in shown and "/home" not in shown


def test_classifier_pages_say_an_lm_is_not_theirs():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["model"] = "tiny-gpt"
    at.run()
    at.switch_page("pages/prune.py").run()
    assert not at.exception
    assert any("language model" in i.value for i in at.info)


def test_compare_shows_lm_runs_with_perplexity():
    from compression.history import run_from_result

    RunStore().record(run_from_result("lm", "tiny-gpt", {"config": {"kind": "quantize", "bits": 4}, "perplexity": 5.2,
                                                         "size_bytes": 400_000, "baseline_size_bytes": 1_600_000},
                                      "rtn 4-bit g64"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["model"] = "tiny-gpt"
    at.run()
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="cmp_kind").set_value(["lm"]).run()
    assert not at.exception
    assert any(column.startswith("perplexity") for column in at.dataframe[0].value.columns)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Language models: perplexity vs size" in titles


def test_sliders_become_one_config_per_method_and_a_chart_line_each():
    from ui.lm_runs import configs_for, series_of

    configs = configs_for(["wanda", "gptq", "smoothquant", "naive"], 0.3, "2:4", 2, 0, 0.7, 6, "per-tensor")
    assert configs[0].nm == (2, 4) and configs[0].amount == 0.5  # 2:4 fixes the sparsity at 50%
    assert configs[1].bits == 2  # the bits slider is for weight-only methods
    assert (configs[2].weight_bits, configs[2].act_bits, configs[2].alpha, configs[2].smooth) == (6, 6, 0.7, True)
    assert not configs[3].smooth and configs[3].act_granularity == "per-tensor"  # the baseline: no migration
    assert [series_of(c) for c in configs] == ["wanda 2:4", "gptq per-channel", "smoothquant α=0.7 per-tensor",
                                               "naive per-tensor"]  # a W·A· line's x is its W·A· bits


def finish_batch(at: AppTest, methods: list[str], **state) -> AppTest:
    at.session_state["lm_methods"] = methods
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.button(key="lm_run").click().run()
    poll_until_done(at)
    assert at.session_state["lm_job"].status == "done"
    return at


def test_the_detail_follows_a_new_batch_unless_a_run_is_picked():
    at = finish_batch(lm_page(lm_methods=["magnitude"]), ["magnitude"])
    first = at.session_state["lm_results"][-1]["run_id"]
    assert at.selectbox(key="lm_view_run").value == first
    finish_batch(at, ["rtn"])
    newest = at.session_state["lm_results"][-1]["run_id"]
    assert at.selectbox(key="lm_view_run").value == newest  # it used to stay on the first batch's run
    assert chart(at, "lm_heatmap")["layout"]["title"]["text"].startswith("rtn 4-bit g64")
    at.selectbox(key="lm_view_run").set_value(first).run()  # a pick holds while nothing new arrives
    at.run()
    assert at.selectbox(key="lm_view_run").value == first
    finish_batch(at, ["gptq"])  # a new batch lets go of the pick
    assert at.selectbox(key="lm_view_run").value == at.session_state["lm_results"][-1]["run_id"]


def test_a_new_visit_shows_the_history_runs_and_says_what_it_hides():
    finish_batch(lm_page(lm_methods=["magnitude"]), ["magnitude", "rtn"])
    RunStore().record(run_from_result("lm", "tiny-gpt", {  # a run on other evaluation tokens: not comparable
        "config": {"kind": "quantize", **lm_config("rtn", bits=3).to_dict()}, "perplexity": 9.0, "tokens": 2032,
        "seq_len": 128, "evaluation": "kjv", "eval_key": "kjv:other|16x128", "layer_errors": []}, "rtn 3-bit g64"))
    RunStore().record(run_from_result("lm", "tiny-gpt", {  # a teacher's run from the command line, same tokens
        "config": {"kind": "quantize", **lm_config("rtn", bits=2).to_dict()}, "perplexity": 30.0, "tokens": 4 * 63,
        "seq_len": 64, "evaluation_text": "kjv", "calibration_text": "kjv", "layer_errors": []}, "rtn 2-bit g64"))
    at = lm_page(lm_methods=["gptq"])  # a reload: a new session with nothing of its own
    assert not at.exception
    assert [t["x"] for t in chart(at, "lm_chart_sparsity")["data"]] == [[0.5]]
    assert any(t["name"] == "rtn g64" and t["x"] == [2, 4] for t in chart(at, "lm_chart_bits")["data"])
    assert list(at.dataframe[0].value["method"]) == ["magnitude 50%", "rtn 4-bit g64", "rtn 2-bit g64"]
    assert any("1 run measured on other evaluation tokens (2,032 tokens of kjv)" in c.value for c in at.caption)
    at.radio(key="lm_source").set_value("session").run()  # this session's runs only
    assert not chart(at, "lm_chart_sparsity")["data"]


def test_two_runs_heat_maps_share_one_scale_and_the_ratio_is_there():
    at = finish_batch(lm_page(lm_methods=["rtn"]), ["rtn", "gptq"], lm_bits=3)
    rtn, gptq = at.session_state["lm_results"]
    assert at.selectbox(key="lm_view_run").value == gptq["run_id"]
    assert at.selectbox(key="lm_compare_run").value == rtn["run_id"]  # GPTQ beside the RTN it improves on
    a, b = chart(at, "lm_heatmap")["data"][0], chart(at, "lm_heatmap_other")["data"][0]
    assert (a["zmin"], a["zmax"]) == (b["zmin"], b["zmax"])
    errors = [r["relative_error"] for r in rtn["layer_errors"] + gptq["layer_errors"]]
    assert a["zmax"] == pytest.approx(math.log10(max(errors))) and a["zmin"] == pytest.approx(math.log10(min(errors)))
    at.radio(key="lm_heat_view").set_value("ratio").run()
    ratio = chart(at, "lm_heatmap_ratio")["data"][0]
    assert ratio["zmid"] == 0 and len(ratio["z"]) == 4


def test_2_4_and_unstructured_runs_of_one_method_are_two_lines():
    at = finish_batch(lm_page(lm_methods=["magnitude"]), ["magnitude"])
    finish_batch(at, ["magnitude"], lm_pattern="2:4")
    traces = {t["name"]: t for t in chart(at, "lm_chart_sparsity")["data"]}
    assert set(traces) == {"magnitude", "magnitude 2:4"}
    assert traces["magnitude"]["marker"]["symbol"] != traces["magnitude 2:4"]["marker"]["symbol"]


def test_why_each_method_works_starts_on_the_loudest_channel(tiny_gpt):
    from compression.lm import DecoderLayers, calibration_ids
    from compression.pipeline import find_outliers

    at = lm_page(lm_methods=["rtn"])
    ids = calibration_ids(tiny_gpt.tokenizer, lm.load_text("kjv").calibration, 4, 64)
    strongest = find_outliers(tiny_gpt.model, DecoderLayers(), ids)[0]
    assert at.slider(key="lm_outlier_layer").value == strongest.layer
    assert at.selectbox(key="lm_outlier_role").value == strongest.role
    titles = {key: chart(at, key)["layout"]["title"]["text"] for key in
              ("lm_why_gptq_row", "lm_why_sparsegpt_row", "lm_why_wanda_channels", "lm_why_smooth_acts")}
    where = f"layer {strongest.layer} · {strongest.role}"
    assert all(title.startswith(where) for title in titles.values())  # one layer for every method
    assert any(f"Measured on {4 * 64:,} calibration tokens" in c.value for c in at.caption)
    at.slider(key="lm_outlier_layer").set_value((strongest.layer + 1) % 4).run()
    assert chart(at, "lm_why_gptq_row")["layout"]["title"]["text"].startswith(f"layer {(strongest.layer + 1) % 4}")
