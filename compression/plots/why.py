"""Figures of why each method works, on one layer (compression.pipeline.explain's plain numbers in, go.Figure out):
GPTQ's error push along a row, SparseGPT's updates, the weights Wanda keeps that magnitude drops, SmoothQuant's
migration of each channel's range, and the errors they leave side by side."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from compression.plots.axes import legend_below, log_axis
from compression.plots.common import _LAYOUT

GREY, BLUE, RED, ORANGE = "#9d9da1", "#4c78a8", "#e45756", "#f58518"
_TALL = {**_LAYOUT, "height": 460, "margin": dict(l=10, r=10, t=40, b=90)}


def _error_format(values: Sequence[float]) -> Callable[[float], str]:
    """One number format for all the errors on a chart: decimals while every one is at least 0.01, else powers of
    ten for all (2e-3 beside 1e-2; never 0.01 above 1.0e-03 on one axis)."""
    if min(values, default=1.0) >= 0.01:
        return lambda v: f"{v:.2g}"
    return _scientific


def _scientific(v: float) -> str:
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def gptq_row(why: Mapping) -> go.Figure:
    """One row, column by column in GPTQ's order: the weights before, after round-to-nearest and after GPTQ (top),
    and the rounding error the columns before each pushed onto it (bottom)."""
    steps = list(range(1, len(why["columns"]) + 1))
    hover = [f"column {c}" for c in why["columns"]]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.06)
    for name, key, marker in (("original", "original", {"color": GREY, "size": 9}),
                              ("round-to-nearest", "rtn", {"color": RED, "symbol": "circle-open", "size": 11,
                                                           "line": {"width": 2}}),
                              ("GPTQ", "gptq", {"color": BLUE, "symbol": "x", "size": 8})):
        fig.add_trace(go.Scatter(x=steps, y=why[key], name=name, mode="markers", marker=marker, text=hover,
                                 hovertemplate="%{text}<br>" + name + " %{y:.4g}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=steps, y=why["pushed"], name="error pushed onto it by earlier columns",
                         marker_color=ORANGE, customdata=hover,  # `text` would be printed on the bars
                         hovertemplate="%{customdata}<br>pushed %{y:+.3g}<extra></extra>"), row=2, col=1)
    fig.update_layout(title=f"{why['layer']}, row {why['row']}: the first {len(steps)} columns GPTQ rounds",
                      legend=legend_below(), bargap=0.2, **_TALL)
    fig.update_yaxes(title_text="weight", row=1, col=1)
    fig.update_yaxes(title_text="pushed", row=2, col=1)
    fig.update_xaxes(title_text="step (the order GPTQ rounds the columns in)", row=2, col=1)
    return fig


def sparsegpt_row(why: Mapping) -> go.Figure:
    """One row's first columns: the weights before, those SparseGPT removed, what it moved each survivor by."""
    cols, original, after = why["columns"], why["original"], why["sparsegpt"]
    pruned = [c for c, v in zip(cols, after) if v == 0]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=cols, y=original, name="original", mode="markers",
                             marker={"color": GREY, "size": 9},
                             hovertemplate="column %{x}<br>original %{y:.4g}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=pruned, y=[original[cols.index(c)] for c in pruned], name="removed by SparseGPT",
                             mode="markers", marker={"color": RED, "symbol": "x", "size": 9},
                             hovertemplate="column %{x}<br>removed %{y:.4g}<extra></extra>"), row=1, col=1)
    kept = [c for c, v in zip(cols, after) if v != 0]
    fig.add_trace(go.Scatter(x=kept, y=[after[cols.index(c)] for c in kept], name="kept, after SparseGPT's update",
                             mode="markers", marker={"color": BLUE, "symbol": "circle-open", "size": 10,
                                                     "line": {"width": 2}},
                             hovertemplate="column %{x}<br>after %{y:.4g}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=cols, y=why["update"], name="update of each survivor", marker_color=BLUE,
                         hovertemplate="column %{x}<br>update %{y:+.3g}<extra></extra>"), row=2, col=1)
    fig.add_trace(go.Bar(x=pruned, y=[-original[cols.index(c)] for c in pruned], name="weight lost by removal",
                         marker_color=RED, hovertemplate="column %{x}<br>lost %{y:+.3g}<extra></extra>"),
                  row=2, col=1)
    fig.update_layout(title=f"{why['layer']}, row {why['row']}: its first {len(cols)} columns at {why['pattern']}",
                      legend=legend_below(), bargap=0.2, barmode="overlay", **_TALL)
    fig.update_yaxes(title_text="weight", row=1, col=1)
    fig.update_yaxes(title_text="change", row=2, col=1)
    fig.update_xaxes(title_text="input column", row=2, col=1)
    return fig


