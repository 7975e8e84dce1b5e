"""Pure figure builders for the Pruning page: plain numbers in, plotly figures out (no torch, no streamlit).

The figures are redrawn on every slider move, so they are written as plain plotly specs and wrapped without
plotly's per-property validation (10-60 ms per figure here, more than all the pruning math together).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from compression.core.histogram import Histogram
from compression.plots.axes import PALETTE, legend_below, margin, percent_axis

_COLORS = PALETTE[:8]  # eight colours, then they repeat


def _figure(data: list[dict], layout: dict) -> go.Figure:
    # No named template: it would need validation to resolve, and Streamlit's chart theme styles the figure anyway.
    base = dict(margin=margin(), height=320)
    return go.Figure({"data": data, "layout": {**base, **layout}}, _validate=False)


def _hline(y: float, text: str, color: str = "#888", dash: str = "dash", position: str = "left") -> tuple[dict, dict]:
    shape = dict(type="line", xref="paper", x0=0, x1=1, y0=y, y1=y, line=dict(color=color, dash=dash))
    note = dict(xref="paper", x=0 if position == "left" else 1, xanchor=position, y=y, yanchor="top", text=text,
                showarrow=False, font=dict(color=color, size=11))
    return shape, note


def pruning_histogram(before: Histogram, after: Histogram, threshold: float, log_y: bool = False,
                      title: str = "Weights before and after", decimals: int = 4) -> go.Figure:
    """All weights (before) and the survivors (after) on the same bins; ±τ marked."""
    width = before.edges[1] - before.edges[0] if len(before.edges) > 1 else 1.0
    x = np.asarray(before.centers, dtype=np.float32)
    data = [dict(type="bar", x=x, y=np.asarray(before.counts), width=width, name="before",
                 marker=dict(color="#4c78a8"), opacity=0.55),
            dict(type="bar", x=x, y=np.asarray(after.counts), width=width, name="kept",
                 marker=dict(color="#f58518"), opacity=0.85)]
    shapes = [dict(type="line", yref="paper", y0=0, y1=1, x0=x, x1=x, line=dict(color="#e45756", dash="dash"))
              for x in ((-threshold, threshold) if threshold > 0 else ())]
    return _figure(data, dict(
        title=dict(text=f"{title} (τ = {threshold:.{decimals}f})" if threshold > 0 else title), barmode="overlay", bargap=0,
        margin=margin(left=80, bottom=100),
        shapes=shapes,
        xaxis=dict(title=dict(text="weight value")),
        yaxis=dict(title=dict(text="count"), type="log" if log_y else "linear", dtick=1 if log_y else None),
        legend=legend_below()))  # under the plot: above it, it covered the title


def layer_sparsity_bars(layer_sparsity: Mapping[str, float], sizes: Mapping[str, int]) -> go.Figure:
    """Sparsity of each layer; the hover shows how many weights the layer has."""
    names = list(layer_sparsity)
    data = [dict(type="bar", x=names, y=[layer_sparsity[n] for n in names], marker=dict(color="#4c78a8"),
                 text=[f"{layer_sparsity[n]:.0%}" for n in names], textposition="outside",
                 customdata=[sizes.get(n, 0) for n in names],
                 hovertemplate="%{x}<br>sparsity %{y:.1%}<br>%{customdata:,} weights<extra></extra>")]
    return _figure(data, dict(title=dict(text="Sparsity per layer"), margin=margin(left=84, bottom=38),
                              yaxis=dict(title=dict(text="sparsity"), range=[0, 1.1], tickformat=".0%")))


def accuracy_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                    current: tuple[float, float] | None, baseline: float, title: str = "Accuracy vs sparsity",
                    current_name: str = "current") -> go.Figure:
    """One measured line per method, the dense accuracy as a dashed line and the current setting as a point."""
    data = [dict(type="scatter", x=list(x), y=list(y), mode="lines+markers", name=name,
                 line=dict(color=_COLORS[i % len(_COLORS)]), marker=dict(size=5))
            for i, (name, (x, y)) in enumerate(curves.items())]
    if current is not None:
        data.append(dict(type="scatter", x=[current[0]], y=[current[1]], mode="markers", name=current_name,
                         marker=dict(color="#e45756", size=14, symbol="diamond")))
    shape, note = _hline(baseline, "dense")
    return _figure(data, dict(
        title=dict(text=title), shapes=[shape], annotations=[note], margin=margin(left=84, bottom=100, right=20),
        xaxis=dict(title=dict(text="sparsity"), tickformat=".0%", range=[-0.02, 1.02]),
        yaxis=dict(title=dict(text="held-out accuracy"), tickformat=".0%", range=[0, 1.02]),
        legend=legend_below()))


def accuracy_curve(amounts: Sequence[float], accuracies: Sequence[float], current: tuple[float, float] | None,
                   baseline: float, title: str = "Accuracy vs sparsity", current_name: str = "current",
                   curve_name: str = "pruned") -> go.Figure:
    """One measured curve (see accuracy_curves)."""
    return accuracy_curves({curve_name: (amounts, accuracies)}, current, baseline, title, current_name)


def mask_heatmap(grid: Sequence[Sequence[float]], layer: str, shape: Sequence[int]) -> go.Figure:
    """A layer's mask, one cell per weight (rows: output units; columns: inputs), cropped to its top-left corner."""
    rows, cols = len(grid), len(grid[0]) if grid else 0
    rest = 1
    for d in shape[1:]:
        rest *= d
    note = "" if (rows, cols) == (shape[0], rest) else f"; first {rows} units × first {cols} inputs shown"
    # a numpy array travels as one base64 block instead of rows x cols JSON numbers
    data = [dict(type="heatmap", z=np.asarray(grid, dtype=np.float32), zmin=0, zmax=1,
                 colorscale=[[0, "#f4f4f4"], [1, "#1f4e79"]], showscale=False,
                 hovertemplate="unit %{y}, input %{x}<br>kept: %{z}<extra></extra>")]
    return _figure(data, dict(title=dict(text=f"Mask of {layer} ({' x '.join(map(str, shape))}{note})"),
                              margin=margin(left=75, bottom=75),
                              xaxis=dict(title=dict(text="input (dark: kept, light: removed)")),
                              yaxis=dict(title=dict(text="output unit"), autorange="reversed")))


