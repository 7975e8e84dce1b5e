"""Pure figure builders for quantization: plain numbers in, plotly figures out (no torch, no streamlit)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .metrics import Histogram

# A slider move redraws five figures, so they are built in one go from plain dicts and arrays: no named template
# (st.plotly_chart applies its own theme), no add_vline or make_subplots, and no per-property validation
# (tests/test_plots_quant.py re-validates every figure with plotly's validators instead).
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320)
MAX_GRID_LINES = 64  # above this the grid is drawn as its two ends only (the lines would fill the plot)
_BLUE, _ORANGE, _RED, _GREEN, _GREY = "#4c78a8", "#f58518", "#e45756", "#54a24b", "#9d9d9d"


def quant_histogram(hist: Histogram, clipped: Histogram | None, levels: Sequence[float], title: str,
                    log_y: bool = False) -> go.Figure:
    """Weight histogram with the quantization grid as vertical lines and clipped weights in red."""
    width = hist.edges[1] - hist.edges[0] if len(hist.edges) > 1 else 1.0
    data = [dict(type="bar", x=np.asarray(hist.centers), y=np.asarray(hist.counts), width=width, name="weights",
                   marker=dict(color=_BLUE))]
    if clipped is not None and sum(clipped.counts):
        data.append(dict(type="bar", x=np.asarray(clipped.centers), y=np.asarray(clipped.counts), width=width,
                           name="clipped (outside the grid)", marker=dict(color=_RED)))
    shapes = []
    if levels:
        shown = levels if len(levels) <= MAX_GRID_LINES else [levels[0], levels[-1]]
        shapes = [dict(type="line", x0=x, x1=x, y0=0, y1=1, yref="paper", opacity=0.8,
                       line=dict(color=_ORANGE, width=1)) for x in shown]
        # an empty trace, so the grid gets a legend entry
        data.append(dict(type="scatter", x=[levels[0]], y=[0], mode="lines", line=dict(color=_ORANGE),
                               name=f"grid ({len(levels)} levels)" + ("" if len(levels) <= MAX_GRID_LINES
                                                                     else ", ends only")))
    return _figure(data, dict(title=dict(text=title), xaxis=dict(title=dict(text="weight value")), yaxis=dict(title=dict(text="count"), type="log" if log_y else "linear"), bargap=0,
                                barmode="overlay", shapes=shapes,
                                legend=dict(orientation="h", y=-0.25), **_LAYOUT))


def error_view(original: Sequence[float], quantized: Sequence[float], title: str) -> go.Figure:
    """Quantized against original value for a sample of weights: a staircase around the diagonal."""
    lo = min(original, default=0.0)
    hi = max(original, default=0.0)
    data = [dict(type="scatter", x=[lo, hi], y=[lo, hi], mode="lines", name="no error (y = x)",
                       line=dict(color=_GREY, dash="dash")),
            dict(type="scattergl", x=np.asarray(original), y=np.asarray(quantized), mode="markers", name="weights",
                         marker=dict(size=4, color=_BLUE, opacity=0.5))]
    return _figure(data, dict(title=dict(text=title), xaxis=dict(title=dict(text="original weight")), yaxis=dict(title=dict(text="quantized weight")),
                                legend=dict(orientation="h", y=-0.25), **_LAYOUT))


def sqnr_bars(layers: Sequence[str], sqnr_db: Sequence[float], bits: Sequence[int], title: str = "SQNR per layer",
              ) -> go.Figure:
    """Signal-to-quantization-noise ratio of each layer (higher is better; each bit adds about 6 dB)."""
    shown = [v if math.isfinite(v) else 200.0 for v in sqnr_db]
    text = [f"{v:.1f} dB · {b}b" if math.isfinite(v) else f"exact · {b}b" for v, b in zip(sqnr_db, bits)]
    return _figure([dict(type="bar", x=list(layers), y=shown, text=text, textposition="auto", marker=dict(color=_GREEN))],
                     dict(title=dict(text=title), xaxis=dict(title=dict(text="layer")), yaxis=dict(title=dict(text="SQNR (dB)")), **_LAYOUT))


def accuracy_vs_bits(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], baseline: float,
                     current_bits: int | None = None, title: str = "Accuracy vs bits") -> go.Figure:
    """One line per method (PTQ, QAT…): held-out accuracy at each bit-width, with the fp32 baseline."""
    colors = [_BLUE, _ORANGE, _GREEN, _RED]
    data = [dict(type="scatter", x=list(bits), y=list(acc), mode="lines+markers", name=name, line=dict(color=colors[i % 4]))
            for i, (name, (bits, acc)) in enumerate(curves.items())]
    shapes = [dict(type="line", x0=0, x1=1, xref="paper", y0=baseline, y1=baseline,
                   line=dict(color=_GREY, dash="dash"))]
    if current_bits is not None:
        shapes.append(dict(type="line", x0=current_bits, x1=current_bits, y0=0, y1=1, yref="paper",
                           line=dict(color=_RED, dash="dot")))
    annotations = [dict(x=1, xref="paper", y=baseline, text=f"fp32 {baseline:.1%}", showarrow=False,
                        xanchor="right", yanchor="bottom")]
    return _figure(data, dict(title=dict(text=title), xaxis=dict(title=dict(text="bits"), dtick=1),
                                yaxis=dict(title=dict(text="accuracy (held-out)"), range=[0, 1.02]), shapes=shapes,
                                annotations=annotations, legend=dict(orientation="h", y=-0.25), **_LAYOUT))


def size_latency_bars(labels: Sequence[str], size_bytes: Sequence[int], latency_ms: Sequence[float | None],
                      title: str = "Real file size and measured latency") -> go.Figure:
    """Bytes of each real file (left) and ms of each model's forward pass (right); None = not a runnable model."""
    colors = [_BLUE, _ORANGE, _GREEN, _RED][:len(labels)]
    timed = [(label, ms, c) for label, ms, c in zip(labels, latency_ms, colors) if ms is not None]
    data = [dict(type="bar", x=list(labels), y=[b / 1024 for b in size_bytes], marker=dict(color=colors), xaxis="x", yaxis="y",
                   text=[f"{b / 1024:,.1f} KiB" for b in size_bytes], textposition="auto", showlegend=False),
            dict(type="bar", x=[t[0] for t in timed], y=[t[1] for t in timed], marker=dict(color=[t[2] for t in timed]),
                   xaxis="x2", yaxis="y2", text=[f"{t[1]:.3f} ms" for t in timed], textposition="auto",
                   showlegend=False)]
    return _figure(data, dict(title=dict(text=title), xaxis=dict(domain=[0, 0.45]), xaxis2=dict(domain=[0.55, 1]),
                                yaxis=dict(title=dict(text="file size (KiB)")),
                                yaxis2=dict(title=dict(text="latency (ms per batch)"), anchor="x2"), **_LAYOUT))


