"""Figure builders for the Language-model page: plain numbers in, go.Figure out (no torch)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from compression.core import readable
from compression.plots.axes import PALETTE, legend_below, log_axis, size_axis
from compression.plots.common import _LAYOUT

# One colour per method on every chart: magnitude → Wanda → SparseGPT and RTN → GPTQ/AWQ read at a glance
METHOD_COLORS = {"magnitude": "#9d9da1", "wanda": "#f58518", "sparsegpt": "#e45756", "rtn": "#9d9da1",
                 "gptq": "#4c78a8", "awq": "#54a24b", "smoothquant": "#b279a2", "naive": "#ff9da6"}


def perplexity_curves(points: Sequence[Mapping], x_key: str, x_title: str, title: str,
                      dense_perplexity: float | None = None, live: Mapping | None = None,
                      x_range: tuple[float, float] | None = None) -> go.Figure:
    """One line per series (a method, or a method at one group size or pattern) through points {method, series,
    x_key, perplexity}, coloured by method; an N:M or per-channel variant dotted with its own marker, so a single
    point of it never hides under the method's main line. The dense model as a dashed line, named inside the chart.

    `live`: one extra point {x_key, perplexity, label} drawn as a ring, named beside it (the slider's setting).
    """
    fig = go.Figure()
    series = list(dict.fromkeys(p.get("series", p["method"]) for p in points))
    for name in series:
        mine = sorted((p for p in points if p.get("series", p["method"]) == name), key=lambda p: p[x_key])
        variant = "per-channel" in name or ":" in name  # a variant of the method's main line
        color = METHOD_COLORS.get(mine[0]["method"])
        fig.add_trace(go.Scatter(x=[p[x_key] for p in mine], y=[p["perplexity"] for p in mine], name=name,
                                 mode="lines+markers", line={"color": color, "dash": "dot" if variant else None},
                                 marker={"symbol": "diamond" if variant else "circle", "size": 11 if variant else 8},
                                 text=[p.get("label", name) for p in mine],
                                 hovertemplate="%{text}<br>perplexity %{y:.2f}<extra></extra>"))
    if live is not None:
        fig.add_trace(go.Scatter(x=[live[x_key]], y=[live["perplexity"]], name=live.get("label", "live"),
                                 mode="markers+text", text=[live.get("label", "live")], textposition="top center",
                                 textfont={"size": 11, "color": "#333"}, cliponaxis=False,
                                 marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "#333", "width": 2}},
                                 hovertemplate="%{y:.2f}<extra>" + live.get("label", "live") + "</extra>"))
    values = [p["perplexity"] for p in points] + [v for v in (dense_perplexity, live and live["perplexity"]) if v]
    _dense_line(fig, dense_perplexity, x_range)
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="perplexity (held-out, lower is better, log)",
                      legend=legend_below(), showlegend=True,  # a lone line is named too
                      **{**_LAYOUT, "height": 380, "margin": dict(l=10, r=10, t=40, b=90)})
    # log axis with 1-2-5 ticks only (no bare minor digits), fitted to the numbers: an empty chart would otherwise
    # span 0.1 to 10k around the dense line
    fig.update_yaxes(**_perplexity_axis(values))
    if x_range is not None:
        fig.update_xaxes(range=list(x_range))
    return fig


def _perplexity_axis(values: Sequence[float]) -> dict:
    """A log perplexity axis fitted to `values`, spanning at least ×1.25 (runs a hair from the dense model would
    otherwise get a sliver of an axis whose tick labels overprint each other), ticked 1-2-5 or evenly in between."""
    if not values:
        return dict(type="log")
    low, high = min(values), max(values)
    if high / low < 1.25:
        middle = math.sqrt(low * high)
        low, high = middle / 1.12, middle * 1.12
    low, high = low / 1.05, high * 1.05
    axis = log_axis([low, high], lambda v: f"{v:,.0f}" if v >= 100 else f"{v:g}")
    return {**axis, "range": [math.log10(low), math.log10(high)]}


def _dense_line(fig: go.Figure, dense: float | None, x_range: tuple[float, float] | None) -> None:
    """The dense model's perplexity as a dashed line across the chart, its value written inside the plot area (a
    log axis places annotations in log10 units: add_hline's label landed off the chart)."""
    if dense is None:
        return
    fig.add_hline(y=dense, line_dash="dash", line_color="#333")
    fig.add_annotation(x=1, xref="x domain", y=math.log10(dense), yref="y", text=f"dense {dense:.2f}",
                       showarrow=False, xanchor="right", yanchor="bottom", font={"size": 11, "color": "#333"})


def perplexity_wa(points: Sequence[Mapping], dense_perplexity: float | None = None,
                  title: str = "Perplexity, weights and activations quantized (W·A·)") -> go.Figure:
    """W·A· runs {method, series, wa ("W6A6"), perplexity, label}: one marker line per series over the W·A·
    settings, apart from the weight-only bits chart (their bits are not weight bits alone)."""
    order = sorted({p["wa"] for p in points}, key=lambda wa: -int(wa[1:].split("A")[0]))  # W8A8 before W6A6
    fig = go.Figure()
    for name in dict.fromkeys(p["series"] for p in points):
        mine = sorted((p for p in points if p["series"] == name), key=lambda p: order.index(p["wa"]))
        fig.add_trace(go.Scatter(x=[p["wa"] for p in mine], y=[p["perplexity"] for p in mine], name=name,
                                 mode="lines+markers", line={"color": METHOD_COLORS.get(mine[0]["method"])},
                                 marker={"size": 9}, text=[p.get("label", name) for p in mine],
                                 hovertemplate="%{text}<br>perplexity %{y:.2f}<extra></extra>"))
    values = [p["perplexity"] for p in points] + ([dense_perplexity] if dense_perplexity else [])
    _dense_line(fig, dense_perplexity, None)
    fig.update_layout(title=title, xaxis_title="bits of weights (W) and activations (A)",
                      yaxis_title="perplexity (held-out, lower is better, log)", legend=legend_below(), showlegend=True,
                      **{**_LAYOUT, "height": 380, "margin": dict(l=10, r=10, t=40, b=90)})
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=order)
    fig.update_yaxes(**_perplexity_axis(values))
    return fig


