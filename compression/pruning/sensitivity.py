"""How much each layer can lose: the accuracy-vs-sparsity curve, a per-layer scan and a suggested allocation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from compression.core.errors import InputError
from compression.metrics import Evaluation
from compression.models.workbench import Workbench
from compression.pruning.apply import calibrated_masks
from compression.pruning.config import PruneConfig
from compression.pruning.masks import MagnitudeRanking, apply_masks, compute_masks, select_weights
from compression.pruning.structured import plan, unit_masks

CURVE_AMOUNTS = tuple(round(0.05 * i, 2) for i in range(20)) + (0.97, 0.99)  # 22 points, dense near the end
SCAN_AMOUNTS = (0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class CurvePoint:
    amount: float
    accuracy: float
    loss: float


def accuracy_curve(bench: Workbench, config: PruneConfig, amounts: Sequence[float] = CURVE_AMOUNTS,
                   calibration: Tensor | None = None) -> list[CurvePoint]:
    """Accuracy at each sparsity with `config`'s method (an N:M pattern: its method unstructured), evaluated on
    one working copy; magnitude cuts one sorted order, Wanda and SparseGPT calibrate once per point."""
    config = replace(config, threshold=None, layer_amounts=(), amount=0.0, nm=None)
    if config.needs_calibration:
        variants = [calibrated_masks(bench.model, bench.base, replace(config, amount=a), calibration)[1]
                    for a in amounts]
        return [CurvePoint(a, e.accuracy, e.loss) for a, e in zip(amounts, evaluate_many(bench, variants))]
    structured = config.method == "structured"
    if structured:
        module = bench.module_with({})  # original weights: the ranking is computed on them
    ranked = None if structured or config.scope == "row" else \
        MagnitudeRanking(bench.base, config.scope, config.exclude)
    variants = []
    for amount in amounts:
        cfg = replace(config, amount=amount)
        if structured:
            masks = unit_masks(module, plan(module, cfg))
        else:
            masks = ranked.masks(amount) if ranked is not None else compute_masks(bench.base, cfg)
        variants.append(apply_masks(bench.base, masks))
    return [CurvePoint(a, e.accuracy, e.loss) for a, e in zip(amounts, evaluate_many(bench, variants))]


def evaluate_many(bench: Workbench, variants: Sequence[dict]) -> list[Evaluation]:
    """Evaluate many weight sets of one model on its working copy; loss and accuracy in one batched call."""
    if bench.model.module is None:
        return [bench.evaluate(v) for v in variants]
    data = bench.model.dataset
    with torch.no_grad():
        logits = torch.stack([bench.module_with(v)(data.x_test) for v in variants])  # (variants, N, classes)
        losses = F.cross_entropy(logits.flatten(0, 1), data.y_test.repeat(len(variants)), reduction="none")
        correct = (logits.argmax(-1) == data.y_test).sum(-1)
    n = len(data.y_test)
    return [Evaluation(int(c) / n, float(v), n) for c, v in zip(correct, losses.view(len(variants), n).mean(1))]


@dataclass(frozen=True)
class SensitivityScan:
    """Accuracy with one layer pruned alone at each amount (Distiller / NNI sensitivity analysis)."""

    layers: tuple[str, ...]
    sizes: tuple[int, ...]  # weights per layer
    amounts: tuple[float, ...]
    accuracy: tuple[tuple[float, ...], ...]  # (layer, amount)
    baseline_accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)


def sensitivity_scan(bench: Workbench, amounts: Sequence[float] = SCAN_AMOUNTS,
                     exclude: tuple[str, ...] = ()) -> SensitivityScan:
    """Prune each layer alone (magnitude, per layer) at each amount and measure accuracy."""
    layers = select_weights(bench.base, tuple(exclude))
    if not layers:
        raise InputError("there is no layer left to scan: every layer is excluded")
    baseline = bench.evaluate().accuracy
    rows = []
    for name, weight in layers.items():
        row = []
        for amount in amounts:
            mask = compute_masks({name: weight}, PruneConfig(amount=amount, scope="layer"))
            row.append(bench.evaluate(apply_masks(bench.base, mask)).accuracy)
        rows.append(tuple(row))
    return SensitivityScan(tuple(layers), tuple(w.numel() for w in layers.values()), tuple(amounts),
                           tuple(rows), baseline)


@dataclass(frozen=True)
class Allocation:
    """Per-layer amounts that reach a global target while spending the least accuracy in the scan."""

    target: float
    layer_amounts: tuple[tuple[str, float], ...]
    sparsity: float  # what the amounts give over the scanned layers
    max_drop: float  # the largest per-layer accuracy drop (in the scan) the allocation accepts

    def config(self, exclude: tuple[str, ...] = ()) -> PruneConfig:
        return PruneConfig(layer_amounts=self.layer_amounts, scope="layer", exclude=exclude)

    def to_dict(self) -> dict:
        return asdict(self)


def suggest_allocation(scan: SensitivityScan, target: float) -> Allocation:
    """Find the smallest accuracy drop d such that giving each layer its largest amount costing <= d hits target.

    Robust layers take more sparsity, sensitive ones less; bisection over d on the measured scan.
    """
    if not 0.0 <= target <= 1.0:
        raise InputError(f"target sparsity must be in [0, 1], got {target}")
    sizes = torch.tensor(scan.sizes, dtype=torch.float64)

    def amounts_for(drop: float) -> list[float]:
        out = []
        for row in scan.accuracy:
            ok = [a for a, acc in zip(scan.amounts, row) if scan.baseline_accuracy - acc <= drop]
            out.append(max(ok, default=0.0))
        return out

    def sparsity(amounts: list[float]) -> float:
        return float((torch.tensor(amounts, dtype=torch.float64) * sizes).sum() / sizes.sum())

    lo, hi = -1e-9, 1.0
    if sparsity(amounts_for(hi)) < target:
        lo = hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sparsity(amounts_for(mid)) < target else (lo, mid)
    amounts = amounts_for(hi)
    # Reaching the target exactly: scale the chosen amounts down (never above the scanned ones) if overshot.
    reached = sparsity(amounts)
    if reached > target > 0:
        amounts = [a * target / reached for a in amounts]
    elif target == 0:
        amounts = [0.0] * len(amounts)
    return Allocation(target, tuple(zip(scan.layers, (round(a, 4) for a in amounts))), sparsity(amounts), max(hi, 0.0))
