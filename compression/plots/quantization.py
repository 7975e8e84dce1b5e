"""Pure figure builders for quantization: plain numbers in, plotly figures out (no torch, no streamlit)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from compression.core import readable
from compression.core.histogram import Histogram
from compression.plots.axes import legend_below, margin, percent_axis

# A slider move redraws five figures, so they are built in one go from plain dicts and arrays: an empty template
# (plotly's default one is a large dict deep-copied on every to_dict; st.plotly_chart applies its own theme),
# no add_vline or make_subplots, and no per-property validation (tests/test_plots_quant.py re-validates instead).
_LAYOUT = dict(margin=margin(), height=320, template=dict())
MAX_GRID_LINES = 64  # above this the grid is drawn as its two ends only (the lines would fill the plot)
_BLUE, _ORANGE, _RED, _GREEN, _GREY = "#4c78a8", "#f58518", "#e45756", "#54a24b", "#9d9d9d"


def quant_histogram(hist: Histogram, clipped: Histogram | None, levels: Sequence[float], title: str,
                    log_y: bool = False) -> go.Figure:
    """Weight histogram with the quantization grid as vertical lines and clipped weights in red."""
    width = hist.edges[1] - hist.edges[0] if len(hist.edges) > 1 else 1.0
    data = [_bar(np.asarray(hist.centers), hist.counts, "weights", _BLUE, width=width)]
    if clipped is not None and sum(clipped.counts):
        data.append(_bar(np.asarray(clipped.centers), clipped.counts, "clipped (outside the grid)", _RED, width=width))
    shapes = []
    if levels:
        dense = len(levels) > MAX_GRID_LINES
        shown = [levels[0], levels[-1]] if dense else levels
        shapes = [_vline(x, _ORANGE, opacity=0.8) for x in shown]
        # an invisible one-point trace, so the grid gets a legend entry
        data.append(dict(type="scatter", x=[levels[0]], y=[0], mode="lines", line=dict(color=_ORANGE),
                         name=f"grid ({len(levels)} levels{', ends only' if dense else ''})"))
    return _figure(data, title, "weight value", dict(title=dict(text="count"), type="log" if log_y else "linear",
                                                           dtick=1 if log_y else None),
                   bargap=0, barmode="overlay", shapes=shapes, margin=margin(left=80, bottom=100))


def error_view(original: Sequence[float], quantized: Sequence[float], title: str) -> go.Figure:
    """Quantized against original value for a sample of weights: a staircase around the diagonal.

    SVG, not WebGL: a browser without a GPU (a classroom VM, headless Chromium) renders WebGL in software, and
    2,000 WebGL points cost 240 CPU-ms per slider move there against 75 for 600 SVG points (bench/classroom.py).
    """
    lo, hi = min(original, default=0.0), max(original, default=0.0)
    data = [dict(type="scatter", x=[lo, hi], y=[lo, hi], mode="lines", name="no error (y = x)",
                 line=dict(color=_GREY, dash="dash")),
            dict(type="scatter", x=np.asarray(original), y=np.asarray(quantized), mode="markers", name="weights",
                 marker=dict(size=4, color=_BLUE, opacity=0.5))]
    return _figure(data, title, "original weight", dict(title=dict(text="quantized weight")),
                   margin=margin(left=77, bottom=100))


def sqnr_bars(layers: Sequence[str], sqnr_db: Sequence[float], bits: Sequence[int],
              title: str = "SQNR per layer") -> go.Figure:
    """Signal-to-quantization-noise ratio of each layer (higher is better; each bit adds about 6 dB)."""
    shown = [v if math.isfinite(v) else 200.0 for v in sqnr_db]
    text = [f"{v:.1f} dB · {b}b" if math.isfinite(v) else f"exact · {b}b" for v, b in zip(sqnr_db, bits)]
    return _figure([_bar(list(layers), shown, "SQNR", _GREEN, text=text)], title, "layer",
                   dict(title=dict(text="SQNR (dB)")), showlegend=False, margin=margin(left=68, bottom=68))


BITS_TICKS = (1, 2, 3, 4, 6, 8, 12, 16)
# A log axis for bits: 1-4 bits, where accuracy changes, get room; at 800 px sixteen linear ticks piled up.
_BITS_RANGE = [math.log10(0.85), math.log10(18)]


def accuracy_vs_bits(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], baseline: float,
                     current_bits: float | None = None, title: str = "Accuracy vs bits",
                     current: tuple[float, float, str] | None = None,
                     point_labels: Mapping[int, str] | None = None) -> go.Figure:
    """One line per method (PTQ, QAT…): held-out accuracy at each bit-width, with the fp32 baseline.

    `current` marks the model in force when it is not on a curve (mixed precision: its average bits);
    `point_labels` name special points of the first curve (1 bit: binary, 2 bits: ternary).
    """
    colors = [_BLUE, _ORANGE, _GREEN, _RED]
    labels = point_labels or {}
    data = []
    for i, (name, (bits, acc)) in enumerate(curves.items()):
        trace = dict(type="scatter", x=list(bits), y=list(acc), mode="lines+markers", name=name,
                     line=dict(color=colors[i % len(colors)]))
        if i == 0 and labels:
            trace.update(mode="lines+markers+text", text=[labels.get(b, "") for b in bits], textposition="top right")
        data.append(trace)
    if current is not None:
        data.append(dict(type="scatter", x=[current[0]], y=[current[1]], mode="markers", name=current[2],
                         marker=dict(color=_RED, size=13, symbol="diamond")))
    shapes = [_hline(baseline)]
    if current_bits is not None:  # a trace, not a shape: shapes on a log axis take log10 positions
        data.append(dict(type="scatter", x=[current_bits, current_bits], y=[0, 1.02], mode="lines", hoverinfo="skip",
                         name=f"in force: {current_bits:.3g} bits", line=dict(color=_RED, dash="dot", width=1)))
    annotations = [dict(x=1, xref="paper", y=baseline, text=f"fp32 {baseline:.1%}", showarrow=False,
                        xanchor="right", yanchor="bottom")]
    return _figure(data, title, "bits", dict(title=dict(text="accuracy (held-out)"), range=[0, 1.02], tickformat=".0%"),
                   xaxis=dict(title=dict(text="bits per weight (log scale)"), type="log", range=_BITS_RANGE,
                              tickmode="array", tickvals=list(BITS_TICKS), tickangle=0),
                   shapes=shapes, annotations=annotations, margin=margin(left=84, bottom=100))


def size_latency_bars(labels: Sequence[str], size_bytes: Sequence[int], latency_ms: Sequence[float | None],
                      title: str = "Real file size and measured latency") -> go.Figure:
    """Bytes of each real file (left) and ms of each model's forward pass (right); None = not a runnable model."""
    colors = [_BLUE, _ORANGE, _GREEN, _RED][:len(labels)]
    timed = [(label, ms, c) for label, ms, c in zip(labels, latency_ms, colors) if ms is not None]
    data = [_bar(list(labels), [b / 1024 for b in size_bytes], "size", colors,
                 text=[readable.size(b) for b in size_bytes]),
            _bar([t[0] for t in timed], [t[1] for t in timed], "latency", [t[2] for t in timed],
                 text=[readable.ms(t[1]) for t in timed], xaxis="x2", yaxis="y2")]
    return _figure(data, title, "", dict(title=dict(text="file size (KiB)")), showlegend=False, margin=margin(74, 38),
                   xaxis=dict(domain=[0, 0.45], automargin=True), xaxis2=dict(domain=[0.55, 1], automargin=True),
                   yaxis2=dict(title=dict(text="latency (ms per batch)"), anchor="x2"))


