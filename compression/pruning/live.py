"""One slider position, measured fast: masks swapped into a Workbench, sizes of real files, latency of real runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from compression.metrics import (
    Evaluation,
    Histogram,
    Latency,
    histogram,
    latency_in_turns,
    latency_method,
    measure_latency,
    torch_save_bytes,
)
from compression.models.workbench import Workbench
from compression.pruning.apply import calibrated_masks
from compression.pruning.config import PruneConfig
from compression.pruning.masks import MagnitudeRanking, apply_masks, compute_masks, effective_threshold, mask_sparsity
from compression.pruning.result import model_state, output_axes, sparse_bytes
from compression.pruning.structured import dead_units, has_unit_groups, plan, rebuild, shrink, unit_masks

LATENCY_BUDGET_MS = 30.0  # per slider move; the rounds stop once it is spent
LATENCY_BATCH = 32  # big enough to be compute-bound, small enough to time on every slider move


@dataclass(frozen=True)
class Baseline:
    """The dense model's numbers, measured once per model."""

    evaluation: Evaluation
    params: int
    nonzero_params: int
    size_bytes: int  # dense torch.save file: the baseline every page compares against
    latency_ms: float | None  # None for ONNX models
    other_nonzero: int  # non-zeros outside the prunable weights (biases, norms)


def measure_baseline(bench: Workbench) -> Baseline:
    state = model_state(bench.model)
    latency = None
    if bench.model.module is not None:
        latency = measure_latency(bench.module_with({}), _example(bench), repeats=20).median_ms
    return Baseline(bench.evaluate(), sum(t.numel() for t in state.values()),
                    sum(int(torch.count_nonzero(t)) for t in state.values()), len(torch_save_bytes(state)), latency,
                    sum(int(torch.count_nonzero(t)) for k, t in state.items() if k not in bench.base))


@dataclass(frozen=True, eq=False)
class Preview:
    """Everything the Pruning page shows for one setting."""

    config: PruneConfig
    masks: Mapping[str, Tensor] = field(repr=False)
    weights: Mapping[str, Tensor] = field(repr=False)  # the pruned weights
    evaluation: Evaluation
    sparsity: float  # of the prunable weights
    layer_sparsity: Mapping[str, float]
    threshold: float  # effective: the largest |w| removed
    nonzero_params: int
    sparse_size_bytes: int  # non-zeros + 1-bit mask
    shrunk_params: int | None  # the physically smaller model (None when it cannot be built, e.g. ONNX)
    shrunk_size_bytes: int | None
    latency_ms: float | None  # the pruned dense model; median of the runs, like the other two
    shrunk_latency_ms: float | None
    dense_latency_ms: float | None  # the original, timed in the same rounds
    latency_method: Mapping[str, str | int] = field(default_factory=dict)  # statistic, batch, threads (if timed)
    latency_spread_ms: float | None = None  # the widest p10-p90 range of the three: what the timer cannot tell apart
    latency_runs: int | None = None

    @property
    def same_speed_as_dense(self) -> bool:
        """True when masked and dense differ by less than the timer's own spread (or by under 20%)."""
        if self.latency_ms is None or not self.dense_latency_ms:
            return True
        ratio = self.latency_ms / self.dense_latency_ms
        return abs(self.latency_ms - self.dense_latency_ms) <= (self.latency_spread_ms or 0.0) or 0.8 <= ratio <= 1.25

    def to_dict(self) -> dict:
        keys = ("sparsity", "threshold", "nonzero_params", "sparse_size_bytes", "shrunk_params",
                "shrunk_size_bytes", "latency_ms", "shrunk_latency_ms", "dense_latency_ms")
        return {"config": self.config.to_dict(), "accuracy": self.evaluation.accuracy,
                "loss": self.evaluation.loss, **{k: getattr(self, k) for k in keys},
                "layer_sparsity": dict(self.layer_sparsity), **self.latency_method}

    def to_record(self, baseline_accuracy: float, timings_valid: bool = True) -> dict:
        """What a recorded setting keeps: the sparse file is its size; timings taken under load are dropped."""
        record = {**self.to_dict(), "size_bytes": self.sparse_size_bytes, "baseline_accuracy": baseline_accuracy}
        if not timings_valid:
            record.update(latency_ms=None, shrunk_latency_ms=None, dense_latency_ms=None,
                          **dict.fromkeys(self.latency_method))
        return record