def finetune_curves(runs: Mapping[str, Sequence[dict]], baseline: float | None = None,
                    oneshot: float | None = None) -> go.Figure:
    """Test accuracy per epoch of each run (e.g. one-shot + fine-tune vs gradual), beside dense and one-shot."""
    data = []
    for i, (label, steps) in enumerate(runs.items()):
        acc = [s for s in steps if s.get("test_accuracy") is not None]
        data.append(dict(type="scatter", x=[s["epoch"] for s in acc], y=[s["test_accuracy"] for s in acc],
                         name=label, mode="lines+markers", line=dict(color=_COLORS[i % len(_COLORS)])))
    lines = []
    if baseline is not None:
        lines.append(_hline(baseline, "dense"))
    if oneshot is not None:
        lines.append(_hline(oneshot, "one-shot, no training", "#e45756", "dot", "right"))
    values = [y for trace in data for y in trace["y"]] + [v for v in (baseline, oneshot) if v is not None]
    return _figure(data, dict(title=dict(text="Fine-tuning: test accuracy per epoch"),
                              shapes=[s for s, _ in lines], annotations=[a for _, a in lines],
                              xaxis=dict(title=dict(text="epoch")), legend=legend_below(),
                              yaxis=dict(title=dict(text="held-out accuracy"), **percent_axis(values))))


def run_progress(steps: Sequence[dict], title: str) -> go.Figure:
    """Live curve of one run: training loss, test accuracy and (gradual runs) the scheduled sparsity."""
    acc = [s for s in steps if s.get("test_accuracy") is not None]
    data = [dict(type="scatter", x=[s["epoch"] for s in steps], y=[s["loss"] for s in steps], name="train loss",
                 mode="lines", line=dict(color="#4c78a8")),
            dict(type="scatter", x=[s["epoch"] for s in acc], y=[s["test_accuracy"] for s in acc],
                 name="test accuracy", mode="lines+markers", yaxis="y2", line=dict(color="#54a24b"))]
    if any("sparsity" in s.get("parts", {}) for s in steps):
        data.append(dict(type="scatter", x=[s["epoch"] for s in steps],
                         y=[s["parts"].get("sparsity") for s in steps], name="sparsity", mode="lines",
                         yaxis="y2", line=dict(color="#e45756", dash="dot")))
    return _figure(data, dict(title=dict(text=title), xaxis=dict(title=dict(text="epoch")),
                              yaxis=dict(title=dict(text="loss")), legend=legend_below(),
                              yaxis2=dict(title=dict(text="accuracy / sparsity"), overlaying="y", side="right",
                                          range=[0, 1.02], tickmode="linear", tick0=0, dtick=0.2,
                                          tickformat=".0%", showgrid=False)))


def sensitivity_lines(layers: Sequence[str], amounts: Sequence[float], accuracy: Sequence[Sequence[float]],
                      baseline: float) -> go.Figure:
    """Accuracy with each layer pruned alone: flat lines are robust layers, steep ones sensitive."""
    data = [dict(type="scatter", x=list(amounts), y=list(row), name=layer, mode="lines+markers",
                 line=dict(color=_COLORS[i % len(_COLORS)])) for i, (layer, row) in enumerate(zip(layers, accuracy))]
    shape, note = _hline(baseline, "dense")
    return _figure(data, dict(title=dict(text="Sensitivity: each layer pruned alone"), shapes=[shape],
                              annotations=[note],
                              xaxis=dict(title=dict(text="sparsity of that layer"), tickformat=".0%"),
                              yaxis=dict(title=dict(text="held-out accuracy"), tickformat=".0%", range=[0, 1.02])))
