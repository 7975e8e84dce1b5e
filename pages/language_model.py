"""Language-model page: prune or quantize a causal LM layer by layer, read perplexity against sparsity and bits
(this session's runs and the history's), and see on one layer why each method works."""

import streamlit as st

from ui import lm_live
from ui import lm_sections as sections
from ui import lm_speed
from ui import lm_views as views
from ui.lm_choices import TINY_GPT, lm_spec
from ui.lm_models import current_lm
from ui.lm_why import why_section
from ui.routing import ensure_routed

ensure_routed()
st.title("Language models")
views.concept()
lm = current_lm()
if lm is None:
    def use_tiny_gpt() -> None:
        st.session_state["model"] = TINY_GPT

    st.info("Choose a language model in the sidebar (tiny-gpt trains itself in a minute or two on first use; "
            "smollm2 is SmolLM2-135M), or:")
    st.button("Use the tiny GPT", key="lm_use_tiny", on_click=use_tiny_gpt)
    st.stop()
spec = lm_spec(st.session_state["model"])
st.caption(f"**{lm.info.name}**: {lm.info.layers} decoder layers, {lm.info.params:,} parameters. "
           "Each run compresses a copy; the shared model is never changed.")
views.source_note(lm.info)
settings = sections.controls(spec)
if settings is None:
    st.stop()
dense = sections.dense(settings)
dense_ppl = dense.perplexity if dense is not None else None
sections.run_section(lm, settings, dense_ppl)
shown = sections.shown_runs(settings, lm.info.name)
slot, points = sections.charts(shown.rows, settings, dense_ppl)
live = lm_live.live_rtn_first(settings, slot, points, dense_ppl)
if dense is not None:
    st.caption(f"Dense perplexity {dense.perplexity:.2f} on {dense.tokens:,} held-out tokens of "
               f"{settings.evaluation.name} (the dashed line); {sections.noise(dense)}.")
sections.hidden_note(shown, settings)
sections.results_table(shown.rows, dense_ppl)
lm_speed.section(lm, settings, dense_ppl)  # What it buys: speed, memory, devices (on a button)
views.run_details(shown.rows, dense_ppl, spec)
lm_live.live_rtn_refine(live, dense_ppl)  # the live point's full evaluation, once everything above is drawn
why_section(lm, settings)
from ui.sweep import lm_section; lm_section()  # the Sweep section (ui/sweep.py), one line beside the page
