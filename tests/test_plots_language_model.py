"""Language-model figures: valid plotly, one line per method, the points where the numbers say."""

import plotly.graph_objects as go
import pytest

from compression.plots import language_model as plots_lm

POINTS = [
    {"method": "magnitude", "x": 0.5, "perplexity": 9.0, "label": "magnitude 50%"},
    {"method": "magnitude", "x": 0.3, "perplexity": 6.0},
    {"method": "wanda", "x": 0.5, "perplexity": 7.0},
    {"method": "rtn", "series": "rtn per-channel", "x": 4, "perplexity": 8.0},
]
ERRORS = [{"layer": layer, "role": role, "relative_error": 0.01 * (layer + 1)}
          for layer in range(3) for role in ("q", "k", "v", "o", "gate", "up", "down")]
FIGURES = {
    "curves": lambda: plots_lm.perplexity_curves(POINTS, "x", "sparsity", "t", 5.0, {"x": 0.5, "perplexity": 8.5}),
    "empty curves": lambda: plots_lm.perplexity_curves([], "x", "bits", "t"),
    "heatmap": lambda: plots_lm.layer_error_heatmap(ERRORS, "t"),
    "channels": lambda: plots_lm.channel_max_chart([1.0, 2.0, 90.0, 1.5], "t", top=1),
    "sizes": lambda: plots_lm.size_bars(["fp16", "rtn 4-bit"], [1000, 300]),
}


@pytest.mark.parametrize("name", FIGURES)
def test_figures_pass_plotly_validation(name):
    fig = FIGURES[name]()
    go.Figure(fig.to_dict())  # raises on any invalid property or value
    assert fig.to_json()


def test_one_line_per_series_sorted_by_x_with_the_live_ring_last():
    fig = plots_lm.perplexity_curves(POINTS, "x", "sparsity", "t", 5.0, {"x": 0.5, "perplexity": 8.5})
    names = [trace.name for trace in fig.data]
    assert names == ["magnitude", "wanda", "rtn per-channel", "live"]
    assert list(fig.data[0].x) == [0.3, 0.5] and list(fig.data[0].y) == [6.0, 9.0]
    assert fig.data[0].line.color != fig.data[1].line.color  # magnitude and Wanda read apart
    assert fig.layout.shapes[0].y0 == 5.0  # the dense model's dashed line


def test_heatmap_is_layers_by_roles():
    fig = plots_lm.layer_error_heatmap(ERRORS, "t")
    heat = fig.data[0]
    assert list(heat.x) == ["q", "k", "v", "o", "gate", "up", "down"] and list(heat.y) == [0, 1, 2]
    assert heat.z[2][6] == pytest.approx(0.03)


def test_outlier_channels_are_marked():
    fig = plots_lm.channel_max_chart([1.0, 2.0, 90.0, 1.5], "t", top=1)
    colors = list(fig.data[0].marker.color)
    assert colors[2] != colors[0] and colors.count(colors[2]) == 1


def test_size_bars_say_the_fraction_of_fp16():
    fig = plots_lm.size_bars(["fp16", "rtn 4-bit"], [1000, 300])
    assert fig.data[0].text[1].endswith("(30%)")
