"""Distillation figures: valid plotly (re-validated here: the live curves skip plotly's validation, since they are
rebuilt twice a second while a run trains)."""

import inspect

import plotly.graph_objects as go
import pytest

from compression.plots import distill as plots_distill

ROWS = [{"epoch": 0.5, "step": 10, "loss": 2.0, "hard": 0.8, "soft": 1.2, "hint": 0.3, "scratch_loss": 1.5,
         "student_accuracy": None, "scratch_accuracy": None, "elapsed_s": 0.2},
        {"epoch": 1.0, "step": 20, "loss": 1.0, "hard": 0.4, "soft": 0.6, "hint": 0.1, "scratch_loss": 0.9,
         "student_accuracy": 0.91, "scratch_accuracy": 0.85, "elapsed_s": 0.4}]
# With 5% of the labels a stretch of steps can hold no labelled image: the scratch loss is then an exact 0.
ROWS_WITHOUT_LABELS = [ROWS[0], {**ROWS[0], "epoch": 0.75, "step": 15, "scratch_loss": 0.0}, ROWS[1]]
CLASSES = [str(c) for c in range(10)]
PROBS = [0.91] + [0.01] * 9
SOFT = [0.5] + [0.5 / 9] * 9
# Every public builder of compression.plots.distill, each way it draws differently.
FIGURES = {
    "distill_curves": [lambda: plots_distill.distill_curves(ROWS, 0.98, 20),
                       lambda: plots_distill.distill_curves([{**r, "hint": None} for r in ROWS]),
                       lambda: plots_distill.distill_curves([], 0.98, 20),  # the live chart before a first step
                       lambda: plots_distill.distill_curves(ROWS_WITHOUT_LABELS, 0.98, 20)],
    "soft_targets_bars": [lambda: plots_distill.soft_targets_bars(CLASSES, PROBS, SOFT, 4.0, "0"),
                          lambda: plots_distill.soft_targets_bars(CLASSES, PROBS, PROBS, 1.0, "0")],
    "digit_image": [lambda: plots_distill.digit_image([[0.0, 1.0], [1.0, 0.5]], "a 3")],
    "size_latency_bars": [lambda: plots_distill.size_latency_bars(10_240, 160_000, 0.02, 0.11)],
}
CASES = [(name, i) for name, builds in FIGURES.items() for i in range(len(builds))]


def test_every_builder_has_a_case():
    builders = {name for name, f in inspect.getmembers(plots_distill, inspect.isfunction)
                if not name.startswith("_") and f.__module__ == plots_distill.__name__}
    assert set(FIGURES) == builders


@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_figures_pass_plotly_validation(name, i):
    fig = FIGURES[name][i]()
    validated = go.Figure(fig.to_dict())  # raises on any invalid property name or value (a typo in a builder)
    assert len(validated.data) == len(fig.data)


def test_the_live_curves_draw_every_step_and_the_accuracy_where_measured():
    fig = plots_distill.distill_curves(ROWS, 0.98, 20)
    by_name = {trace.name: trace for trace in fig.data}
    assert list(by_name["student: total loss"].x) == [0.5, 1.0] and list(by_name["student: total loss"].y) == [2, 1]
    assert list(by_name["distilled student"].x) == [1.0] and list(by_name["scratch student"].y) == [0.85]
    assert list(by_name["teacher (98.0%)"].x) == [0, 20]


def test_a_zero_scratch_loss_is_left_out_of_the_log_axis_and_said():
    """A zero has no place on a log axis: drawn, it sent the scratch line off the bottom of the chart."""
    fig = plots_distill.distill_curves(ROWS_WITHOUT_LABELS, 0.98, 20)
    scratch = next(t for t in fig.data if t.name == "scratch: CE on labels")
    assert list(scratch.y) == [1.5, None, 0.9] and scratch.connectgaps
    low, high = fig.layout.yaxis.range
    assert all(10 ** low <= v <= 10 ** high for t in fig.data if t.yaxis == "y" for v in t.y if v is not None)
    assert any("scratch loss 0" in a.text for a in fig.layout.annotations)
    assert not any("scratch loss 0" in a.text for a in plots_distill.distill_curves(ROWS, 0.98, 20).layout.annotations)
