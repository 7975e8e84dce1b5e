"""Pruning figures: valid plotly (re-validated here, since the builders skip plotly's validation for speed)."""

import inspect

import plotly.graph_objects as go
import pytest

from compression.core.histogram import Histogram
from compression.plots import pruning as plots_prune

BEFORE = Histogram([1, 5, 2], [-1.0, 0.0, 1.0, 2.0])
AFTER = Histogram([1, 0, 2], BEFORE.edges)
STEPS = [{"epoch": 0.5, "loss": 1.2, "test_accuracy": None, "parts": {"sparsity": 0.3}},
         {"epoch": 1.0, "loss": 0.6, "test_accuracy": 0.91, "parts": {"sparsity": 0.5}}]
# Every public builder of compression.plots.pruning, each way it draws differently.
FIGURES = {
    "pruning_histogram": [lambda: plots_prune.pruning_histogram(BEFORE, AFTER, 0.5, log_y=True),
                          lambda: plots_prune.pruning_histogram(BEFORE, BEFORE, 0.0)],
    "layer_sparsity_bars": [lambda: plots_prune.layer_sparsity_bars({"fc1": 0.5, "fc2": 0.9}, {"fc1": 6400})],
    "accuracy_curves": [lambda: plots_prune.accuracy_curves({"magnitude": ([0.0, 0.5], [0.97, 0.9]),
                                                             "SparseGPT": ([0.5], [0.95])}, (0.5, 0.9), 0.97)],
    "accuracy_curve": [lambda: plots_prune.accuracy_curve([0.0, 0.5], [0.97, 0.9], None, 0.97)],
    "mask_heatmap": [lambda: plots_prune.mask_heatmap([[1.0, 0.0], [0.0, 1.0]], "fc1", (100, 8, 8))],
    "finetune_curves": [lambda: plots_prune.finetune_curves({"one-shot + fine-tune": STEPS, "gradual": []}, 0.97,
                                                            0.5),
                        lambda: plots_prune.finetune_curves({})],
    "run_progress": [lambda: plots_prune.run_progress(STEPS, "gradual"),
                     lambda: plots_prune.run_progress([{**s, "parts": {}} for s in STEPS], "fine-tune")],
    "sensitivity_lines": [lambda: plots_prune.sensitivity_lines(["fc1", "fc2"], [0.25, 0.5],
                                                                [[0.97, 0.9], [0.96, 0.5]], 0.97)],
}
CASES = [(name, i) for name, builds in FIGURES.items() for i in range(len(builds))]


def test_every_builder_has_a_case():
    builders = {name for name, f in inspect.getmembers(plots_prune, inspect.isfunction)
                if not name.startswith("_") and f.__module__ == plots_prune.__name__}
    assert set(FIGURES) == builders


@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_figures_pass_plotly_validation(name, i):
    fig = FIGURES[name][i]()
    validated = go.Figure(fig.to_dict())  # raises on any invalid property name or value (a typo in a builder)
    assert len(validated.data) == len(fig.data)
