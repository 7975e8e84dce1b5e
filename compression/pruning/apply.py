"""The `prune` verb: magnitude, Wanda, SparseGPT, N:M or structured pruning of a copy of a model, measured."""

from __future__ import annotations

from torch import Tensor

from compression.calibration import calibration_images
from compression.core.errors import InputError
from compression.models.loading import LoadedModel
from compression.models.workbench import with_weights
from compression.pruning.config import PruneConfig
from compression.pruning.masks import apply_masks, compute_masks
from compression.pruning.oneshot import prune_calibrated
from compression.pruning.result import PruneResult, measure_result, output_axes
from compression.pruning.structured import prune_structured

CALIBRATION_SAMPLES = 512  # training images Wanda and SparseGPT calibrate on unless told otherwise


def prune(model: LoadedModel, config: PruneConfig, calibration: Tensor | None = None) -> PruneResult:
    """Prune a copy of `model` as `config` says and measure it; `model` itself is never changed.

    Wanda and SparseGPT calibrate layer by layer on `calibration` (default: 512 training images, seed 0).
    """
    if config.method == "structured":
        return prune_structured(model, config)
    weights = model.weights()
    if config.needs_calibration:
        masks, pruned = calibrated_masks(model, weights, config, calibration)
    else:
        masks = compute_masks(weights, config, output_axes(model))
        pruned = apply_masks(weights, masks)
    new = with_weights(model, pruned, name=f"{model.name} (pruned)")
    return measure_result(model, new, config, masks, weights)


def calibrated_masks(model: LoadedModel, weights: dict[str, Tensor], config: PruneConfig,
                     calibration: Tensor | None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(masks, new weights) of Wanda or SparseGPT on `model`'s PyTorch module."""
    if model.module is None:
        raise InputError(f"{config.method} needs a PyTorch model: an ONNX graph can be pruned by magnitude here")
    if calibration is None:
        calibration = calibration_images(model.dataset, CALIBRATION_SAMPLES)
    run = prune_calibrated(model.module, weights, config, calibration)
    return dict(run.masks), dict(run.weights)
