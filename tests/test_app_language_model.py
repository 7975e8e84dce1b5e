"""AppTest of the Language-model page on the tiny GPT: live RTN, a background run, Cancel, bad input, history."""

import json
import time

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from compression import lm
from compression.history.store import RunStore
from ui import lm_choices

SMALL = {"lm_eval_samples": 4, "lm_calib_samples": 4, "lm_seq_len": 64}  # keeps every run a few seconds


@pytest.fixture(autouse=True)
def _trained(tiny_gpt):
    """Every test here opens the tiny GPT: train it first, outside any page's timeout."""


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


def test_page_draws_live_rtn_on_the_bits_chart():
    at = lm_page(lm_methods=["rtn"])
    assert not at.exception
    assert at.title[0].value == "Language models"
    bits = chart(at, "lm_chart_bits")
    live = bits["data"][-1]
    assert live["x"] == [4] and live["y"][0] > 1  # the ring at the slider's 4 bits
    at.slider(key="lm_bits").set_value(3).run()  # the slider moves, RTN follows without pressing Run
    bits = chart(at, "lm_chart_bits")
    assert bits["data"][-1]["x"] == [3]
    rtn_line = next(trace for trace in bits["data"] if trace["name"] == "rtn g64")
    assert sorted(rtn_line["x"]) == [3, 4]  # both settings kept as points of the RTN line
    assert any("Live RTN" in c.value for c in at.caption)


def test_a_run_completes_and_its_points_reach_the_charts_table_and_history():
    at = lm_page(lm_methods=["magnitude", "wanda", "rtn"])
    at.button(key="lm_run").click().run()
    poll_until_done(at)
    assert not at.exception
    assert at.session_state["lm_job"].status == "done"
    sparsity = chart(at, "lm_chart_sparsity")
    assert [trace["name"] for trace in sparsity["data"]] == ["magnitude", "wanda"]
    assert all(trace["x"] == [0.5] for trace in sparsity["data"])
    bits = chart(at, "lm_chart_bits")
    assert any(trace["name"] == "rtn g64" for trace in bits["data"])
    table = at.dataframe[0].value
    assert list(table["method"]) == ["magnitude 50%", "wanda 50%", "rtn 4-bit g64"]
    assert (table["perplexity"] > 1).all()
    heat = chart(at, "lm_heatmap")  # the last run's per-layer errors: 4 layers x qkv/o/up/down
    assert heat["data"][0]["x"] == ["qkv", "o", "up", "down"] and len(heat["data"][0]["z"]) == 4
    assert len(chart(at, "lm_sizes")["data"][0]["x"]) == 4  # fp16 and the three packed files
    last = at.session_state["lm_results"][-1]
    assert len(last["packed"]) == last["size_bytes"]  # the size shown is the real file's
    assert at.get("download_button")[0].proto.label.startswith("Download the packed file")
    runs = {r.id: r for r in RunStore().runs(kind="lm")}
    saved = runs[at.session_state["lm_results"][-1]["run_id"]]
    assert saved.metrics["perplexity"] > 1 and saved.metrics["size_bytes"] < saved.metrics["baseline_size_bytes"]
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
    lines = {trace["name"]: trace["x"] for trace in chart(at, "lm_chart_bits")["data"]}
    assert lines["smoothquant α=0.8 A6 per-tensor"] == [6] and lines["naive A6 per-tensor"] == [6]


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


def test_cancel_stops_the_run():
    at = lm_page(lm_methods=["sparsegpt", "gptq"])
    at.button(key="lm_run").click().run()
    at.button(key="lm_cancel").click().run()
    poll_until_done(at)
    assert at.session_state["lm_job"].status == "cancelled"
    assert any("Cancelled" in w.value for w in at.warning)


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


def test_model_page_shows_perplexity_and_a_continuation():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["model"] = "tiny-gpt"
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Decoder layers"] == "4" and float(metrics["Perplexity (held-out)"]) > 1
    assert at.text[0].value.startswith("In the beginning God created")


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
    assert "perplexity" in at.dataframe[0].value.columns
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Language models: perplexity vs size" in titles


def test_sliders_become_one_config_per_method_and_a_chart_line_each():
    from ui.lm_runs import configs_for, series_of

    configs = configs_for(["wanda", "gptq", "smoothquant", "naive"], 0.3, "2:4", 2, 0, 0.7, 6, "per-tensor")
    assert configs[0].nm == (2, 4) and configs[0].amount == 0.5  # 2:4 fixes the sparsity at 50%
    assert configs[1].bits == 2  # the bits slider is for weight-only methods
    assert (configs[2].weight_bits, configs[2].act_bits, configs[2].alpha, configs[2].smooth) == (6, 6, 0.7, True)
    assert not configs[3].smooth and configs[3].act_granularity == "per-tensor"  # the baseline: no migration
    assert [series_of(c) for c in configs] == ["wanda 2:4", "gptq per-channel", "smoothquant α=0.7 A6 per-tensor",
                                               "naive A6 per-tensor"]
