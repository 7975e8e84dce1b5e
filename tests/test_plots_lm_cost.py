"""The cost figures draw what they are given, and plotly accepts every property they set (rebuilt validated)."""

import plotly.graph_objects as go

from compression.plots.lm_cost import perplexity_vs_cost, quality_vs_speed


def test_quality_vs_speed_sizes_markers_by_memory():
    points = [{"label": "dense float32", "tokens_per_s": 20.0, "perplexity": 15.0, "memory_bytes": 1200 << 20,
               "dense": True},
              {"label": "rtn 4-bit g64", "tokens_per_s": 50.0, "perplexity": 16.0, "memory_bytes": 300 << 20},
              {"label": "not measured", "tokens_per_s": 30.0, "perplexity": 17.0, "memory_bytes": None}]
    fig = quality_vs_speed(points)
    go.Figure(fig.to_dict())  # validated
    assert [t.name for t in fig.data] == ["dense float32", "rtn 4-bit g64", "not measured"]
    assert [t.x[0] for t in fig.data] == [20.0, 50.0, 30.0] and [t.y[0] for t in fig.data] == [15.0, 16.0, 17.0]
    sizes = [t.marker.size for t in fig.data]
    assert sizes[0] == 40 and 10 < sizes[1] < sizes[0] and sizes[2] == 10
    assert fig.data[0].marker.symbol == "diamond-open"


def test_perplexity_vs_cost_one_series_per_group():
    for unit in ("tokens/s", "bytes"):
        fig = perplexity_vs_cost([20.0, 50.0, 10.0], [15.0, 16.0, 30.0], ["a", "b", "c"], ["m1", "m1", "m2"], unit,
                                 "title")
        go.Figure(fig.to_dict())
        assert [t.name for t in fig.data] == ["m1", "m2"]
        assert list(fig.data[0].x) == [20.0, 50.0] and list(fig.data[1].y) == [30.0]
