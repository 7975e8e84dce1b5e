"""Pruning: magnitude (global or per layer), N:M and structured; preview, sensitivity scan and fine-tuning."""

from compression.pruning.apply import prune
from compression.pruning.config import METHODS, SCOPES, PruneConfig
from compression.pruning.live import (
    Baseline,
    Preview,
    kept_histogram,
    measure_baseline,
    preview,
    weights_histogram,
)
from compression.pruning.masks import (
    MagnitudeRanking,
    apply_masks,
    compute_masks,
    effective_threshold,
    global_magnitude_masks,
    magnitude_mask,
    mask_grid,
    mask_parameters_,
    mask_sparsity,
    nm_mask,
    threshold_mask,
)
from compression.pruning.result import PruneResult, model_state, sparse_bytes
from compression.pruning.retrain import FinetuneConfig, GradualConfig, finetune, prune_gradually
from compression.pruning.sensitivity import CURVE_AMOUNTS, accuracy_curve, sensitivity_scan, suggest_allocation
from compression.pruning.structured import plan, rebuild, shrink

__all__ = [
    "MagnitudeRanking",
    "apply_masks",
    "compute_masks",
    "effective_threshold",
    "global_magnitude_masks",
    "magnitude_mask",
    "mask_grid",
    "mask_parameters_",
    "mask_sparsity",
    "nm_mask",
    "threshold_mask",
    "METHODS",
    "SCOPES",
    "PruneConfig",
    "prune",
    "PruneResult",
    "model_state",
    "sparse_bytes",

    "accuracy_curve",
    "Baseline",
    "CURVE_AMOUNTS",
    "finetune",
    "FinetuneConfig",
    "GradualConfig",
    "kept_histogram",
    "measure_baseline",
    "plan",
    "Preview",
    "preview",
    "prune_gradually",
    "rebuild",
    "sensitivity_scan",
    "shrink",
    "suggest_allocation",
    "weights_histogram",
]
