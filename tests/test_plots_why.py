"""The lecture's figures: the "why" views (valid plotly, drawing their numbers) and the Language-model charts that
misled (the dense line's label off the chart, 2:4 hidden under unstructured, W·A· on a weight-bits axis, every minor
log tick labelled, heat-maps each on a colour scale of their own)."""

import math

import plotly.graph_objects as go
import pytest

from compression.plots import language_model as plots_lm
from compression.plots import why as plots_why

QUANT = {"layer": "layer 1 · q", "row": 3, "columns": [5, 0, 2], "original": [0.1, -0.2, 0.3],
         "pushed": [0.0, 0.01, -0.02], "gptq": [0.125, -0.25, 0.25], "rtn": [0.125, -0.125, 0.25]}
PRUNE = {"layer": "fc1", "row": 2, "pattern": "50%", "columns": [0, 1, 2, 3], "original": [0.5, -0.1, 0.05, 0.3],
         "sparsegpt": [0.55, 0.0, 0.0, 0.32], "update": [0.05, 0.0, 0.0, 0.02], "input_norm": [1.0, 9.0, 1.2, 0.8],
         "wanda_only": [0, 5, 1, 0], "magnitude_only": [3, 0, 1, 2]}
ERRORS = {"row 2": {"magnitude": 0.2, "Wanda": 0.05, "SparseGPT": 0.004},
          "whole layer": {"magnitude": 0.1, "Wanda": 0.03, "SparseGPT": 0.002}}
FIGURES = {
    "gptq row": lambda: plots_why.gptq_row(QUANT),
    "sparsegpt row": lambda: plots_why.sparsegpt_row(PRUNE),
    "errors": lambda: plots_why.error_bars(ERRORS, {"magnitude": "#9d9da1"}, "t"),
    "wanda": lambda: plots_why.wanda_channels(PRUNE),
    "ranges": lambda: plots_why.channel_ranges([1.0, 80.0, 2.0], [3.0, 9.0, 4.0], 1, "t", "max |x|", "after"),
    "outliers": lambda: plots_why.outlier_bars(["layer 29 · down", "layer 3 · q"], [77.4, 19.9], [247, 12], "t"),
    "wa": lambda: plots_lm.perplexity_wa([
        {"method": "naive", "series": "naive per-token", "wa": "W6A6", "perplexity": 99.0},
        {"method": "smoothquant", "series": "smoothquant α=0.8 per-token", "wa": "W6A6", "perplexity": 16.7},
        {"method": "naive", "series": "naive per-token", "wa": "W8A8", "perplexity": 15.9}], 15.2),
    "ratio": lambda: plots_lm.layer_error_ratio(
        [{"layer": 0, "role": "q", "relative_error": 0.1}], [{"layer": 0, "role": "q", "relative_error": 0.005}], "t",
        512),
}
DRAWN = {
    "gptq row": [("original", [0.1, -0.2, 0.3]), ("round-to-nearest", [0.125, -0.125, 0.25]),
                 ("GPTQ", [0.125, -0.25, 0.25]), ("error pushed onto it by earlier columns", [0.0, 0.01, -0.02])],
    "sparsegpt row": [("original", [0.5, -0.1, 0.05, 0.3]), ("removed by SparseGPT", [-0.1, 0.05]),
                      ("kept, after SparseGPT's update", [0.55, 0.32]), ("update of each survivor", [0.05, 0, 0, 0.02]),
                      ("weight lost by removal", [0.1, -0.05])],
    "errors": [("magnitude", [0.2, 0.1]), ("Wanda", [0.05, 0.03]), ("SparseGPT", [0.004, 0.002])],
    "wanda": [("kept by Wanda, dropped by magnitude", [0, 5, 1, 0]),
              ("kept by magnitude, dropped by Wanda", [-3, 0, -1, -2]), ("input norm ‖X_j‖", [1.0, 9.0, 1.2, 0.8])],
    "ranges": [("before", [1.0, 80.0, 2.0]), ("after", [3.0, 9.0, 4.0]), ("loudest channel (1)", [80.0])],
    "outliers": [(None, ["layer 29 · down", "layer 3 · q"])],
    "wa": [("naive per-token", [15.9, 99.0]), ("smoothquant α=0.8 per-token", [16.7])],
    "ratio": [(None, [0])],
}


@pytest.mark.parametrize("name", FIGURES)
def test_figures_pass_plotly_validation_and_draw_their_numbers(name):
    fig = FIGURES[name]()
    validated = go.Figure(fig.to_dict())  # raises on any invalid property or value
    assert validated.to_plotly_json()["data"] == fig.to_plotly_json()["data"]
    assert [(t.name, list(t.y)) for t in fig.data] == DRAWN[name]


