"""Axes in the units of the cards beside them: accuracy axes in percent, zoomed with enough decimals to read."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
