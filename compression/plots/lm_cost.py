"""Figure builders for what a compressed language model buys: quality against measured decode speed, with memory as
the marker size (plain numbers in, go.Figure out; no torch)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from compression.core import readable
from compression.plots.axes import PALETTE, legend_below, log_axis, size_axis
from compression.plots.common import _LAYOUT

MIB = 2 ** 20


def _marker_sizes(memory_bytes: Sequence[float | None]) -> list[float]:
    """Marker diameters 10–40 px, their area proportional to memory (a run with no measurement: 10 px)."""
    known = [m for m in memory_bytes if m]
    top = max(known, default=1.0)
    return [10 + 30 * math.sqrt(m / top) if m else 10 for m in memory_bytes]


def quality_vs_speed(points: Sequence[Mapping], title: str = "Quality against speed (batch 1)") -> go.Figure:
    """Each point {label, tokens_per_s, perplexity, memory_bytes, dense (bool)}: decode tokens/s across (measured),
    perplexity up (lower is better), marker area ∝ the model's memory (measured). Better runs sit lower right."""
    fig = go.Figure()
    sizes = _marker_sizes([p.get("memory_bytes") for p in points])
    hover = "%{text}<br>%{x:.1f} tokens/s · perplexity %{y:.2f}<br>%{customdata}<extra></extra>"
    for i, (p, size) in enumerate(zip(points, sizes)):
        memory = f"memory {readable.size(p['memory_bytes'])}" if p.get("memory_bytes") else "memory not measured"
        dense = bool(p.get("dense"))
        fig.add_trace(go.Scatter(
            x=[p["tokens_per_s"]], y=[p["perplexity"]], mode="markers", name=p["label"], text=[p["label"]],
            customdata=[memory], hovertemplate=hover,
            marker={"size": size, "color": "#333" if dense else PALETTE[i % len(PALETTE)],  # an open symbol's outline
                    "symbol": "diamond-open" if dense else "circle", "opacity": 1.0 if dense else 0.8,
                    "line": {"width": 2, "color": "#333" if dense else PALETTE[i % len(PALETTE)]}}))
    fig.update_layout(title=title, xaxis_title="decode tokens/s (measured, log)",
                      yaxis_title="perplexity (held-out, lower is better, log)", legend=legend_below(),
                      **{**_LAYOUT, "height": 440})
    fig.update_xaxes(**log_axis([p["tokens_per_s"] for p in points], lambda v: f"{v:g}"))
    fig.update_yaxes(**log_axis([p["perplexity"] for p in points], lambda v: f"{v:.4g}"))
    return fig


def perplexity_vs_cost(xs: Sequence[float], perplexities: Sequence[float], labels: Sequence[str],
                       groups: Sequence[str], x_unit: str, title: str) -> go.Figure:
    """Recorded language-model runs against a measured cost: `x_unit` "tokens/s" (decode, batch 1: right is
    better) or "bytes" (peak memory: left is better). One colour per group (a model on one evaluation)."""
    hover = "%{text}<br>%{customdata}<br>perplexity %{y:.2f}<extra></extra>"
    fmt = (lambda v: f"{v:.1f} tokens/s") if x_unit == "tokens/s" else readable.size
    data = []
    for i, group in enumerate(dict.fromkeys(groups)):
        members = [j for j, g in enumerate(groups) if g == group]
        data.append(go.Scatter(x=[xs[j] for j in members], y=[perplexities[j] for j in members], mode="markers",
                               name=group, text=[labels[j] for j in members],
                               customdata=[fmt(xs[j]) for j in members], hovertemplate=hover,
                               marker={"size": 10, "color": PALETTE[i % len(PALETTE)]}))
    fig = go.Figure(data)
    x_title = "decode tokens/s (batch 1, measured, log)" if x_unit == "tokens/s" else "peak memory (measured, log)"
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="perplexity (held-out, log, lower is better)",
                      legend=legend_below(), **{**_LAYOUT, "height": 420})
    fig.update_xaxes(**(log_axis(xs, lambda v: f"{v:g}") if x_unit == "tokens/s" else size_axis(xs)))
    fig.update_yaxes(**log_axis(perplexities, lambda v: f"{v:,.0f}" if v >= 100 else f"{v:.4g}"))
    return fig