def preview(bench: Workbench, config: PruneConfig, baseline: Baseline, latency_repeats: int = 15,
            rankings: dict | None = None, calibration: Tensor | None = None) -> Preview:
    """Prune, evaluate and measure `config` on the Workbench's copy (the original model is not touched).

    `rankings` caches a MagnitudeRanking per (scope, exclude), so a sparsity move skips re-sorting |w|;
    Wanda and SparseGPT calibrate on `calibration` (the page keeps the same images between moves).
    """
    model, base = bench.model, bench.base
    keep = None
    if config.method == "structured":
        module = bench.module_with({})
        keep = plan(module, config)
        masks = unit_masks(module, keep)
    elif config.needs_calibration:
        masks, weights = calibrated_masks(model, base, config, calibration)
    elif rankings is not None and config.scope in ("global", "layer") and config.amount is not None \
            and config.nm is None and config.threshold is None and not config.layer_amounts:
        key = (config.scope, config.exclude)
        if key not in rankings:
            rankings[key] = MagnitudeRanking(base, config.scope, config.exclude)
        masks = rankings[key].masks(config.amount)
    else:
        masks = compute_masks(base, config, output_axes(model))
    if not config.needs_calibration:
        weights = apply_masks(base, masks)
    evaluation = bench.evaluate(weights)
    state = model_state(model) if model.onnx is not None else None
    total = sum(w.numel() for w in base.values())
    kept = sum(float(masks[k].sum()) if k in masks else int(torch.count_nonzero(w)) for k, w in base.items())
    shrunk_params = shrunk_size = latency = shrunk_latency = dense_latency = spread = runs = None
    method = {}
    if model.module is not None:
        module = bench.module_with(weights)
        state = {**{k: v.detach() for k, v in module.state_dict().items()}, **weights}  # own tensors for the sizes
        shrunk = None
        if has_unit_groups(module):
            shrunk = rebuild(model, shrink(module, keep if keep is not None else dead_units(module)))
            shrunk_state = {k: v.detach() for k, v in shrunk.state_dict().items()}
            shrunk_params = sum(t.numel() for t in shrunk_state.values())
            shrunk_size = len(torch_save_bytes(shrunk_state))
        contenders = [lambda: bench.module_with({}), lambda: bench.module_with(weights)]
        if shrunk is not None:
            contenders.append(lambda: shrunk)
        # Three warm-up rounds: a model's first forward passes after a weight swap allocate and run far slower
        # (5 ms against 0.05 ms on mlp), which made neighbouring slider moves differ a hundredfold.
        timed = latency_in_turns(contenders, _example(bench), latency_repeats, warmup=3, budget_ms=LATENCY_BUDGET_MS)
        dense_latency, latency, *rest = [t.median_ms for t in timed]
        shrunk_latency = rest[0] if rest else None
        method = latency_method(timed[0], "median")
        spread, runs = _spread(timed), timed[0].repeats
    else:
        state = {**state, **weights}
    return Preview(
        config=config, masks=masks, weights=weights, evaluation=evaluation,
        sparsity=1.0 - kept / total if total else 0.0, layer_sparsity=mask_sparsity(masks),
        threshold=effective_threshold(base, masks), nonzero_params=baseline.other_nonzero + int(kept),
        sparse_size_bytes=sparse_bytes(state, set(masks)), shrunk_params=shrunk_params,
        shrunk_size_bytes=shrunk_size, latency_ms=latency, shrunk_latency_ms=shrunk_latency,
        dense_latency_ms=dense_latency, latency_method=method, latency_spread_ms=spread, latency_runs=runs)


def _spread(timed: list[Latency]) -> float:
    return max(t.p90_ms - t.p10_ms for t in timed)


@torch.no_grad()
def weights_histogram(weights: Mapping[str, Tensor], bins: int = 100) -> Histogram:
    """Histogram of all prunable weights (the "before" bars; its edges are reused for "after")."""
    return histogram(torch.cat([w.reshape(-1) for w in weights.values()]), bins)


def kept_histogram(pruned: Mapping[str, Tensor], before: Histogram) -> Histogram:
    """Histogram of the surviving (non-zero) weights on the bins of `before`."""
    kept = torch.cat([w.reshape(-1) for w in pruned.values()]) if pruned else torch.zeros(0)
    return histogram(kept[kept != 0], len(before.counts), (before.edges[0], before.edges[-1]))


def _example(bench: Workbench) -> Tensor:
    return bench.model.dataset.x_test[:LATENCY_BATCH]
