"""Axes in the units of the cards beside them: accuracy axes in percent, zoomed with enough decimals to read."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from compression.core import readable

# One colour per run or model where a chart names up to ten of them in its legend.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
           "#eeca3b")


def percent_axis(values: Sequence[float | None], pad: float = 0.02, top: float = 1.0) -> dict:
    """A y-axis (plain dict) for fractions shown in percent: zoomed on the data, ticks in order, never 97%, 97%.

    The tick step is a 1-2-5 number of points giving about five ticks; the format has as many decimals as the
    step needs, so neighbouring ticks never read the same.
    """
    shown = [v for v in values if v is not None and math.isfinite(v)]
    if not shown:
        return dict(range=[0, 1.02], tickformat=".0%", tickmode="linear", tick0=0, dtick=0.2)
    low = max(0.0, min(shown) - pad)
    high = min(top + 0.005, max(shown) + pad) if max(shown) < top else top + 0.005
    raw = max((high - low) / 5, 1e-4)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    decimals = max(0, -math.floor(math.log10(step * 100) + 1e-9))
    low = math.floor(low / step) * step
    return dict(range=[low, high], tickformat=f".{decimals}%", tickmode="linear", tick0=0, dtick=step)


def margin(left: int = 10, bottom: int = 10, right: int = 10, top: int = 40) -> dict:
    """Plot margins in px. A figure redrawn on every slider move gets the margins its labels take in the browser.

    Streamlit's chart theme turns on plotly's automargin: margins too narrow for the tick labels, axis titles and
    legend are grown after a first layout, and the figure is laid out again, about a third of plotly's drawing time
    (bench/classroom.py). Margins already wide enough leave it nothing to grow; longer labels still grow them.
    """
    return dict(l=left, r=right, t=top, b=bottom)


def legend_below() -> dict:
    """A horizontal legend on the figure's bottom edge, under the x-axis title, whatever the plot's height.

    In plot coordinates (y=-0.25) the legend's distance from the axis moved with the plot's height and, in some
    layouts, sat on the x-axis title. In container coordinates it is the last row of the figure: plotly's automargin
    makes room for it above, and an explicit bottom margin must hold ticks, axis title and legend.
    """
    return dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left")


def ticks_1_2_5(low: float, high: float) -> list[float]:
    """1, 2, 5 × 10^k from just below `low` to just above `high`: log ticks that read in order."""
    ticks, k = [], math.floor(math.log10(max(low, 1e-9))) - 1
    while not ticks or ticks[-1] < high:
        ticks += [m * 10 ** k for m in (1, 2, 5)]
        k += 1
    inside = [t for t in ticks if low / 2.5 <= t <= high * 2.5]
    return inside or ticks


def log_axis(values: Sequence[float], fmt: Callable[[float], str] = readable.ms) -> dict:
    """A log axis (plain dict) with 1-2-5 ticks labelled by `fmt`: plotly's own log ticks label the minor ones with
    bare digits (5 6 7 8 9 100k 2 3)."""
    shown = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not shown:
        return dict(type="log")
    ticks = ticks_1_2_5(min(shown), max(shown))
    return dict(type="log", tickmode="array", tickvals=ticks, ticktext=[fmt(t) for t in ticks])


_SIZE_TICKS = [(m * 10 ** k * 1024 ** p, f"{m * 10 ** k} {unit}")
               for p, unit in enumerate(("B", "KiB", "MiB", "GiB")) for k in range(3) for m in (1, 2, 5)]


def size_axis(values: Sequence[float]) -> dict:
    """A log axis (plain dict) for byte counts, ticked 1, 2, 5, 10… 500 in B, KiB, MiB or GiB: 5 KiB, not 4.9 KiB
    or 5,120 B, and 1 MiB after 500 KiB, not 1,000 KiB."""
    shown = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not shown:
        return dict(type="log")
    low, high = min(shown), max(shown)
    ticks = [t for t in _SIZE_TICKS if low / 2.5 <= t[0] <= high * 2.5]
    return dict(type="log", tickmode="array", tickvals=[t[0] for t in ticks], ticktext=[t[1] for t in ticks])