def test_w_a_runs_are_named_by_their_w_a_bits_not_placed_on_a_weight_bits_axis():
    fig = FIGURES["wa"]()
    assert list(fig.data[0].x) == ["W8A8", "W6A6"] and fig.layout.xaxis.type == "category"
    assert "weights (W) and activations (A)" in fig.layout.xaxis.title.text


POINTS = [{"method": "wanda", "series": "wanda", "x": 0.5, "perplexity": 33.4},
          {"method": "wanda", "series": "wanda 2:4", "x": 0.5, "perplexity": 79.5},
          {"method": "magnitude", "series": "magnitude", "x": 0.5, "perplexity": 340.0}]


def test_the_dense_line_is_named_inside_the_chart_on_a_log_axis():
    fig = plots_lm.perplexity_curves(POINTS, "x", "sparsity", "t", 15.2, x_range=(0, 1))
    (label,) = [a for a in fig.layout.annotations if a.text == "dense 15.20"]
    low, high = fig.layout.yaxis.range
    assert label.y == pytest.approx(math.log10(15.2)) and low < label.y < high  # log units, inside the plot
    assert label.xref == "x domain" and label.x == 1  # at the chart's right edge, not past it


def test_unstructured_and_2_4_runs_of_one_method_look_different():
    fig = plots_lm.perplexity_curves(POINTS, "x", "sparsity", "t", 15.2)
    wanda, nm = fig.data[0], fig.data[1]
    assert (wanda.name, nm.name) == ("wanda", "wanda 2:4")
    assert wanda.marker.symbol != nm.marker.symbol and nm.line.dash == "dot"


@pytest.mark.parametrize("errors, pattern", [
    (ERRORS, r"^\d(\.\d)?e-\d$"),  # 0.002 to 0.2: powers of ten throughout, never 0.01 above 1.0e-03
    ({"row": {"a": 0.4, "b": 0.02}}, r"^0?\.?\d+$"),  # all at least 0.01: decimals
])
def test_an_error_chart_writes_its_numbers_one_way(errors, pattern):
    import re

    fig = plots_why.error_bars(errors, {}, "t")
    texts = [*fig.layout.yaxis.ticktext, *(t for bar in fig.data for t in bar.text)]
    assert texts and all(re.match(pattern, t) for t in texts), texts


def test_only_1_2_5_log_ticks_are_labelled():
    fig = plots_lm.perplexity_curves(POINTS, "x", "sparsity", "t", 15.2)
    mantissas = {f"{v / 10 ** math.floor(math.log10(v)):.0f}" for v in fig.layout.yaxis.tickvals}
    assert mantissas <= {"1", "2", "5"} and len(fig.layout.yaxis.ticktext) == len(fig.layout.yaxis.tickvals)


def test_the_live_point_is_named_beside_its_ring():
    fig = plots_lm.perplexity_curves(POINTS, "x", "bits", "t", 15.2, {"x": 3, "perplexity": 54.0,
                                                                     "label": "live: rtn 3-bit g64"})
    ring = fig.data[-1]
    assert "text" in ring.mode and list(ring.text) == ["live: rtn 3-bit g64"]


def test_two_runs_heat_maps_share_one_colour_scale_and_say_their_tokens():
    rtn = [{"layer": 0, "role": "q", "relative_error": 0.099}, {"layer": 1, "role": "q", "relative_error": 0.02}]
    gptq = [{"layer": 0, "role": "q", "relative_error": 0.0048}, {"layer": 1, "role": "q", "relative_error": 0.001}]
    scale = plots_lm.error_range(rtn, gptq)
    a = plots_lm.layer_error_heatmap(rtn, "rtn", scale, 512).data[0]
    b = plots_lm.layer_error_heatmap(gptq, "gptq", scale, 512).data[0]
    assert (a.zmin, a.zmax) == (b.zmin, b.zmax) == pytest.approx((math.log10(0.001), math.log10(0.099)))
    alone = plots_lm.layer_error_heatmap(gptq, "gptq").data[0]
    assert alone.zmax == pytest.approx(math.log10(0.0048))  # on its own scale GPTQ would look as red as RTN
    assert "measured on 512 calibration tokens" in plots_lm.layer_error_heatmap(rtn, "rtn", scale, 512).layout.title.text


def test_the_ratio_view_is_centred_on_one():
    fig = FIGURES["ratio"]()
    heat = fig.data[0]
    assert heat.z[0][0] == pytest.approx(math.log2(0.1 / 0.005)) and heat.zmid == 0 and heat.zmin == -heat.zmax


def test_one_huge_outlier_puts_the_ranking_on_a_log_axis():
    fig = plots_why.outlier_bars(["layer 11 · down", "layer 28 · down", "layer 1 · down"], [2168.3, 346.0, 31.2],
                                 [1229, 678, 83], "t")
    assert fig.layout.xaxis.type == "log" and "(log)" in fig.layout.xaxis.title.text
    assert FIGURES["outliers"]().layout.xaxis.type != "log"  # 77× and 20× read fine on a linear axis