def qat_curves(runs: Mapping[str, Sequence[dict]], baseline: float, title: str = "QAT vs fp32 control") -> go.Figure:
    """Test accuracy per epoch of each run (dicts with epoch and test_accuracy), with the fp32 baseline."""
    data = []
    for (name, steps), color in zip(runs.items(), [_ORANGE, _GREY, _BLUE]):
        acc = [s for s in steps if s.get("test_accuracy") is not None]
        data.append(dict(type="scatter", x=[s["epoch"] for s in acc], y=[s["test_accuracy"] for s in acc], name=name,
                               mode="lines+markers", line=dict(color=color)))
    shapes = [dict(type="line", x0=0, x1=1, xref="paper", y0=baseline, y1=baseline,
                   line=dict(color=_GREY, dash="dash"))]
    return _figure(data, dict(title=dict(text=title), xaxis=dict(title=dict(text="epoch")), yaxis=dict(title=dict(text="test accuracy")), shapes=shapes,
                                annotations=[dict(x=0, xref="paper", y=baseline, text=f"fp32 start {baseline:.1%}",
                                                  showarrow=False, xanchor="left", yanchor="bottom")],
                                legend=dict(orientation="h", y=-0.25), **_LAYOUT))


def _figure(data: list[dict], layout: dict) -> go.Figure:
    # _validate=False: plotly's per-property validation costs ~10 ms per figure; the tests validate instead
    return go.Figure(dict(data=data, layout=layout), _validate=False)
