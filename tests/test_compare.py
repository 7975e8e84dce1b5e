import re

import onnxruntime as ort
import pytest
import torch
from conftest import drain
from safetensors.torch import load as st_load

from compression.core import run_to_end
from compression.core.errors import InputError
from compression.history import LATENCY_TOLERANCE, latency_groups
from compression.history.compare import pareto_front
from compression.history.report import Section, html_report
from compression.models.export import dense_safetensors, onnx_bytes
from compression.pipeline.budget import BudgetConfig, best_run, best_under_budget, budget_search
from compression.plots.compare import pareto_chart


def test_pareto_front_keeps_only_undominated_points():
    sizes = [100, 200, 150, 300, 120]
    accuracy = [0.90, 0.95, 0.93, 0.94, 0.89]
    assert pareto_front(sizes, accuracy) == [0, 2, 1]  # 300/0.94 is beaten by 200/0.95; 120/0.89 by 100/0.90


def test_a_latency_frontier_is_not_drawn_through_timer_noise():
    """Five runs of one model a few microseconds apart: with the tolerance, the most accurate stands for them all
    (without it the frontier stepped through the noise); a clearly faster run still joins it."""
    latency = [0.0130, 0.0132, 0.0134, 0.0136, 0.0138, 0.0060]
    accuracy = [0.9333, 0.9361, 0.9333, 0.9306, 0.9333, 0.90]
    assert pareto_front(latency, accuracy) == [5, 0, 1]
    assert pareto_front(latency, accuracy, LATENCY_TOLERANCE) == [5, 1]
    assert pareto_front([1.0, 1.05], [0.9, 0.9], LATENCY_TOLERANCE) == [0]  # equally accurate: the fastest


def test_budget_search_measures_real_files_and_picks_the_best_that_fits(zoo):
    model = zoo("mlp")
    progress, points = drain(budget_search(model, BudgetConfig(budget=3000, sparsities=(0.5, 0.9), codebook_bits=(2, 4))))
    assert len(points) == 4 and progress[-1].fraction == 1.0
    assert all(p.fits == (p.size_bytes <= 3000) for p in points)
    best = best_under_budget(points)
    assert best is not None and points[best].fits
    assert points[best].accuracy == max(p.accuracy for p in points if p.fits)
    small = {(p.sparsity, p.codebook_bits): p.size_bytes for p in points}
    assert small[(0.9, 2)] < small[(0.5, 4)]


def test_budget_config_refuses_nonsense():
    with pytest.raises(InputError):
        BudgetConfig(budget=0)
    with pytest.raises(InputError):
        BudgetConfig(budget=10, metric="energy")


def test_report_is_standalone_html_with_the_charts_and_the_runs():
    fig = pareto_chart([100, 200], [0.9, 0.95], ["a", "b"], [0, 1], "bytes", "Pareto")
    page = html_report("My report", {"model": "mlp", "ratio": "20.1×"}, [Section("Runs", ["id", "accuracy"],
                                                                                [["x1", "97.00%"]])], [fig])
    assert page.startswith("<!doctype html>") and "Pareto" in page and "x1" in page
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js itself is inlined
    assert not re.search(r"<script[^>]+src=", page)  # nothing to fetch: the report reads offline


def test_handover_files_load_back(zoo):
    model = zoo("mlp")
    weights = st_load(dense_safetensors(model))
    assert set(weights) == set(model.module.state_dict())
    session = ort.InferenceSession(onnx_bytes(model), providers=["CPUExecutionProvider"])
    x = model.dataset.x_test[:7]
    out = session.run(None, {"x": x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(out), model.module(x).detach(), atol=1e-4)


def test_latencies_are_grouped_by_how_they_were_measured():
    rows = [{"latency_ms": 1.0, "latency_stat": "median", "latency_batch": 1, "latency_threads": 1},
            {"latency_ms": 0.5, "latency_stat": "best", "latency_batch": 1, "latency_threads": 1},
            {"latency_ms": 2.0, "latency_stat": "median", "latency_batch": 1, "latency_threads": 1},
            {"latency_ms": 3.0},  # recorded before runs said how
            {"latency_ms": float("nan"), "latency_stat": "median", "latency_batch": 1, "latency_threads": 1}]
    groups = latency_groups(rows)
    assert list(groups.items()) == [("median at batch 1, 1 thread", [0, 2]), ("best at batch 1, 1 thread", [1]),
                                    ("measured an unrecorded way", [3])]


def test_every_recorded_latency_says_how_it_was_measured(zoo):
    model = zoo("mlp")
    points = run_to_end(budget_search(model, BudgetConfig(budget=1e9, sparsities=(0.0, 0.9), codebook_bits=(2, 8))))
    run = best_run(points, BudgetConfig(budget=1e9), "mlp")
    assert {run.metrics[k] for k in ("latency_stat", "latency_batch")} == {"median", 1}
    assert run.metrics["latency_threads"] >= 1


def test_a_latency_budget_never_separates_decoded_variants_of_one_model(zoo):
    """A decoded .clab runs dense: its pruned and low-bit variants share one timing and cannot win on noise."""
    points = run_to_end(budget_search(zoo("mlp"), BudgetConfig(budget=1.0, metric="latency",
                                                                sparsities=(0.0, 0.5, 0.9), codebook_bits=(2, 4))))
    assert len({p.latency_ms for p in points}) == 1
    assert len({p.fits for p in points}) == 1