def error_range(*row_sets: Sequence[Mapping]) -> tuple[float, float] | None:
    """(log10 low, log10 high) over the relative errors of several runs: one colour scale for all their heat-maps."""
    values = [r["relative_error"] for rows in row_sets for r in rows if r["relative_error"] > 0]
    if not values:
        return None
    low, high = math.log10(min(values)), math.log10(max(values))
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def _grid(rows: Sequence[Mapping]) -> tuple[list[str], list[int], dict]:
    roles = list(dict.fromkeys(r["role"] for r in rows))
    layers = sorted({r["layer"] for r in rows})
    return roles, layers, {(r["layer"], r["role"]): r["relative_error"] for r in rows}


def _error_ticks(low: float, high: float) -> dict:
    """Colour-bar ticks for log10 errors on [low, high]: powers of ten, with 2 and 5 between them when the range
    spans less than two decades (one lone tick said nothing)."""
    mantissas = (1,) if high - low >= 2 else (1, 2, 5)
    ticks = [math.log10(m) + k for k in range(math.floor(low), math.ceil(high) + 1) for m in mantissas]
    shown = [t for t in ticks if low - 1e-9 <= t <= high + 1e-9] or [low, high]
    return {"tickvals": shown, "ticktext": [f"{10.0 ** t:.2g}" for t in shown]}


def _measured(title: str, tokens: int | None) -> str:
    return title + (f"<br><sup>measured on {tokens:,} calibration tokens</sup>" if tokens else "")


