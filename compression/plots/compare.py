"""Pure figure builders for the Compare and Pipeline pages: Pareto charts, stage bars, budget sweeps, and the
recorded language-model runs' perplexity vs size."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from compression.core import readable
from compression.plots.axes import PALETTE, legend_below, log_axis, percent_axis, size_axis

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=380, template="plotly_white")


def pareto_chart(xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], front: Sequence[int],
                 x_title: str, title: str, log_x: bool = True, highlight: int | None = None,
                 budget: float | None = None, x_unit: str = "bytes") -> go.Figure:
    """Every run as a point, the frontier as a line; optionally a budget line and a best point.

    Up to ten runs each get a colour and a legend entry (text beside the points overlapped each other, the 100%
    tick and the right edge); beyond that one trace, named on hover.
    """
    fmt = readable.size if x_unit == "bytes" else readable.ms
    hover = "%{text}<br>%{customdata}<br>accuracy %{y:.2%}<extra></extra>"
    if len(xs) <= len(PALETTE):
        fig = go.Figure([go.Scatter(x=[x], y=[y], mode="markers", name=label, text=[label], customdata=[fmt(x)],
                                    hovertemplate=hover, marker=dict(size=10, color=PALETTE[i]))
                         for i, (x, y, label) in enumerate(zip(xs, ys, labels))])
    else:
        fig = go.Figure(go.Scatter(x=list(xs), y=list(ys), mode="markers", text=list(labels), name="runs",
                                   customdata=[fmt(x) for x in xs], hovertemplate=hover,
                                   marker=dict(size=9, color="#4c78a8")))
    # rings on the frontier's runs too: a frontier of one run is a point, which a line alone does not draw
    fig.add_trace(go.Scatter(x=[xs[i] for i in front], y=[ys[i] for i in front], mode="lines+markers",
                             name="Pareto frontier", hoverinfo="skip",
                             line=dict(color="#e45756", dash="dash", shape="hv"),
                             marker=dict(symbol="circle-open", size=16, color="#e45756", line=dict(width=2))))
    if highlight is not None:
        fig.add_trace(go.Scatter(x=[xs[highlight]], y=[ys[highlight]], mode="markers", name="best under budget",
                                 marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(color="#54a24b", width=3))))
    accuracy_axis = percent_axis(ys, pad=0.03)
    if budget is not None:  # a trace, not add_vline: its label sits in the legend, and shapes misplace on log axes
        fig.add_trace(go.Scatter(x=[budget, budget], y=accuracy_axis["range"], mode="lines",
                                 name=f"budget {as_given(budget, x_unit)}", line=dict(color="#54a24b", width=2)))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="accuracy (held-out)",
                      legend=legend_below(), **{**_LAYOUT, "height": 420})
    fig.update_yaxes(**accuracy_axis)  # accuracy: never 150%, ticks that differ
    shown = [*xs, *([budget] if budget is not None else [])]
    if log_x:  # 1, 2, 5, 10 KiB rather than 4.9 KiB
        fig.update_xaxes(**(size_axis(shown) if x_unit == "bytes" else log_axis(shown, fmt)))
    return fig


def as_given(budget: float, unit: str) -> str:
    """A budget as the user typed it, in the unit they typed it in: 4,000 B, not 3.9 KiB; 0.05 ms."""
    return f"{budget:,.0f} B" if unit == "bytes" else f"{budget:g} ms"


def stage_label(name: str) -> str:
    """Say which file a pipeline step's size is: only encode writes the compressed file."""
    return "encode: .clab file" if name == "encode" else f"{name}: fp32 file"


