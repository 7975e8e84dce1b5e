"""The sweep chart: each finished cell a point, one line per method and calibration, filled in as cells arrive
(plain numbers in, a plotly figure out; no torch, no streamlit)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from compression.core import readable
from compression.plots.axes import PALETTE, legend_below, log_axis, margin, percent_axis

AXIS_TITLES = {"sparsity": "sparsity (fraction of weights zeroed)", "bits": "weight bits"}


def sweep_chart(points: Sequence[dict], metric: str, x: str, dense: float | None = None,
                cells: int | None = None) -> go.Figure:
    """Points {series, x, y, label}: accuracy (a fraction, higher is better) or perplexity (log axis, lower is
    better) against sparsity or bits; the dense model as a dashed line; `cells` in the title as 'N of M cells'."""
    series: dict[str, list[dict]] = {}
    for point in sorted(points, key=lambda p: p["x"]):
        series.setdefault(point["series"], []).append(point)
    data = [dict(type="scatter", x=[p["x"] for p in shown], y=[p["y"] for p in shown], name=name,
                 mode="lines+markers", text=[p["label"] for p in shown], marker=dict(size=8),
                 line=dict(color=PALETTE[i % len(PALETTE)]),
                 hovertemplate="%{text}<br>%{y}<extra></extra>" if metric == "perplexity" else
                 "%{text}<br>%{y:.1%}<extra></extra>")
            for i, (name, shown) in enumerate(series.items())]
    values = [p["y"] for p in points] + ([dense] if dense is not None else [])
    if metric == "perplexity":
        low, high = min(values), max(values)
        pad = max(1.25, (high / low) ** 0.1) if low > 0 else 1.25  # a hair of room, at least ×1.25 overall
        yaxis = {**log_axis(values, readable.perplexity), "title": dict(text="perplexity (lower is better)"),
                 "range": [math.log10(low / pad ** 0.5), math.log10(high * pad ** 0.5)]}
    else:
        yaxis = {**percent_axis(values), "title": dict(text="held-out accuracy")}
    xaxis = dict(title=dict(text=AXIS_TITLES[x]))
    if x == "sparsity":
        xaxis.update(tickformat=".0%")
    else:
        xaxis.update(tickmode="linear", dtick=1)
    shapes, notes = [], []
    if dense is not None:
        shapes.append(dict(type="line", xref="paper", x0=0, x1=1, y0=dense, y1=dense,
                           line=dict(color="#888", dash="dash")))
        # an annotation on a log axis is placed in log10 units (a shape in data units)
        label = f"dense model {readable.perplexity(dense)}" if metric == "perplexity" else \
            f"dense model {readable.percent(dense)}"
        notes.append(dict(xref="paper", x=0, xanchor="left", yanchor="bottom", text=label, showarrow=False,
                          y=math.log10(dense) if metric == "perplexity" else dense, font=dict(color="#888", size=11)))
    what = "Perplexity" if metric == "perplexity" else "Accuracy"
    title = f"{what} vs {'sparsity' if x == 'sparsity' else 'bits'}" + (
        f" ({len(points)} of {cells} cells)" if cells is not None else "")
    layout = dict(title=dict(text=title), xaxis=xaxis, yaxis=yaxis, shapes=shapes, annotations=notes, height=340,
                  legend=legend_below(), margin=margin(left=84, bottom=110, right=20))
    return go.Figure({"data": data, "layout": layout}, _validate=False)
