"""Pruning for any model: magnitude (global, per layer or per row), Wanda and SparseGPT (calibrated, layer by
layer), N:M patterns and structured; preview, sensitivity scan and fine-tuning."""

from compression.pruning.apply import CALIBRATION_SAMPLES, prune
from compression.pruning.config import CALIBRATED, METHODS, SCOPES, PruneConfig
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
    nm_keep,
    nm_mask,
    row_keep,
    row_mask,
    threshold_mask,
)
from compression.pruning.oneshot import CalibratedPrune, prune_block, prune_calibrated, prune_matrix
from compression.pruning.result import PruneResult, model_state, sparse_bytes
from compression.pruning.retrain import FinetuneConfig, GradualConfig, finetune, prune_gradually
from compression.pruning.sensitivity import CURVE_AMOUNTS, accuracy_curve, sensitivity_scan, suggest_allocation
from compression.pruning.sparsegpt import sparsegpt_prune
from compression.pruning.structured import plan, rebuild, shrink
from compression.pruning.wanda import wanda_prune, wanda_scores

__all__ = [
    "CALIBRATED",
    "CALIBRATION_SAMPLES",
    "CalibratedPrune",
    "nm_keep",
    "prune_block",
    "prune_calibrated",
    "prune_matrix",
    "row_keep",
    "row_mask",
    "sparsegpt_prune",
    "wanda_prune",
    "wanda_scores",
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
