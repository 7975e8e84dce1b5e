"""Language-model figures: valid plotly, one line per method, the points where the numbers say."""

import math

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
    "sizes": lambda: plots_lm.size_bars(["fp16", "rtn 4-bit"], [1000, 300]),
    "runs": lambda: plots_lm.perplexity_vs_size([90_000, 1.2e6], [70.0, 5.2], ["a · rtn", "b · gptq"], ["a", "b"]),
}


# What each figure draws from the numbers above: (trace name, y) per trace.
DRAWN = {
    "curves": [("magnitude", [6.0, 9.0]), ("wanda", [7.0]), ("rtn per-channel", [8.0]), ("live", [8.5])],
    "empty curves": [],
    "heatmap": [(None, [0, 1, 2])],  # one row per layer (the values: test_heatmap_is_layers_by_roles)
    "sizes": [(None, [1000 / 1024 ** 2, 300 / 1024 ** 2])],  # MiB
    "runs": [("a · rtn", [70.0]), ("b · gptq", [5.2])],
}


@pytest.mark.parametrize("name", FIGURES)
def test_figures_pass_plotly_validation_and_draw_their_numbers(name):
    fig = FIGURES[name]()
    validated = go.Figure(fig.to_dict())  # raises on any invalid property or value
    assert validated.to_plotly_json()["data"] == fig.to_plotly_json()["data"]  # nothing was coerced either
    assert [(t.name, list(t.y)) for t in fig.data] == DRAWN[name]


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
    assert heat.customdata[2][6] == pytest.approx(0.03)  # the value on hover; the colour is its log10
    assert heat.z[2][6] == pytest.approx(math.log10(0.03))


def test_size_bars_say_the_fraction_of_fp16():
    fig = plots_lm.size_bars(["fp16", "rtn 4-bit"], [1000, 300])
    assert fig.data[0].text[1].endswith("(30%)")


def test_up_to_ten_runs_are_named_in_the_legend_and_more_are_coloured_by_model():
    sizes, ppl = [1000.0 * (i + 1) for i in range(12)], [5.0 + i for i in range(12)]
    labels = [f"m{i % 2} · run {i}" for i in range(12)]
    few = plots_lm.perplexity_vs_size(sizes[:3], ppl[:3], labels[:3], [f"m{i % 2}" for i in range(3)])
    assert [t.name for t in few.data] == labels[:3]
    many = plots_lm.perplexity_vs_size(sizes, ppl, labels, [f"m{i % 2}" for i in range(12)])
    assert [t.name for t in many.data] == ["m0", "m1"]
    assert sorted(x for t in many.data for x in t.x) == sizes  # every run is on the chart, once
    assert list(many.data[1].text) == [labels[i] for i in range(1, 12, 2)]  # and named on hover
    crowd = plots_lm.perplexity_vs_size(sizes, ppl, labels, [f"m{i}" for i in range(12)])
    assert [t.name for t in crowd.data] == ["runs"] and len(crowd.data[0].x) == 12
    assert all("text" not in t.mode for fig in (few, many, crowd) for t in fig.data)  # no labels to pile up


def test_run_sizes_are_ticked_in_sizes_that_read_in_order():
    fig = plots_lm.perplexity_vs_size([90_000, 400_000, 1.2e6], [70.0, 6.0, 5.2], ["a", "b", "c"])
    ticks = list(fig.layout.xaxis.tickvals)
    assert fig.layout.xaxis.type == "log" and ticks == sorted(ticks)
    assert ticks[0] <= 90_000 and ticks[-1] >= 1.2e6
    assert list(fig.layout.xaxis.ticktext) == ["50 KiB", "100 KiB", "200 KiB", "500 KiB", "1 MiB", "2 MiB"]


def test_a_model_list_that_does_not_match_the_runs_is_refused():
    with pytest.raises(ValueError, match="2 models for 3 runs"):
        plots_lm.perplexity_vs_size([1e5, 2e5, 3e5], [5.0, 6.0, 7.0], ["a", "b", "c"], ["m", "m"])
