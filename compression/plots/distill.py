"""Pure figures for the Distillation page: plain numbers in, plotly figures out (no torch, no streamlit)."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from functools import cache

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from compression.plots.axes import legend_below, percent_axis

_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), template="plotly_white")
STUDENT, SCRATCH, TEACHER = "#4c78a8", "#f58518", "#54a24b"


def distill_curves(rows: Sequence[dict], teacher_accuracy: float | None = None,
                   total_epochs: float | None = None) -> go.Figure:
    """Left: the student's loss split into hard and soft parts (and the scratch loss); right: test accuracy."""
    epochs = [r["epoch"] for r in rows]

    def line(y, name, color, axis="", dash=None, width=2, markers=False, x=None):
        trace = dict(type="scatter", x=epochs if x is None else x, y=y, name=name, xaxis=f"x{axis}", yaxis=f"y{axis}",
                     mode="lines+markers" if markers else "lines", line=dict(color=color, dash=dash, width=width))
        if not axis:  # the log loss axis cannot draw a zero: such a point is left out and the line joins across it
            trace.update(y=[v if v is not None and v > 0 else None for v in y], connectgaps=True)
        return trace

    # The parts first and thin, the total last and wide: a part that is almost all of the total (α near 0) sits
    # under the total line instead of hiding it.
    data = [line([r.get("hard") for r in rows], "student: hard part α·CE(y, s)", STUDENT, dash="dot", width=1.5),
            line([r.get("soft") for r in rows], "student: soft part (1−α)·T²·KL", "#9467bd", dash="dash", width=1.5)]
    if any(r.get("hint") is not None for r in rows):
        data.append(line([r.get("hint") for r in rows], "student: hint (feature MSE)", "#8c564b", dash="dashdot"))
    data.append(line([r["scratch_loss"] for r in rows], "scratch: CE on labels", SCRATCH))
    data.append(line([r["loss"] for r in rows], "student: total loss", STUDENT, width=3))
    evaluated = [r for r in rows if r.get("student_accuracy") is not None]
    x_acc = [r["epoch"] for r in evaluated]
    data.append(line([r["student_accuracy"] for r in evaluated], "distilled student", STUDENT, "2", width=3,
                     markers=True, x=x_acc))
    data.append(line([r["scratch_accuracy"] for r in evaluated], "scratch student", SCRATCH, "2", markers=True,
                     x=x_acc))
    if teacher_accuracy is not None:
        end = total_epochs or (max(epochs) if epochs else 1.0)
        data.append(line([teacher_accuracy] * 2, f"teacher ({teacher_accuracy:.1%})", TEACHER, "2", dash="dash",
                         x=[0, end]))
    layout = _curves_layout()
    accuracies = [v for r in evaluated for v in (r["student_accuracy"], r["scratch_accuracy"]) if v is not None]
    if accuracies:  # zoom on the data: 96% and 97% must not sit on one line of a 0-100% axis
        layout["yaxis2"].update(percent_axis(accuracies + ([teacher_accuracy] if teacher_accuracy is not None else [])))
    losses = [v for trace in data if trace["yaxis"] == "y" for v in trace["y"] if v is not None]
    if losses:  # the log axis spans every loss line (plotly's autorange let the scratch loss fall off the bottom)
        layout["yaxis"]["range"] = [math.floor(math.log10(min(losses))), math.ceil(math.log10(max(losses)))]
    if any(r.get("scratch_loss") == 0 for r in rows):
        # With few labels, a stretch of steps can hold no labelled image: the scratch student's loss is an exact 0
        # there (it learns nothing), which a log axis cannot draw. Say so instead of letting the line drop away.
        layout.setdefault("annotations", []).append(dict(
            text="scratch loss 0 (no labelled image in those steps): not drawn", xref="x domain", yref="y domain",
            x=0.01, y=0.01, xanchor="left", yanchor="bottom", showarrow=False, font=dict(size=11, color=SCRATCH)))
    if total_epochs:
        layout["xaxis"]["range"] = layout["xaxis2"]["range"] = [0, total_epochs]
    # Built from plain dicts without plotly's validation: this figure is redrawn twice a second while a run
    # trains in another thread, and validating it (~90 ms) holds the GIL the training thread needs.
    return go.Figure(dict(data=data, layout=layout), _validate=False)


