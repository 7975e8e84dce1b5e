"""The fast accuracy curve equals the naive deepcopy + torch.nn.utils.prune loop; scans and allocations add up."""

import copy

import pytest
import torch
import torch.nn.utils.prune as tp
from conftest import state_checksum
from torch import nn

from compression.core.errors import InputError
from compression.metrics import evaluate
from compression.models.workbench import Workbench
from compression.pruning import PruneConfig, prune
from compression.pruning.live import measure_baseline, preview
from compression.pruning.sensitivity import accuracy_curve, sensitivity_scan, suggest_allocation


def test_curve_has_20_points_and_equals_naive_loop(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    curve = accuracy_curve(Workbench(model), PruneConfig(amount=0.5))
    assert len(curve) >= 20
    for point in curve:
        naive = copy.deepcopy(model.module)
        tp.global_unstructured([(m, "weight") for m in naive.modules() if isinstance(m, (nn.Linear, nn.Conv2d))],
                               pruning_method=tp.L1Unstructured, amount=point.amount)
        assert point.accuracy == evaluate(naive, model.dataset.x_test, model.dataset.y_test).accuracy
    assert state_checksum(model.module) == before


def test_structured_curve_matches_prune(zoo):
    model = zoo("cnn")
    curve = accuracy_curve(Workbench(model), PruneConfig(method="structured", amount=0.5), amounts=(0.25, 0.5))
    assert curve[1].accuracy == pytest.approx(prune(model, PruneConfig(method="structured", amount=0.5)).accuracy)


def test_scan_and_allocation_reach_the_target(zoo):
    bench = Workbench(zoo("mlp"))
    scan = sensitivity_scan(bench, amounts=(0.5, 0.9))
    assert scan.layers == ("fc1.weight", "fc2.weight") and len(scan.accuracy[0]) == 2
    allocation = suggest_allocation(scan, 0.7)
    assert allocation.sparsity == pytest.approx(0.7, abs=1e-6)
    result = preview(bench, allocation.config(), measure_baseline(bench))
    assert result.sparsity == pytest.approx(0.7, abs=0.01)
    assert suggest_allocation(scan, 1.0).sparsity == pytest.approx(0.9)  # capped by the largest scanned amount
    with pytest.raises(InputError):
        sensitivity_scan(bench, exclude=("fc1", "fc2"))


def test_preview_measures_sizes_and_shrunk_model(zoo):
    bench = Workbench(zoo("mlp"))
    baseline = measure_baseline(bench)
    view = preview(bench, PruneConfig(method="structured", amount=0.5), baseline)
    assert view.shrunk_params < baseline.params / 2 + 100
    assert view.shrunk_size_bytes < baseline.size_bytes * 0.6
    assert view.latency_ms > 0 and view.dense_latency_ms > 0 and view.shrunk_latency_ms > 0
    dense = preview(bench, PruneConfig(amount=0.0), baseline)
    assert dense.evaluation.accuracy == baseline.evaluation.accuracy and dense.nonzero_params == baseline.params
    full = preview(bench, PruneConfig(amount=1.0), baseline)
    assert full.sparse_size_bytes < view.sparse_size_bytes and torch.isfinite(torch.tensor(full.evaluation.loss))
