"""Quantization figures: valid plotly (re-validated here, since the builders skip validation for speed)."""

import inspect
import math

import plotly.graph_objects as go
import pytest

from compression.metrics import Histogram
from compression.plots import quantization as plots_quant

HIST = Histogram([1, 5, 2], [-1.0, 0.0, 1.0, 2.0])
FIGURES = {
    "histogram": lambda: plots_quant.quant_histogram(HIST, Histogram([1, 0, 0], HIST.edges), [-1.0, 0.0, 1.0], "t",
                                                     log_y=True),
    "dense grid": lambda: plots_quant.quant_histogram(HIST, None, [i / 100 for i in range(256)], "t"),
    "error": lambda: plots_quant.error_view([0.1, -0.3], [0.0, -0.25], "t"),
    "sqnr": lambda: plots_quant.sqnr_bars(["a", "b"], [12.0, math.inf], [4, 16]),
    "bits": lambda: plots_quant.accuracy_vs_bits({"PTQ": ([1, 2], [0.1, 0.9]), "QAT": ([2], [0.95])}, 0.97, 2),
    "bars": lambda: plots_quant.size_latency_bars(["fp32", "packed"], [4096, 512], [0.5, None]),
    "qat": lambda: plots_quant.qat_curves({"QAT": [{"epoch": 1, "test_accuracy": 0.9}], "fp32 control": []}, 0.95),
}


# What each figure draws from the numbers above: (trace name, y) per trace.
DRAWN = {
    "histogram": [("weights", [1, 5, 2]), ("clipped (outside the grid)", [1, 0, 0]), ("grid (3 levels)", [0])],
    "dense grid": [("weights", [1, 5, 2]), ("grid (256 levels, ends only)", [0])],
    "error": [("no error (y = x)", [-0.3, 0.1]), ("weights", [0.0, -0.25])],
    "sqnr": [("SQNR", [12.0, 200.0])],  # an exact (infinite) SQNR is drawn as a 200 dB bar
    "bits": [("PTQ", [0.1, 0.9]), ("QAT", [0.95]), ("in force: 2 bits", [0, 1.02])],
    "bars": [("size", [4.0, 0.5]), ("latency", [0.5])],  # KiB; a latency not measured is left out
    "qat": [("QAT", [0.9]), ("fp32 control", [])],
}


def test_every_builder_is_among_the_figures_validated(monkeypatch):
    builders = {name for name, f in inspect.getmembers(plots_quant, inspect.isfunction)
                if not name.startswith("_") and f.__module__ == plots_quant.__name__}
    called = set()
    for name in builders:
        def recorded(*args, _real=getattr(plots_quant, name), _name=name, **kwargs):
            called.add(_name)
            return _real(*args, **kwargs)
        monkeypatch.setattr(plots_quant, name, recorded)
    for build in FIGURES.values():
        build()
    assert called == builders


@pytest.mark.parametrize("name", FIGURES)
def test_figures_pass_plotly_validation_and_draw_their_numbers(name):
    fig = FIGURES[name]()
    validated = go.Figure(fig.to_dict())  # raises on any invalid property or value
    assert validated.to_plotly_json()["data"] == fig.to_plotly_json()["data"]  # nothing was coerced either
    assert [(t.name, list(t.y)) for t in fig.data] == DRAWN[name]


def test_histogram_marks_grid_and_clipped_values():
    fig = FIGURES["histogram"]()
    names = [t.name for t in fig.data]
    assert "clipped (outside the grid)" in names and "grid (3 levels)" in names
    assert len(fig.layout.shapes) == 3
    dense = FIGURES["dense grid"]()
    assert len(dense.layout.shapes) == 2 and "ends only" in dense.data[-1].name