def qat_curves(runs: Mapping[str, Sequence[dict]], baseline: float, title: str = "QAT vs fp32 control") -> go.Figure:
    """Test accuracy per epoch of each run (dicts with epoch and test_accuracy), with the fp32 baseline."""
    data = []
    for (name, steps), color in zip(runs.items(), [_ORANGE, _GREY, _BLUE]):
        acc = [s for s in steps if s.get("test_accuracy") is not None]
        data.append(dict(type="scatter", x=[s["epoch"] for s in acc], y=[s["test_accuracy"] for s in acc],
                         name=name, mode="lines+markers", line=dict(color=color)))
    values = [y for trace in data for y in trace["y"]] + [baseline]
    yaxis = dict(title=dict(text="test accuracy"), **percent_axis(values))
    annotations = [dict(x=0, xref="paper", y=baseline, text=f"fp32 start {baseline:.1%}", showarrow=False,
                        xanchor="left", yanchor="bottom")]
    return _figure(data, title, "epoch", yaxis, shapes=[_hline(baseline)], annotations=annotations)


def _bar(x, y, name: str, color, **extra) -> dict:
    return dict(type="bar", x=x, y=np.asarray(y), name=name,
                marker=dict(color=color), textposition="auto", **extra)


def _vline(x: float, color: str, **line) -> dict:
    return dict(type="line", x0=x, x1=x, y0=0, y1=1, yref="paper", opacity=line.pop("opacity", 1.0),
                line=dict(color=color, width=1, **line))


def _hline(y: float) -> dict:
    return dict(type="line", x0=0, x1=1, xref="paper", y0=y, y1=y, line=dict(color=_GREY, dash="dash"))


def _figure(data: list[dict], title: str, x_title: str, yaxis: dict, **layout) -> go.Figure:
    # _validate=False: plotly's per-property validation costs ~10 ms per figure; the tests validate instead
    layout.setdefault("xaxis", dict(title=dict(text=x_title)))
    layout.setdefault("legend", legend_below())
    return go.Figure(dict(data=data, layout={**_LAYOUT, "title": dict(text=title), "yaxis": yaxis, **layout}),
                     _validate=False)
