"""Pure figure builders for the Pruning page: plain numbers in, plotly figures out (no torch, no streamlit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from .metrics import Histogram
from .plots import weight_histogram

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, template="plotly_white")
_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d")


def pruning_histogram(before: Histogram, after: Histogram, threshold: float, log_y: bool = False,
                      title: str = "Weights before and after") -> go.Figure:
    """All weights (before) and the survivors (after) on the same bins; ±τ marked."""
    markers = (-threshold, threshold) if threshold > 0 else ()
    fig = weight_histogram(before, f"{title} (τ = {threshold:.4g})", log_y=log_y, markers=markers, after=after)
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


def layer_sparsity_bars(layer_sparsity: Mapping[str, float], sizes: Mapping[str, int]) -> go.Figure:
    """Sparsity of each layer; the hover shows how many weights the layer has."""
    names = list(layer_sparsity)
    fig = go.Figure(go.Bar(
        x=names, y=[layer_sparsity[n] for n in names], marker_color="#4c78a8",
        text=[f"{layer_sparsity[n]:.0%}" for n in names], textposition="outside",
        customdata=[sizes.get(n, 0) for n in names],
        hovertemplate="%{x}<br>sparsity %{y:.1%}<br>%{customdata:,} weights<extra></extra>"))
    fig.update_layout(title="Sparsity per layer", yaxis=dict(title="sparsity", range=[0, 1.1], tickformat=".0%"),
                      **_LAYOUT)
    return fig


def accuracy_curve(amounts: Sequence[float], accuracies: Sequence[float], current: tuple[float, float] | None,
                   baseline: float, title: str = "Accuracy vs sparsity") -> go.Figure:
    """The measured curve, the dense accuracy as a dashed line and the current setting as a red point."""
    fig = go.Figure(go.Scatter(x=list(amounts), y=list(accuracies), mode="lines+markers", name="pruned",
                               line_color="#4c78a8"))
    fig.add_hline(y=baseline, line_dash="dash", line_color="#888", annotation_text="dense",
                  annotation_position="bottom left")
    if current is not None:
        fig.add_trace(go.Scatter(x=[current[0]], y=[current[1]], mode="markers", name="current",
                                 marker=dict(color="#e45756", size=14, symbol="diamond")))
    fig.update_layout(title=title, xaxis=dict(title="sparsity", tickformat=".0%", range=[-0.02, 1.02]),
                      yaxis=dict(title="held-out accuracy", tickformat=".0%", range=[0, 1.02]), **_LAYOUT)
    return fig


def mask_heatmap(grid: Sequence[Sequence[float]], layer: str, shape: Sequence[int]) -> go.Figure:
    """Kept fraction per cell of a layer's mask (rows: output units; columns: inputs, downsampled if large)."""
    rows, cols = len(grid), len(grid[0]) if grid else 0
    note = "" if (rows, cols) == (shape[0], _rest(shape)) else f", shown as {rows}x{cols} blocks"
    fig = go.Figure(go.Heatmap(z=[list(r) for r in grid], zmin=0, zmax=1, colorscale=[[0, "#f4f4f4"], [1, "#1f4e79"]],
                               colorbar=dict(title="kept", tickformat=".0%"),
                               hovertemplate="row %{y}, col %{x}<br>kept %{z:.0%}<extra></extra>"))
    fig.update_layout(title=f"Mask of {layer} ({' x '.join(map(str, shape))}{note})",
                      xaxis_title="inputs", yaxis=dict(title="output units", autorange="reversed"), **_LAYOUT)
    return fig


def finetune_curves(runs: Mapping[str, Sequence[dict]], baseline: float | None = None,
                    oneshot: float | None = None) -> go.Figure:
    """Test accuracy per epoch of each run (e.g. one-shot + fine-tune vs gradual), beside dense and one-shot."""
    fig = go.Figure()
    for i, (label, steps) in enumerate(runs.items()):
        acc = [s for s in steps if s.get("test_accuracy") is not None]
        fig.add_trace(go.Scatter(x=[s["epoch"] for s in acc], y=[s["test_accuracy"] for s in acc], name=label,
                                 mode="lines+markers", line_color=_COLORS[i % len(_COLORS)]))
    if baseline is not None:
        fig.add_hline(y=baseline, line_dash="dash", line_color="#888", annotation_text="dense")
    if oneshot is not None:
        fig.add_hline(y=oneshot, line_dash="dot", line_color="#e45756", annotation_text="one-shot, no training",
                      annotation_position="bottom right")
    fig.update_layout(title="Fine-tuning: test accuracy per epoch", xaxis_title="epoch",
                      yaxis=dict(title="held-out accuracy", tickformat=".0%"), **_LAYOUT)
    return fig


def run_progress(steps: Sequence[dict], title: str) -> go.Figure:
    """Live curve of one run: training loss, test accuracy and (gradual runs) the scheduled sparsity."""
    fig = go.Figure(go.Scatter(x=[s["epoch"] for s in steps], y=[s["loss"] for s in steps], name="train loss",
                               mode="lines", line_color="#4c78a8"))
    acc = [s for s in steps if s.get("test_accuracy") is not None]
    fig.add_trace(go.Scatter(x=[s["epoch"] for s in acc], y=[s["test_accuracy"] for s in acc],
                             name="test accuracy", mode="lines+markers", yaxis="y2", line_color="#54a24b"))
    if any("sparsity" in s.get("parts", {}) for s in steps):
        fig.add_trace(go.Scatter(x=[s["epoch"] for s in steps], y=[s["parts"].get("sparsity") for s in steps],
                                 name="sparsity", mode="lines", yaxis="y2", line=dict(color="#e45756", dash="dot")))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis=dict(title="loss"),
                      yaxis2=dict(title="accuracy / sparsity", overlaying="y", side="right", range=[0, 1.02]),
                      **_LAYOUT)
    return fig


def sensitivity_lines(layers: Sequence[str], amounts: Sequence[float], accuracy: Sequence[Sequence[float]],
                      baseline: float) -> go.Figure:
    """Accuracy with each layer pruned alone: flat lines are robust layers, steep ones sensitive."""
    fig = go.Figure()
    for i, (layer, row) in enumerate(zip(layers, accuracy)):
        fig.add_trace(go.Scatter(x=list(amounts), y=list(row), name=layer, mode="lines+markers",
                                 line_color=_COLORS[i % len(_COLORS)]))
    fig.add_hline(y=baseline, line_dash="dash", line_color="#888", annotation_text="dense")
    fig.update_layout(title="Sensitivity: each layer pruned alone",
                      xaxis=dict(title="sparsity of that layer", tickformat=".0%"),
                      yaxis=dict(title="held-out accuracy", tickformat=".0%", range=[0, 1.02]), **_LAYOUT)
    return fig


def _rest(shape: Sequence[int]) -> int:
    out = 1
    for d in shape[1:]:
        out *= d
    return out
