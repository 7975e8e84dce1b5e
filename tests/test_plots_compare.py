"""Compare's and Pipeline's figures (compression/plots/compare.py): valid plotly, drawing what the numbers say, in the
units the tables use."""

import math

import plotly.graph_objects as go
import pytest

from compression.plots import compare as plots_compare

MiB = 2 ** 20


def _valid(fig: go.Figure) -> go.Figure:
    validated = go.Figure(fig.to_dict())  # raises on any invalid property or value
    assert validated.to_plotly_json()["data"] == fig.to_plotly_json()["data"]
    return fig


def test_language_model_runs_are_grouped_by_model_and_evaluation_beside_their_dense_model():
    """Runs on different evaluation slices never share a series: one per model and evaluation, named so, each with
    its dense model as a diamond; each run named on hover; perplexity on a log axis, so a 930 squashes nothing."""
    sizes, ppl = [300_000.0, 500_000.0, 500_000.0, 900_000.0], [930.0, 5.5, 4.84, 5.6]
    labels = ["m · magnitude 90%", "m · rtn 4-bit · 10:01", "m · rtn 4-bit · 10:05", "m · sparsegpt 50%"]
    groups = ["m · kjv, 2,032 tokens", "m · kjv, 2,032 tokens", "m · kjv, 508 tokens", "m · kjv, 2,032 tokens"]
    dense = {"m · kjv, 2,032 tokens": (1.6e6, 5.47), "m · kjv, 508 tokens": (1.6e6, 4.81)}
    fig = _valid(plots_compare.perplexity_vs_size(sizes, ppl, labels, groups, dense))
    assert [t.name for t in fig.data] == ["m · kjv, 2,032 tokens", "dense: m · kjv, 2,032 tokens",
                                          "m · kjv, 508 tokens", "dense: m · kjv, 508 tokens"]
    assert list(fig.data[0].text) == [labels[0], labels[1], labels[3]] and list(fig.data[2].y) == [4.84]
    assert fig.data[1].marker.symbol == "diamond-open" and fig.data[1].marker.color == fig.data[0].marker.color
    assert fig.layout.yaxis.type == "log" and "lower is better" in fig.layout.yaxis.title.text
    ticks = list(fig.layout.yaxis.ticktext)
    assert "5" in ticks and "1,000" in ticks and len(set(ticks)) == len(ticks)
    assert all("text" not in t.mode for t in fig.data)  # no labels to pile up


def test_language_model_sizes_of_95_to_174_mib_get_readable_ticks():
    fig = _valid(plots_compare.perplexity_vs_size([95 * MiB, 130 * MiB, 174 * MiB], [19.8, 18.0, 17.2],
                                                  ["a", "b", "c"]))
    low, high = fig.layout.xaxis.range
    shown = [t for v, t in zip(fig.layout.xaxis.tickvals, fig.layout.xaxis.ticktext) if low <= math.log10(v) <= high]
    assert shown == ["100 MiB", "120 MiB", "140 MiB", "160 MiB"]  # one lone tick before


def test_a_group_list_that_does_not_match_the_runs_is_refused():
    with pytest.raises(ValueError, match="2 groups for 3 runs"):
        plots_compare.perplexity_vs_size([1e5, 2e5, 3e5], [5.0, 6.0, 7.0], ["a", "b", "c"], ["m", "m"])


def test_a_frontier_of_one_run_is_still_drawn_and_the_budget_reads_as_typed():
    fig = _valid(plots_compare.pareto_chart([1000, 4100], [0.95, 0.90], ["a", "b"], [0], "file size", "t",
                                            budget=4000))
    frontier = next(t for t in fig.data if t.name == "Pareto frontier")
    assert list(frontier.x) == [1000] and "markers" in frontier.mode  # a line alone draws nothing for one point
    assert "budget 4,000 B" in [t.name for t in fig.data]  # not "3.9 KiB"
    latency = plots_compare.pareto_chart([0.04, 0.06], [0.95, 0.9], ["a", "b"], [0], "latency", "t", log_x=False,
                                         budget=0.05, x_unit="ms")
    assert "budget 0.05 ms" in [t.name for t in latency.data]


def test_stage_bars_read_in_one_unit():
    fig = _valid(plots_compare.stage_bars(["start", "prune", "encode"], [32_201, 32_201, 1_530], [0.97, 0.96, 0.96]))
    assert list(fig.data[0].text) == ["31.4 KiB", "31.4 KiB", "1.5 KiB"]  # never "32,201 B" beside "31.4 KiB"
    assert all(t.endswith(("B", "KiB", "MiB")) for t in fig.layout.yaxis.ticktext)
