"""The sweep chart: one line per series in x order, the dense line named inside the plot on either axis."""

import math

from compression.plots.sweep import sweep_chart


def _points(ys, series="gptq g64"):
    return [{"series": series, "x": x, "y": y, "label": f"{series} {x}"} for x, y in ys]


def test_lines_follow_x_and_the_title_counts_the_cells():
    fig = sweep_chart(_points([(0.9, 0.5), (0.5, 0.9)]) + _points([(0.5, 0.8)], "magnitude"), "accuracy", "sparsity",
                      dense=0.95, cells=6).to_dict()
    assert fig["layout"]["title"]["text"] == "Accuracy vs sparsity (3 of 6 cells)"
    assert [(t["name"], list(t["x"])) for t in fig["data"]] == [("gptq g64", [0.5, 0.9]), ("magnitude", [0.5])]
    assert fig["layout"]["annotations"][0]["y"] == 0.95 and "95" in fig["layout"]["annotations"][0]["text"]


def test_perplexity_is_on_a_log_axis_holding_the_dense_line_and_every_point():
    fig = sweep_chart(_points([(2, 40.0), (4, 6.0)]), "perplexity", "bits", dense=5.0).to_dict()
    axis = fig["layout"]["yaxis"]
    assert axis["type"] == "log" and axis["range"][0] < math.log10(5.0) and axis["range"][1] > math.log10(40.0)
    assert fig["layout"]["annotations"][0]["y"] == math.log10(5.0)  # log10 units on a log axis
    assert fig["layout"]["shapes"][0]["y0"] == 5.0 and fig["layout"]["xaxis"]["dtick"] == 1