def _map_layout(fig: go.Figure, title: str, layers: int) -> None:
    """A layers × linears map tall enough for its layers (30 for SmolLM2), every layer or every fifth one ticked."""
    fig.update_layout(title=title, xaxis_title="linear", yaxis_title="decoder layer",
                      **{**_LAYOUT, "height": max(320, 110 + 12 * layers), "margin": dict(l=10, r=10, t=60, b=10)})
    fig.update_yaxes(autorange="reversed", dtick=1 if layers <= 16 else 5)


def layer_error_heatmap(rows: Sequence[Mapping], title: str, z_range: tuple[float, float] | None = None,
                        tokens: int | None = None) -> go.Figure:
    """Relative output error ‖WX−ŴX‖²/‖WX‖² from rows {layer, role, relative_error}: layers × roles, coloured by
    log10 of the error on `z_range` (from error_range: the same scale for every run drawn beside it)."""
    roles, layers, grid = _grid(rows)
    z = [[math.log10(grid[(layer, role)]) if grid.get((layer, role), 0) > 0 else None for role in roles]
         for layer in layers]
    text = [[grid.get((layer, role)) for role in roles] for layer in layers]
    low, high = z_range or error_range(rows) or (-3.0, 0.0)
    fig = go.Figure(go.Heatmap(z=z, x=roles, y=layers, customdata=text, colorscale="Reds", zmin=low, zmax=high,
                               colorbar={"title": "rel. error", **_error_ticks(low, high)},
                               hovertemplate="layer %{y} · %{x}<br>‖WX−ŴX‖²/‖WX‖² = %{customdata:.3g}<extra></extra>"))
    _map_layout(fig, _measured(title, tokens), len(layers))
    return fig


def layer_error_ratio(rows_a: Sequence[Mapping], rows_b: Sequence[Mapping], title: str,
                      tokens: int | None = None) -> go.Figure:
    """Run A's relative error over run B's per layer and linear, on a log2 scale centred on 1 (blue: A lower)."""
    roles, layers, a = _grid(rows_a)
    b = _grid(rows_b)[2]

    def ratio(key) -> float | None:
        return math.log2(a[key] / b[key]) if a.get(key, 0) > 0 and b.get(key, 0) > 0 else None
    z = [[ratio((layer, role)) for role in roles] for layer in layers]
    shown = [abs(v) for row in z for v in row if v is not None]
    reach = max(1, math.ceil(max(shown, default=1)))
    ticks = list(range(-reach, reach + 1, max(1, reach // 3)))
    fig = go.Figure(go.Heatmap(z=z, x=roles, y=layers, colorscale="RdBu_r", zmid=0, zmin=-reach, zmax=reach,
                               colorbar={"title": "A / B", "tickvals": ticks,
                                         "ticktext": [f"×{2.0 ** t:g}" if t >= 0 else f"×1/{2.0 ** -t:g}"
                                                      for t in ticks]},
                               hovertemplate="layer %{y} · %{x}<br>A / B = 2^%{z:.2f}<extra></extra>"))
    _map_layout(fig, _measured(title, tokens), len(layers))
    return fig


def size_bars(labels: Sequence[str], sizes_bytes: Sequence[int], title: str = "File size") -> go.Figure:
    """Bytes of each file (the fp16 model first), labelled in MiB and as a fraction of the first."""
    base = sizes_bytes[0] if sizes_bytes else 1
    fig = go.Figure(go.Bar(x=list(labels), y=[s / 2**20 for s in sizes_bytes],
                           text=[f"{s / 2**20:.2f} MiB ({s / base:.0%})" for s in sizes_bytes],
                           textposition="outside", cliponaxis=False,
                           marker_color=["#9d9da1"] + ["#4c78a8"] * (len(sizes_bytes) - 1)))
    # labels too small to read are left out (8 bars at half width): the hover still gives each
    fig.update_layout(title=title, yaxis_title="MiB", uniformtext={"minsize": 10, "mode": "hide"}, **_LAYOUT)
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
