"""Pure figure builders: plain numbers in, plotly figures out (no torch, no streamlit)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from compression.core.histogram import Histogram
from compression.plots.axes import legend_below

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, template="plotly_white")


def weight_histogram(hist: Histogram, title: str, log_y: bool = False,
                     markers: Sequence[float] = (), after: Histogram | None = None) -> go.Figure:
    """Bars of a server-side histogram (optionally a second one overlaid), with vertical marker lines."""
    fig = go.Figure(go.Bar(x=hist.centers, y=hist.counts, width=_bin_width(hist), name="before" if after else "weights",
                           marker_color="#4c78a8", opacity=0.6 if after else 1.0))
    if after is not None:
        fig.add_trace(go.Bar(x=after.centers, y=after.counts, width=_bin_width(after), name="after",
                             marker_color="#f58518", opacity=0.8))
        fig.update_layout(barmode="overlay")
    for x in markers:
        fig.add_vline(x=x, line_dash="dash", line_color="#e45756")
    fig.update_layout(title=title, xaxis_title="weight value", yaxis_title="count", bargap=0, **_LAYOUT)
    if log_y:
        fig.update_yaxes(type="log", dtick=1)  # powers of ten only: minor-tick labels read as counts
    return fig


def training_curves(steps: Sequence[dict], title: str = "Training") -> go.Figure:
    """Loss per report and test accuracy per epoch from dicts with epoch, loss and test_accuracy."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[s["epoch"] for s in steps], y=[s["loss"] for s in steps], name="train loss",
                             mode="lines", line_color="#4c78a8"))
    acc = [s for s in steps if s.get("test_accuracy") is not None]
    fig.add_trace(go.Scatter(x=[s["epoch"] for s in acc], y=[s["test_accuracy"] for s in acc],
                             name="test accuracy", mode="lines+markers", yaxis="y2", line_color="#54a24b"))
    # Legend under the plot: on the right it would cover the accuracy axis. Accuracy in percent, in order.
    fig.update_layout(title=title, xaxis_title="epoch", yaxis=dict(title="loss"),
                      yaxis2=dict(title="test accuracy", overlaying="y", side="right", range=[0, 1.02],
                                  tickmode="linear", tick0=0, dtick=0.2, tickformat=".0%", showgrid=False),
                      legend=legend_below(), **_LAYOUT)
    return fig


def _bin_width(hist: Histogram) -> float:
    return hist.edges[1] - hist.edges[0] if len(hist.edges) > 1 else 1.0
