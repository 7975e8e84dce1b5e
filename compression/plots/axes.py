"""Axes in the units of the cards beside them (percent, KiB, ms), margins, legends and colours shared by the charts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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


def log_axis(values: Sequence[float], fmt: Callable[[float], str]) -> dict:
    """A log axis (plain dict) with 1-2-5 ticks labelled by `fmt`: plotly's own log ticks label the minor ones with
    bare digits (5 6 7 8 9 100k 2 3). A range too narrow for three 1-2-5 ticks gets evenly stepped ones (5.2, 5.4,
    5.6 rather than a lone 5)."""
    shown = _positive(values)
    if not shown:
        return dict(type="log")
    low, high = min(shown), max(shown)
    decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
    coarse = _ticked([(m * 10.0 ** k, fmt(m * 10.0 ** k), m == 1) for k in decades for m in (1, 2, 5)], low, high)
    return _finer(coarse, low, high, 1.0, lambda v: fmt(v))


_SIZE_TICKS = [(m * 10 ** k * 1024 ** p, f"{m * 10 ** k} {unit}", m == 1)
               for p, unit in enumerate(("B", "KiB", "MiB", "GiB", "TiB")) for k in range(3) for m in (1, 2, 5)]
MAX_TICKS = 10  # plotly does not thin ticks given as an array: more overlap at 800 px


def size_axis(values: Sequence[float]) -> dict:
    """A log axis (plain dict) for byte counts, ticked 1, 2, 5, 10… 500 in B, KiB, MiB, GiB or TiB: 5 KiB, not
    4.9 KiB or 5,120 B, and 1 MiB after 500 KiB, not 1,000 KiB. A range too narrow for three of those (95 to
    174 MiB) is ticked in even steps of its own unit (100, 120, 140, 160 MiB). Plotly's own ticks where none fit."""
    shown = _positive(values)
    if not shown:
        return dict(type="log")
    low, high = min(shown), max(shown)
    coarse = _ticked(_SIZE_TICKS, low, high)
    if "tickvals" not in coarse:
        return coarse
    unit = max((p for p in range(5) if 1024 ** p <= high), default=0)
    name = ("B", "KiB", "MiB", "GiB", "TiB")[unit]
    return _finer(coarse, low, high, 1024.0 ** unit, lambda v: f"{v:g} {name}")


def _finer(coarse: dict, low: float, high: float, scale: float, label: Callable[[float], str]) -> dict:
    """`coarse` unless fewer than three of its ticks fall on the data's range [low, high]: then ticks every 1, 2,
    or 5 × 10^k (in units of `scale`) across it, with the axis range fitted to the data so every tick shows."""
    inside = [v for v in coarse.get("tickvals", ()) if low <= v <= high]
    if high <= low or len(inside) >= 3:
        return coarse
    lo, hi = low / scale, high / scale
    raw = (hi - lo) / 5
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [k * step for k in range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)]
    values = [float(f"{t:.6g}") for t in ticks]
    pad = 0.08 * (math.log10(high) - math.log10(low)) + 0.01
    return dict(type="log", tickmode="array", tickvals=[v * scale for v in values], ticktext=[label(v) for v in values],
                range=[math.log10(low) - pad, math.log10(high) + pad])


def _positive(values: Sequence[float | None]) -> list[float]:
    """The values a log axis can show."""
    return [v for v in values if v is not None and math.isfinite(v) and v > 0]


def _ticked(candidates: list[tuple[float, str, bool]], low: float, high: float) -> dict:
    """The candidate ticks (value, label, round: 1 × 10^k) from just below `low` to just above `high`, as an axis
    dict; a range that would take more than MAX_TICKS keeps the round ones, from the last at or below `low` to the
    first at or above `high`."""
    ticks = [t for t in candidates if low / 2.5 <= t[0] <= high * 2.5]
    if len(ticks) > MAX_TICKS:
        round_ = [t for t in candidates if t[2]]
        start = max((t[0] for t in round_ if t[0] <= low), default=round_[0][0])
        stop = min((t[0] for t in round_ if t[0] >= high), default=round_[-1][0])
        ticks = [t for t in round_ if start <= t[0] <= stop]
    if not ticks:
        return dict(type="log")
    return dict(type="log", tickmode="array", tickvals=[t[0] for t in ticks], ticktext=[t[1] for t in ticks])
