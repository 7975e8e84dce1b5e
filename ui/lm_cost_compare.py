"""Compare's language-model runs against what they buy: perplexity against measured decode tokens/s or peak memory,
besides the page's perplexity-against-size chart, and the cost table (compression.history.lm_cost)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from compression.history import lm_cost_table, measured_lm_runs
from compression.plots import lm_cost as plots_cost

AXES = {"decode tokens/s": ("decode_tokens_per_s", "tokens/s", "Language models: perplexity vs decode speed"),
        "peak memory": ("peak_memory_bytes", "bytes", "Language models: perplexity vs peak memory")}


def charts(rows: Sequence[Mapping]) -> list[go.Figure]:
    """The cost table and a chart of the runs that measured their speed (the figures it drew, for the report)."""
    measured = [r for r in measured_lm_runs(rows) if r.get("perplexity")]
    if not measured:
        return []
    title, headers, cells, note = lm_cost_table(measured)
    st.markdown(f"**{title}**")
    st.dataframe(pd.DataFrame(cells, columns=headers), hide_index=True, key="cmp_lm_cost")
    st.caption(note)
    axis = st.radio("Plot these runs' perplexity against", list(AXES), horizontal=True, key="cmp_lm_axis",
                    bind="query-params")
    key, unit, title = AXES[axis]
    shown = [r for r in measured if r.get(key)]
    figure = plots_cost.perplexity_vs_cost([r[key] for r in shown], [r["perplexity"] for r in shown],
                                           [f"{r.get('model', '')} · {r.get('label', '')}" for r in shown],
                                           [str(r.get("model", "")) for r in shown], unit, title)
    st.plotly_chart(figure, key="cmp_lm_cost_chart")
    return [figure]
