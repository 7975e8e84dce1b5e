"""Compare's language-model cost view: the table of what measured runs buy, and perplexity against decode tokens/s
or peak memory (ui/lm_cost_compare.py, compression/history/lm_cost.py)."""

import json

from streamlit.testing.v1 import AppTest

from compression.history import lm_cost_table, measured_lm_runs

ROWS = [
    {"id": "a", "model": "SmolLM2", "label": "rtn 4-bit g64", "perplexity": 20.5, "decode_tokens_per_s": 50.0,
     "decode_speedup": 2.5, "prefill_tokens_per_s": 500.0, "weight_bytes_per_token": 90 * 2 ** 20,
     "peak_memory_bytes": 700 * 2 ** 20, "real_perplexity": 20.4, "real_top1_accuracy": 0.41,
     "predicted_decode_tokens_per_s": 150.0, "predicted_decode_tokens_per_s_here": 110.0},
    {"id": "b", "model": "SmolLM2", "label": "wanda 50%", "perplexity": 33.0, "decode_tokens_per_s": 20.0,
     "decode_speedup": 1.0, "peak_memory_bytes": 1100 * 2 ** 20, "top1_accuracy": 0.35},
    {"id": "c", "model": "SmolLM2", "label": "gptq 4-bit g64", "perplexity": 18.0},  # not measured
]


def test_cost_table_lists_measured_runs_in_words():
    assert [r["id"] for r in measured_lm_runs(ROWS)] == ["a", "b"]
    title, headers, cells, note = lm_cost_table(ROWS)
    assert "what they buy" in title and "estimate" in note
    row = dict(zip(headers, cells[0]))
    assert row["decode tokens/s"] == "50.0" and row["× dense float32"] == "2.50×"
    assert row["weights read per token"] == "90.0 MiB" and row["peak memory"] == "700.0 MiB"
    assert row["next-token top-1"] == "41.0%" and dict(zip(headers, cells[1]))["next-token top-1"] == "35.0%"
    assert row["estimate tokens/s"] == "150.0" and row["estimate here tokens/s"] == "110.0"


def compare_script():
    import streamlit as st
    from test_lm_cost_compare import ROWS

    from ui import lm_cost_compare

    st.session_state["_figures"] = len(lm_cost_compare.charts(ROWS))


def test_compare_plots_perplexity_against_tokens_per_s_or_memory():
    at = AppTest.from_function(compare_script, default_timeout=60).run()
    assert not at.exception and at.session_state["_figures"] == 1
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["x"] == [50.0, 20.0] and "decode tokens/s" in spec["layout"]["xaxis"]["title"]["text"]
    at.radio(key="cmp_lm_axis").set_value("peak memory").run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["x"] == [700 * 2 ** 20, 1100 * 2 ** 20]
    assert list(at.dataframe[0].value["run"]) == ["rtn 4-bit g64", "wanda 50%"]
