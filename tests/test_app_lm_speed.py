"""AppTest of the Language-model page's "What it buys" section (ui/lm_speed.py) on a tiny Llama: nothing is measured
on a rerun, and after its button: the cost table, the quality-vs-speed chart, the device estimates and the recorded
run. The section is drawn by a small script of its own, with the settings the page would hand it."""

import json
import time

from streamlit.testing.v1 import AppTest

from compression.history.store import RunStore


def section_script():
    from types import SimpleNamespace

    import streamlit as st
    from lm_helpers import TEXT, tiny_llama

    from compression.lm import split_text
    from ui import lm_speed

    if "_lm" not in st.session_state:
        st.session_state["_lm"] = tiny_llama()
    text = split_text("test text", TEXT)
    chosen = SimpleNamespace(spec="tiny", eval_key="test|2x64", methods=("rtn",), sparsity=0.5,
                             pattern="unstructured", bits=4, group_size=32, alpha=0.5, wa_bits=8,
                             act_granularity="per-token", calibration=text, evaluation=text, calib_samples=2,
                             eval_samples=2, seq_len=64)
    lm_speed.section(st.session_state["_lm"], chosen, 70.0)


def test_section_waits_for_its_button():
    at = AppTest.from_function(section_script, default_timeout=120).run()
    assert not at.exception
    assert [h.value for h in at.subheader] == ["What it buys"]
    assert "lm_cost_job" not in at.session_state
    assert not any("decode tok/s" in e.value.columns for e in at.dataframe)


def test_measuring_fills_the_cost_table_chart_and_history():
    at = AppTest.from_function(section_script, default_timeout=120).run()
    at.button(key="lm_cost_run").click().run()
    deadline = time.time() + 280
    while at.session_state["lm_cost_job"].running and time.time() < deadline:
        time.sleep(0.5)
        at.run()
    at.run()
    assert not at.exception and at.session_state["lm_cost_job"].status == "done"
    row = at.session_state["lm_cost_rows"][-1]
    assert row["kernel"] == "int4pack" and row["decode_tokens_per_s"] > 0 and row["top1_accuracy"] is not None
    tables = [e.value for e in at.dataframe]
    cost = next(v for v in tables if "decode tok/s" in v.columns)
    assert list(cost["run"]) == ["dense float32", "rtn 4-bit g32"]
    assert {"perplexity", "perplexity, real kernels", "top-1", "model MiB (measured)", "process peak MiB"} <= set(cost.columns)
    assert (cost["estimate here tok/s"] > 0).all() and (cost["estimate tok/s"] > 0).all()  # dense and the run
    estimates = next(v for v in tables if "fits? (estimate)" in v.columns)
    assert len(estimates) == 3  # one row per device class for the one run
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "lm_cost_chart" in c.proto.id)
    assert [t["name"] for t in spec["data"]] == ["dense float32", "rtn 4-bit g32"]
    assert any("as fast as the dense float32 model" in m.value for m in at.markdown)
    recorded = RunStore().get(row["run_id"])
    assert recorded.kind == "lm" and recorded.metrics["decode_tokens_per_s"] == row["decode_tokens_per_s"]
    assert recorded.metrics["top1_accuracy"] == row["top1_accuracy"]