def error_bars(groups: Mapping[str, Mapping[str, float]], colors: Mapping[str, str], title: str) -> go.Figure:
    """Relative output errors ‖X(W − Ŵ)‖²/‖XW‖² per method (a bar each, in `colors`' colour) for each group (the
    row, the whole layer), on a log axis: methods an order of magnitude apart stay readable."""
    fig = go.Figure()
    methods = list(dict.fromkeys(m for errors in groups.values() for m in errors))
    shown = [v for errors in groups.values() for v in errors.values() if v is not None and v > 0]
    label = _error_format(shown)
    for method in methods:
        values = [groups[g].get(method) for g in groups]
        fig.add_trace(go.Bar(x=list(groups), y=values, name=method, marker_color=colors.get(method),
                             text=[label(v) if v is not None else "" for v in values],
                             textposition="outside", cliponaxis=False,
                             hovertemplate=method + " %{y:.3g}<extra></extra>"))
    fig.update_layout(title=title, yaxis_title="‖X(W−Ŵ)‖² / ‖XW‖² (log, lower is better)", barmode="group",
                      legend=legend_below(), **{**_LAYOUT, "height": 380, "margin": dict(l=10, r=10, t=40, b=70)})
    fig.update_yaxes(**log_axis(shown, label))
    if shown:  # room above the tallest bar for its label
        fig.update_yaxes(range=[math.log10(min(shown)) - 0.3, math.log10(max(shown)) + 0.5])
    return fig


def wanda_channels(why: Mapping) -> go.Figure:
    """Per input channel: how many weights Wanda keeps that magnitude drops (up) and the reverse (down), beside the
    channel's input norm ‖X_j‖ (the factor Wanda multiplies |W| by)."""
    channels = list(range(len(why["input_norm"])))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=channels, y=why["wanda_only"], name="kept by Wanda, dropped by magnitude",
                         marker_color=ORANGE, hovertemplate="channel %{x}: %{y} weights<extra></extra>"))
    fig.add_trace(go.Bar(x=channels, y=[-v for v in why["magnitude_only"]],
                         name="kept by magnitude, dropped by Wanda", marker_color=GREY,
                         hovertemplate="channel %{x}: %{y} weights<extra></extra>"))
    fig.add_trace(go.Scatter(x=channels, y=why["input_norm"], name="input norm ‖X_j‖", mode="lines",
                             line={"color": BLUE, "width": 1.5},
                             hovertemplate="channel %{x}: ‖X_j‖ = %{y:.3g}<extra></extra>"), secondary_y=True)
    fig.update_layout(title=f"{why['layer']} at {why['pattern']}: where Wanda and magnitude disagree",
                      barmode="relative", bargap=0, legend=legend_below(),
                      **{**_LAYOUT, "height": 400, "margin": dict(l=10, r=10, t=40, b=90)})
    fig.update_xaxes(title_text="input channel")
    fig.update_yaxes(title_text="weights (of the layer's rows)", secondary_y=False)
    fig.update_yaxes(title_text="‖X_j‖₂", secondary_y=True, showgrid=False, rangemode="tozero")
    return fig


def channel_ranges(before: Sequence[float], after: Sequence[float], outlier: int, title: str, y_title: str,
                   after_name: str) -> go.Figure:
    """Per channel max |·| before and after SmoothQuant's migration, log axis, the loudest channel marked."""
    channels = list(range(len(before)))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=channels, y=list(before), name="before", mode="lines", line={"color": GREY},
                             hovertemplate="channel %{x}: %{y:.3g}<extra>before</extra>"))
    fig.add_trace(go.Scatter(x=channels, y=list(after), name=after_name, mode="lines", line={"color": BLUE},
                             hovertemplate="channel %{x}: %{y:.3g}<extra>" + after_name + "</extra>"))
    fig.add_trace(go.Scatter(x=[outlier], y=[before[outlier]], name=f"loudest channel ({outlier})", mode="markers",
                             marker={"color": RED, "size": 10, "symbol": "diamond"},
                             hovertemplate="channel %{x}: %{y:.3g}<extra>loudest</extra>"))
    shown = [v for v in (*before, *after) if v > 0]
    fig.update_layout(title=title, xaxis_title="input channel", yaxis_title=y_title, legend=legend_below(),
                      **{**_LAYOUT, "margin": dict(l=10, r=10, t=40, b=70)})
    fig.update_yaxes(**log_axis(shown, lambda v: f"{v:g}"))
    return fig


def outlier_bars(names: Sequence[str], ratios: Sequence[float], channels: Sequence[int], title: str) -> go.Figure:
    """The layers with the loudest input channels: max |x| of the loudest channel over the median one's."""
    fig = go.Figure(go.Bar(x=list(ratios), y=list(names), orientation="h", marker_color=RED,
                           text=[f"{r:.1f}× (channel {c})" for r, c in zip(ratios, channels)],
                           textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: %{x:.1f}× the median channel<extra></extra>"))
    wide = bool(ratios) and max(ratios) > 20 * min(ratios)  # one 2,000× would flatten every 30× beside it
    fig.update_layout(title=title, xaxis_title="loudest channel's max |x| over the median channel's"
                      + (" (log)" if wide else ""),
                      **{**_LAYOUT, "height": 60 + 26 * len(names), "margin": dict(l=10, r=110, t=40, b=10)})
    fig.update_yaxes(autorange="reversed")
    if wide:
        fig.update_xaxes(**log_axis(list(ratios), lambda v: f"{v:,.0f}×"))
    return fig