def stage_bars(names: Sequence[str], sizes: Sequence[int], accuracies: Sequence[float]) -> go.Figure:
    """File size after each pipeline step (bars, log scale) with accuracy as a line."""
    # Sizes in one unit everywhere: the bars' labels and ticks read like the summary (31.4 KiB, never 32,201 B).
    fig = go.Figure(go.Bar(x=list(names), y=list(sizes), name="file size", marker_color="#4c78a8",
                           text=[readable.size(s) for s in sizes], textposition="inside"))
    fig.add_trace(go.Scatter(x=list(names), y=list(accuracies), name="accuracy", yaxis="y2", mode="lines+markers",
                             line_color="#54a24b"))
    # An explicit log range: plotly's autorange can leave the smallest bar (the encoded file) below the axis.
    low, high = math.log10(max(1, min(sizes))), math.log10(max(1, max(sizes)))
    # Linear ticks in percent: an axis overlaying a log axis otherwise gets log-style tick labels.
    accuracy_axis = percent_axis(accuracies, pad=0.03)
    fig.update_layout(title="After each step",
                      yaxis=dict(title="file size (log)", **{**size_axis(sizes), "range": [low - 0.5, high + 0.4]}),
                      yaxis2=dict(title="accuracy", overlaying="y", side="right", type="linear", showgrid=False,
                                  **accuracy_axis), legend=legend_below(), **_LAYOUT)
    return fig


def curves_side_by_side(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str,
                        y_title: str) -> go.Figure:
    """Several (name, x, y) curves on one chart."""
    fig = go.Figure([go.Scatter(x=list(x), y=list(y), name=name, mode="lines+markers") for name, x, y in series])
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=y_title, legend=legend_below(),
                      **_LAYOUT)
    if "accuracy" in y_title:  # in percent, like every card
        fig.update_yaxes(**percent_axis([v for _, _, ys in series for v in ys]))
    return fig


def layer_bars(series: Sequence[tuple[str, Sequence[str], Sequence[float]]], title: str) -> go.Figure:
    """Grouped bars per layer for several runs (e.g. per-layer sparsity)."""
    fig = go.Figure([go.Bar(x=list(x), y=list(y), name=name) for name, x, y in series])
    fig.update_layout(title=title, barmode="group", yaxis_title="sparsity", yaxis_tickformat=".0%", showlegend=True,
                      legend=legend_below(), **_LAYOUT)
    return fig


def perplexity_vs_size(sizes_bytes: Sequence[float], perplexities: Sequence[float], labels: Sequence[str],
                       groups: Sequence[str] | None = None,
                       dense: Mapping[str, tuple[float, float]] | None = None,
                       title: str = "Language models: perplexity vs size") -> go.Figure:
    """Recorded language-model runs: lower-left is better (smaller file, lower perplexity).

    One series per group (a model on one evaluation text and token count: perplexities compare only within it),
    each run named on hover; `dense` {group: (float16 file bytes, perplexity)} draws each group's uncompressed model
    as an open diamond, the reference its runs are read against. Perplexity on a log axis: one 930 no longer
    flattens the runs near 5.
    """
    groups = list(groups) if groups is not None else ["runs"] * len(labels)
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups for {len(labels)} runs")
    dense = dict(dense or {})
    hover = "%{text}<br>%{customdata}<br>perplexity %{y:.2f}<extra></extra>"
    data = []
    for i, group in enumerate(dict.fromkeys([*groups, *dense])):
        color = PALETTE[i % len(PALETTE)]
        members = [j for j, g in enumerate(groups) if g == group]
        if members:
            data.append(go.Scatter(x=[sizes_bytes[j] for j in members], y=[perplexities[j] for j in members],
                                   mode="markers", name=group, text=[labels[j] for j in members],
                                   customdata=[readable.size(sizes_bytes[j]) for j in members], hovertemplate=hover,
                                   marker={"size": 10, "color": color}))
        if group in dense:
            size, ppl = dense[group]
            data.append(go.Scatter(x=[size], y=[ppl], mode="markers", name=f"dense: {group}",
                                   text=[f"dense (float16) · {group}"], customdata=[readable.size(size)],
                                   hovertemplate=hover, marker={"size": 13, "symbol": "diamond-open", "color": color,
                                                                "line": {"width": 2}}))
    fig = go.Figure(data)
    fig.update_layout(title=title, xaxis_title="packed file size (log)",
                      yaxis_title="perplexity (log, lower is better)", legend=legend_below(),
                      **{**_LAYOUT, "height": 460})
    all_sizes = [*sizes_bytes, *(v[0] for v in dense.values())]
    all_ppl = [*perplexities, *(v[1] for v in dense.values())]
    fig.update_xaxes(**size_axis(all_sizes))
    fig.update_yaxes(**log_axis(all_ppl, lambda v: f"{v:,.0f}" if v >= 100 else f"{v:.4g}"))
    return fig
