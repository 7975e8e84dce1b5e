"""Figure builders for the Language-model page: plain numbers in, go.Figure out (no torch)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from compression.core import readable
from compression.plots.axes import PALETTE, legend_below, size_axis
from compression.plots.common import _LAYOUT

# One colour per method on every chart: magnitude → Wanda → SparseGPT and RTN → GPTQ/AWQ read at a glance
METHOD_COLORS = {"magnitude": "#9d9da1", "wanda": "#f58518", "sparsegpt": "#e45756", "rtn": "#9d9da1",
                 "gptq": "#4c78a8", "awq": "#54a24b", "smoothquant": "#b279a2", "naive": "#ff9da6"}


def perplexity_curves(points: Sequence[Mapping], x_key: str, x_title: str, title: str,
                      dense_perplexity: float | None = None, live: Mapping | None = None,
                      x_range: tuple[float, float] | None = None) -> go.Figure:
    """One line per series (a method, or a method at one group size) through points {method, series, x_key,
    perplexity}, coloured by method; the dense model as a dashed line.

    `live`: one extra point {x_key, perplexity, label} drawn as a ring (the slider's current setting).
    """
    fig = go.Figure()
    series = list(dict.fromkeys(p.get("series", p["method"]) for p in points))
    for name in series:
        mine = sorted((p for p in points if p.get("series", p["method"]) == name), key=lambda p: p[x_key])
        dash = "dot" if "per-channel" in name or ":" in name else None  # a variant of the method's main line
        fig.add_trace(go.Scatter(x=[p[x_key] for p in mine], y=[p["perplexity"] for p in mine], name=name,
                                 mode="lines+markers",
                                 line={"color": METHOD_COLORS.get(mine[0]["method"]), "dash": dash},
                                 text=[p.get("label", name) for p in mine],
                                 hovertemplate="%{text}<br>perplexity %{y:.2f}<extra></extra>"))
    if live is not None:
        fig.add_trace(go.Scatter(x=[live[x_key]], y=[live["perplexity"]], name=live.get("label", "live"),
                                 mode="markers", marker={"size": 16, "color": "rgba(0,0,0,0)",
                                                             "line": {"color": "#333", "width": 2}},
                                 hovertemplate="%{y:.2f}<extra>" + live.get("label", "live") + "</extra>"))
    if dense_perplexity is not None:
        fig.add_hline(y=dense_perplexity, line_dash="dash", line_color="#333",
                      annotation_text=f"dense {dense_perplexity:.2f}", annotation_position="bottom right")
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="perplexity (held-out, lower is better, log)",
                      **_LAYOUT)
    values = [p["perplexity"] for p in points] + [v for v in (dense_perplexity, live and live["perplexity"]) if v]
    # log axis, fitted to the numbers (an empty chart would otherwise span 0.1 to 10k around the dense line)
    fig.update_yaxes(type="log", range=[math.log10(min(values) / 1.2), math.log10(max(values) * 1.2)]
                     if values else None)
    if x_range is not None:
        fig.update_xaxes(range=list(x_range))
    return fig


def layer_error_heatmap(rows: Sequence[Mapping], title: str) -> go.Figure:
    """Relative output error ‖WX−ŴX‖²/‖WX‖² from rows {layer, role, relative_error}: layers × roles."""
    roles = list(dict.fromkeys(r["role"] for r in rows))
    layers = sorted({r["layer"] for r in rows})
    grid = {(r["layer"], r["role"]): r["relative_error"] for r in rows}
    z = [[grid.get((layer, role)) for role in roles] for layer in layers]
    fig = go.Figure(go.Heatmap(z=z, x=roles, y=layers, colorscale="Reds", colorbar={"title": "rel. error"},
                               hovertemplate="layer %{y} · %{x}<br>‖WX−ŴX‖²/‖WX‖² = %{z:.3g}"
                                             "<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="linear", yaxis_title="decoder layer", **_LAYOUT)
    fig.update_yaxes(autorange="reversed", dtick=1)
    return fig


def channel_max_chart(values: Sequence[float], title: str, top: int = 5) -> go.Figure:
    """Per-input-channel max|x| as bars, the `top` largest marked: the outliers SmoothQuant and AWQ act on."""
    values = list(values)
    order = sorted(range(len(values)), key=lambda i: -values[i])[:top]
    colors = ["#e45756" if i in set(order) else "#4c78a8" for i in range(len(values))]
    fig = go.Figure(go.Bar(x=list(range(len(values))), y=values, marker_color=colors, name="max |x|",
                           hovertemplate="channel %{x}<br>max |x| = %{y:.3g}<extra></extra>"))
    median = sorted(values)[len(values) // 2] if values else 0.0
    if values:
        fig.add_hline(y=median, line_dash="dot", line_color="#333",
                      annotation_text=f"median {median:.3g}", annotation_position="top left")
    fig.update_layout(title=title, xaxis_title="input channel", yaxis_title="max |x| over calibration tokens",
                      bargap=0, **_LAYOUT)
    return fig


def size_bars(labels: Sequence[str], sizes_bytes: Sequence[int], title: str = "File size") -> go.Figure:
    """Bytes of each file (the fp16 model first), labelled in MiB and as a fraction of the first."""
    base = sizes_bytes[0] if sizes_bytes else 1
    fig = go.Figure(go.Bar(x=list(labels), y=[s / 2**20 for s in sizes_bytes],
                           text=[f"{s / 2**20:.2f} MiB ({s / base:.0%})" for s in sizes_bytes],
                           textposition="outside", cliponaxis=False,
                           marker_color=["#9d9da1"] + ["#4c78a8"] * (len(sizes_bytes) - 1)))
    fig.update_layout(title=title, yaxis_title="MiB", **_LAYOUT)
    return fig


def perplexity_vs_size(sizes_bytes: Sequence[float], perplexities: Sequence[float], labels: Sequence[str],
                       models: Sequence[str] | None = None,
                       title: str = "Language models: perplexity vs size") -> go.Figure:
    """Recorded language-model runs: lower-left is better (smaller file, lower perplexity).

    Up to ten runs each get a colour and a legend entry; more runs get a colour per model (up to ten models),
    else one trace. Each run is named on hover: text beside the points piled up where runs have similar sizes.
    """
    if models is not None and len(models) != len(labels):
        raise ValueError(f"{len(models)} models for {len(labels)} runs")
    groups = list(labels) if len(labels) <= len(PALETTE) else list(models or [])
    if not groups or len(set(groups)) > len(PALETTE):
        groups = ["runs"] * len(labels)
    hover = "%{text}<br>%{customdata}<br>perplexity %{y:.2f}<extra></extra>"
    data = []
    for i, group in enumerate(dict.fromkeys(groups)):
        members = [j for j, g in enumerate(groups) if g == group]
        data.append(go.Scatter(x=[sizes_bytes[j] for j in members], y=[perplexities[j] for j in members],
                               mode="markers", name=group, text=[labels[j] for j in members],
                               customdata=[readable.size(sizes_bytes[j]) for j in members], hovertemplate=hover,
                               marker={"size": 10, "color": PALETTE[i % len(PALETTE)]}))
    fig = go.Figure(data)
    fig.update_layout(title=title, xaxis_title="packed file size (log)", yaxis_title="perplexity (held-out)",
                      legend=legend_below(), **_LAYOUT)
    fig.update_xaxes(**size_axis(sizes_bytes))
    return fig