def _curves_layout() -> dict:
    """A fresh copy of the two-panel layout of the live curves (axes, titles, legend), as plain dicts."""
    return copy.deepcopy(_curves_layout_once())


@cache
def _curves_layout_once() -> dict:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss", "Test accuracy"), horizontal_spacing=0.08)
    fig.update_xaxes(title_text="epoch")
    # Log scale: the T²-weighted total (~10) and the scratch CE (~0.1-2) stay readable on one axis.
    # Powers of ten as 10⁻⁴, not "100µ": a loss has no unit, and SI prefixes read as one.
    fig.update_yaxes(title_text="loss (log)", type="log", dtick=1, exponentformat="power", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=380, legend=legend_below(), **_LAYOUT)
    return fig.to_plotly_json()["layout"]


def soft_targets_bars(classes: Sequence[str], probs_t1: Sequence[float], probs_t: Sequence[float],
                      temperature: float, label: str) -> go.Figure:
    """The teacher's probabilities for one image at T = 1 next to those at the chosen T, on a log axis.

    Log, because the "dark knowledge" is in the wrong classes' 10⁻⁶ to 10⁻² probabilities, which a linear axis
    draws as nothing.
    """
    fig = go.Figure()
    if temperature == 1:
        fig.add_trace(go.Bar(x=list(classes), y=list(probs_t1), name="T = 1: what the teacher predicts, and what "
                             "the student is taught", marker_color=STUDENT))
    else:
        fig.add_trace(go.Bar(x=list(classes), y=list(probs_t1), name="T = 1 (what the teacher predicts)",
                             marker_color="#bab0ac"))
        fig.add_trace(go.Bar(x=list(classes), y=list(probs_t), name=f"T = {temperature:g} (what the student is "
                             "taught)", marker_color=STUDENT))
    smallest = min([p for p in (*probs_t1, *probs_t) if p > 0], default=1e-6)
    low = max(math.floor(math.log10(smallest)), -12)
    fig.update_layout(title=f"Teacher's soft targets for a test image of class {label}", barmode="group",
                      xaxis_title="class", yaxis=dict(title="probability (log)", type="log", range=[low, 0.05],
                                                      dtick=1, exponentformat="power"),
                      height=340, legend=legend_below(), **_LAYOUT)
    return fig


def digit_image(pixels: Sequence[Sequence[float]], title: str) -> go.Figure:
    """A small grayscale picture of one input image."""
    fig = go.Figure(go.Heatmap(z=list(pixels), colorscale="gray_r", showscale=False))
    fig.update_layout(title=title, height=340, xaxis=dict(visible=False),
                      yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"), **_LAYOUT)
    return fig


def size_latency_bars(student_size_bytes: int, teacher_size_bytes: int, student_latency_ms: float,
                      teacher_latency_ms: float) -> go.Figure:
    """Student vs teacher: file size (torch.save) and measured latency of one forward pass."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("File size (KiB, torch.save)", "Latency (ms, batch 1)"))
    names, colors = ["teacher", "student"], [TEACHER, STUDENT]
    sizes = [teacher_size_bytes / 1024, student_size_bytes / 1024]
    times = [teacher_latency_ms, student_latency_ms]
    fig.add_trace(go.Bar(x=names, y=sizes, marker_color=colors, text=[f"{v:,.1f}" for v in sizes],
                         textposition="auto", showlegend=False), 1, 1)
    fig.add_trace(go.Bar(x=names, y=times, marker_color=colors, text=[f"{v:.3f}" for v in times],
                         textposition="auto", showlegend=False), 1, 2)
    fig.update_layout(height=320, **_LAYOUT)
    return fig
